"""The Python API: `rnnlab.train` on in-memory texts, with callbacks, durations as strings, `overwrite=`, and errors
that name Python arguments (the command line's name flags)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rnnlab
from rnnlab.errors import RnnlabError

TEXTS = ["the cat sat on the mat. " * 200, "the dog sat on the log! " * 200]
SMALL = {"preset": "tiny", "hidden": 32, "embed": 8, "batch_size": 4, "seq_len": 16, "progress": False}


def test_training_on_texts_with_a_callback_that_stops_it(tmp_path: Path) -> None:
    events: list[tuple[str, int]] = []
    figures: list[dict] = []

    def on_eval(f: dict) -> bool:
        figures.append(f)
        return f["step"] < 20  # False at step 20: stop

    result = rnnlab.train(
        texts=TEXTS,
        out=tmp_path / "run",
        max_steps=100,
        eval_every=10,
        log_every=5,
        checkpoint_every=10,
        on_log=lambda f: events.append(("log", f["step"])),
        on_eval=on_eval,
        on_checkpoint=lambda f: events.append(("checkpoint", f["step"])),
        **SMALL,
    )
    assert result.steps == 20 and result.interrupted
    assert [step for kind, step in events if kind == "log"] == [5, 10, 15, 20]
    assert [step for kind, step in events if kind == "checkpoint"] == [10, 20, 20]  # periodic, then the final one
    assert [f["step"] for f in figures] == [10, 20] and all(f["val_bpc"] > 0 for f in figures)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["inputs"] == ["<2 texts given in Python>"]
    again = rnnlab.train(out=tmp_path / "run", resume=True, max_steps=30, progress=False)
    assert again.steps == 30 and not again.interrupted  # the stopped run continues from its checkpoint


def test_durations_as_strings_and_errors_that_name_python_arguments(tmp_path: Path) -> None:
    result = rnnlab.train(texts=TEXTS, out=tmp_path / "run", max_time="2s", max_steps=10**6, **SMALL)
    assert 0 < result.elapsed < 30
    for options, message in (
        ({"max_time": "soon"}, "cannot read duration 'soon'"),
        ({"hidden": -1}, "^hidden must be > 0, got -1$"),
        ({"texts": "one string"}, "^texts must be a list of strings$"),
        ({"texts": []}, "^texts is empty$"),
        ({"texts": TEXTS, "inputs": ["a.txt"]}, "^give inputs or texts, not both$"),
        ({"resume": True, "overwrite": True}, r"^resume=True continues the run in out and overwrite=True replaces it"),
    ):
        options = {"texts": TEXTS, **options}
        inputs = options.pop("inputs", None)
        with pytest.raises(RnnlabError, match=message):
            rnnlab.train(inputs, out=tmp_path / "other", **{**SMALL, **options})
    assert not (tmp_path / "other").exists()
    with pytest.raises(RnnlabError, match="already exists; use resume=True to continue it, overwrite=True"):
        rnnlab.train(texts=TEXTS, out=tmp_path / "run", **SMALL)


def test_overwrite_replaces_a_run_only_once_the_new_one_is_ready(tmp_path: Path, cli) -> None:
    run = tmp_path / "run"
    rnnlab.train(texts=TEXTS, out=run, max_steps=3, **SMALL)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(RnnlabError, match="lr"):  # a bad option: the old run stays exactly as it was
        rnnlab.train(texts=TEXTS, out=run, max_steps=3, lr=float("nan"), overwrite=True, **SMALL)
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    rnnlab.train(texts=["something else entirely. " * 100], out=run, max_steps=4, overwrite=True, **SMALL)
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing of the old run or a temporary is left
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    with pytest.raises(RnnlabError, match="not one, so it is left alone"):
        rnnlab.train(texts=TEXTS, out=folder, max_steps=3, overwrite=True, **SMALL)
    assert (folder / "mine.txt").read_text() == "keep me"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXTS[0])
    flags = ["--preset", "tiny", "--hidden", "32", "--batch-size", "4", "--seq-len", "16", "--max-steps", "2"]
    code, _, err = cli("train", corpus, "--out", run, *flags)
    assert code == 2 and "--overwrite to replace it" in err
    assert cli("train", corpus, "--out", run, "--overwrite", *flags)[0] == 0


def test_a_run_writes_its_model_card_and_its_config_trains_it_again(tmp_path: Path, cli) -> None:
    first = rnnlab.train(texts=TEXTS, out=tmp_path / "first", max_steps=6, eval_every=3, lr=0.01, cell="gru", **SMALL)
    card = (tmp_path / "first" / "README.md").read_text()
    front = card.split("---\n")[1]
    fields = {line.split(": ", 1)[0]: json.loads(line.split(": ", 1)[1]) for line in front.splitlines()}
    assert fields["library_name"] == "rnnlab" and fields["model"]["cell"] == "gru"
    assert fields["rnnlab_version"] == rnnlab.__version__ and fields["training_data"] == ["<2 texts given in Python>"]
    assert fields["metrics"][0]["value"] == pytest.approx(first.best_val_bpc, abs=1e-4)
    assert "rnnlab train --config" in fields["command"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXTS[0])
    code, _, err = cli("train", corpus, "--config", tmp_path / "first" / "config.json", "--out", tmp_path / "again")
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    before = json.loads((tmp_path / "first" / "config.json").read_text())
    del again["model"]["vocab_size"], before["model"]["vocab_size"]  # the new text's: one of the two texts
    assert again["model"] == before["model"]  # every setting from the file; the budget and lr as well
    assert again["train"]["lr"] == 0.01 and again["train"]["max_steps"] == 6
    code, _, err = cli("train", "--config", tmp_path / "first" / "model.safetensors", "--out", tmp_path / "x")
    assert code == 2 and "--config takes a run's config.json" in err
