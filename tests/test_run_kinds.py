"""Every run kind opened by every command that opens a run directory.

tests/fixtures/runs/<kind>/ holds one small run of each kind as rnnlab 0.1.0 wrote it (language-model and
reference runs without a `kind` in config.json; the kinds added later, ngram, hmm, window, lds, ar and ctc, as
WRITERS below made them when they were added). The command made for a kind works on it; `rnnlab info`
describes every kind; every other command refuses it in one line naming the run's kind and the command to use,
exits 2 and writes nothing. Each test works on a copy, so the fixtures are never modified.
"""

from __future__ import annotations

import json
import shutil
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import rnnlab
from rnnlab.errors import RnnlabError
from rnnlab.rundir import CONFIG, KINDS, LANGUAGE_MODELS, read_run, write_run_config
from rnnlab.tasks.lines import write_lines

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
TEXT = "def data_1(items):\n    return [items[i] + 1 for i in range(len(items))]\n" * 3  # the fixtures' characters
SERIES = "x,y\n" + "".join(f"{i % 5 / 4:.2f},{(i * 3) % 7 / 6:.2f}\n" for i in range(40))


@dataclass(frozen=True)
class Command:
    """A command line for a run and a scratch folder, the kinds it is for, and what its success looks like."""

    args: Callable[[Path, Path], list[object]]
    kinds: tuple[str, ...]
    worked: Callable[[str, Path], bool]  # (stdout, scratch folder) -> did it do its job
    writes: tuple[str, ...] = ()  # files it creates in the scratch folder


COMMANDS = {
    "info": Command(lambda r, t: ["info", r], tuple(KINDS), lambda out, t: "parameters" in out),
    "sample": Command(
        lambda r, t: ["sample", r, "--length", "20", "--seed", "0"], LANGUAGE_MODELS, lambda out, t: len(out) > 20
    ),
    "eval": Command(
        lambda r, t: ["eval", r, t / "text.py", "--json"],
        (*LANGUAGE_MODELS, "ngram"),
        lambda out, t: json.loads(out)["tokens"] == len(TEXT) - 1,
    ),
    "compress": Command(
        lambda r, t: ["compress", r, t / "text.py", t / "packed"],
        LANGUAGE_MODELS,
        lambda out, t: (t / "packed").stat().st_size > 0,
        ("packed",),
    ),
    "decompress": Command(
        lambda r, t: ["decompress", r, t / "given", t / "unpacked"],
        LANGUAGE_MODELS,
        lambda out, t: (t / "unpacked").read_text() == TEXT,
        ("unpacked",),
    ),
    "export": Command(
        lambda r, t: ["export", r, "--onnx", t / "step.onnx"],
        LANGUAGE_MODELS,
        lambda out, t: (t / "step.onnx").stat().st_size > 0,
        ("step.onnx",),
    ),
    "probe cells": Command(
        lambda r, t: ["probe", "cells", r, t / "text.py", "--report", t / "cells.html", "--max-chars", "100"],
        LANGUAGE_MODELS,
        lambda out, t: "<html" in (t / "cells.html").read_text().lower(),
        ("cells.html",),
    ),
    "probe surprisal": Command(
        lambda r, t: ["probe", "surprisal", r, t / "text.py", "--report", t / "surprisal.html", "--max-chars", "100"],
        LANGUAGE_MODELS,
        lambda out, t: "<html" in (t / "surprisal.html").read_text().lower(),
        ("surprisal.html",),
    ),
    "probe gradients": Command(
        lambda r, t: ["probe", "gradients", r, "--plot", t / "grads.png", "--steps", "5"],
        LANGUAGE_MODELS,
        lambda out, t: (t / "grads.png").stat().st_size > 0,
        ("grads.png",),
    ),
    "probe novelty": Command(
        lambda r, t: ["probe", "novelty", r, "--samples", "1", "--length", "20", "--n", "3"],
        LANGUAGE_MODELS,
        lambda out, t: "generated in train" in out,
    ),
    "serve": Command(
        lambda r, t: ["serve", r, "--port", "0"], LANGUAGE_MODELS, lambda out, t: "serving on http://127.0.0.1:" in out
    ),
    "classify predict": Command(
        lambda r, t: ["classify", "predict", r, "a good film"], ("classify",), lambda out, t: out.count("\t") == 2
    ),
    "tag predict": Command(
        lambda r, t: ["tag", "predict", r, "1", "0", "1"], ("tag",), lambda out, t: out.count("\t") == 3
    ),
    "seq2seq predict": Command(
        lambda r, t: ["seq2seq", "predict", r, "1 2 3"], ("seq2seq",), lambda out, t: out.count("\t") == 1
    ),
    "timeseries predict": Command(
        lambda r, t: ["timeseries", "predict", r, "--horizon", "3"],
        ("timeseries",),
        lambda out, t: len(out.split()) == 3,
    ),
    "caption predict": Command(
        lambda r, t: ["caption", "predict", r, "--count", "2", "--plot", t / "captions.png"],
        ("caption",),
        lambda out, t: out.count("(true: ") == 2 and (t / "captions.png").stat().st_size > 0,
        ("captions.png",),
    ),
    "vqa predict": Command(
        lambda r, t: ["vqa", "predict", r, "what colour is the circle?"], ("vqa",), lambda out, t: "(true: " in out
    ),
    "esn predict": Command(
        lambda r, t: ["esn", "predict", r, t / "series.csv", "--output", t / "predicted.csv"],
        ("esn",),
        lambda out, t: (t / "predicted.csv").read_text().splitlines()[0] == "x,y",
        ("predicted.csv",),
    ),
    "esn generate": Command(
        lambda r, t: ["esn", "generate", r, "--steps", "3", "--output", t / "generated.csv"],
        ("esn",),
        lambda out, t: len((t / "generated.csv").read_text().splitlines()) == 4,
        ("generated.csv",),
    ),
    "ngram eval": Command(
        lambda r, t: ["ngram", "eval", r, t / "text.py", "--json"],
        ("ngram",),
        lambda out, t: json.loads(out)["tokens"] == len(TEXT) - 1,
    ),
    "hmm eval": Command(
        lambda r, t: ["hmm", "eval", r, t / "text.py", "--json"],
        ("hmm",),
        lambda out, t: json.loads(out)["tokens"] == len(TEXT) - 1,
    ),
    "window eval": Command(
        lambda r, t: ["window", "eval", r, t / "text.py", "--json"],
        ("window",),
        lambda out, t: json.loads(out)["tokens"] == len(TEXT) - 1,
    ),
    "lds predict": Command(
        lambda r, t: ["lds", "predict", r, t / "series.csv", "--output", t / "lds.csv"],
        ("lds",),
        lambda out, t: (t / "lds.csv").read_text().splitlines()[0] == "row,x,y",
        ("lds.csv",),
    ),
    "ar predict": Command(
        lambda r, t: ["ar", "predict", r, t / "series.csv", "--output", t / "ar.csv"],
        ("ar",),
        lambda out, t: (t / "ar.csv").read_text().splitlines()[0] == "row,x,y",
        ("ar.csv",),
    ),
    "ctc decode": Command(
        lambda r, t: ["ctc", "decode", r, t / "lines" / "0.png", "--plot", t / "decoded.png"],
        ("ctc",),
        lambda out, t: out.endswith("0.png\n") and (t / "decoded.png").stat().st_size > 0,
        ("decoded.png",),
    ),
}
# A reference run (`rnnlab reference train`) keeps no token store, so the probes that read the training text
# cannot use it; they say so in one line.
NEEDS_TOKENS = {("reference", "probe gradients"), ("reference", "probe novelty")}


def _copy(kind: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / kind, tmp_path / "runs" / kind))


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the inputs the commands read; `serve` binds its port and returns at once."""
    import rnnlab.serve.app

    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "text.py").write_text(TEXT)
    (folder / "series.csv").write_text(SERIES)
    write_lines(folder / "lines", count=2, height=16)
    monkeypatch.setattr(
        rnnlab.serve.app, "make_server", lambda app: types.SimpleNamespace(run=lambda sockets: sockets[0].close())
    )
    return folder


def test_every_kind_has_a_fixture_and_every_command_is_listed() -> None:
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(KINDS)
    for kind in KINDS:
        assert any(kind in command.kinds for name, command in COMMANDS.items() if name != "info"), kind


@pytest.mark.parametrize("name", list(COMMANDS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_command_uses_its_own_kind_and_refuses_others_in_one_line(cli, kind, name, tmp_path, scratch) -> None:
    command = COMMANDS[name]
    run = _copy(kind, tmp_path)
    if name == "decompress":  # a file compressed by this run, or by a language model for the other kinds
        source = run if kind in LANGUAGE_MODELS else _copy("lm", tmp_path)
        assert cli("compress", source, scratch / "text.py", scratch / "given")[0] == 0
    code, out, err = cli(*command.args(run, scratch))
    if kind in command.kinds and (kind, name) not in NEEDS_TOKENS:
        assert code == 0, err
        assert command.worked(out, scratch), out
        return
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    if (kind, name) in NEEDS_TOKENS:
        assert "tokens" in err
    else:
        assert f"({kind} run), not " in err and err.rstrip().endswith(f"use `{KINDS[kind].command}`")
    assert not any((scratch / path).exists() for path in command.writes)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("lm", ["kind         lm: a language model", "1 x lstm 16, embed 8", "parameters   2,739", "inputs       code.py",
                "train tokens 3,800", "history      6 steps", "validation   best"]),
        ("reference", ["kind         reference:", "1 x rnn-tanh 8, embed one-hot", "parameters   811", "adagrad lr 0.1",
                       "history      20 steps"]),
        ("classify", ["embedding -> 1 x gru 8 -> 2 classes", "parameters   690", "vocabulary 30 words; labels negative, positive",
                      "Adam lr 0.003, batch 32, 5 steps at most"]),
        ("tag", ["-> one of 2 tags per token, embed 4", "parameters   370", "vocabulary 4 tokens; tags no, yes"]),
        ("seq2seq", ["encoder 1 x lstm 8 -> decoder 1 x lstm 8", "task reverse; source vocabulary 12, target vocabulary 14"]),
        ("timeseries", ["1 x gru 8 over one value per step", "parameters   273", "window 10 values"]),
        ("caption", ["CNN image encoder -> decoder 1 x gru 8", "images shapes; vocabulary 17 words"]),
        ("vqa", ["question reader 1 x gru 8 -> 12 answers", "question vocabulary 23 words"]),
        ("esn", ["1 x reservoir 20 (sparsity 0.9", "2 inputs -> 2 outputs", "46 trained (the readout), 460 fixed",
                 "columns x, y; 120 training rows, 30 held out", "ridge 1e-06, washout 10"]),
        ("ngram", ["interpolated Kneser-Ney 2-gram over char tokens (V = 24)", "81 n-gram counts (24, 57 by order",
                   "216 tokens, 216 chars from text.py"]),
        ("hmm", ["hidden Markov model, 3 states over 24 tokens", "84 probabilities (77 free)", "tokenizer    char",
                 "Baum-Welch, 5 iterations"]),
        ("window", ["2 previous tokens x embed 4 -> tanh 8 -> softmax", "parameters   388", "vocabulary 24",
                    "history      20 steps"]),
        ("lds", ["2 hidden states -> 2 observed columns", "parameters   19", "columns x, y; 32 training rows, 8 held out",
                 "EM, 5 iterations"]),
        ("ar", ["linear autoregression AR(3): the last 3 rows of 2 columns", "parameters   14", "least squares"]),
        ("ctc", ["frames of 2 columns x 16 px -> linear 8 -> 1 x bidirectional gru 8 -> blank + 36 characters",
                 "parameters   1,757", "Adam lr 0.003, batch 32, 5 steps at most"]),
    ],
)  # fmt: skip
def test_info_describes_each_kind_from_what_it_recorded(cli, kind, expected, tmp_path) -> None:
    code, out, err = cli("info", _copy(kind, tmp_path))
    assert code == 0 and err == ""
    for text in expected:
        assert text in out
    assert "rnnlab       0.1.0" in out and "?" not in out


def test_one_writer_records_kind_and_version_and_one_reader_checks_it(tmp_path) -> None:
    write_run_config(tmp_path, "tag", {"hidden": 8}, {"tags": ["no", "yes"]})
    data = read_run(tmp_path, "tag")
    assert data["kind"] == "tag" and data["rnnlab_version"] and data["tags"] == ["no", "yes"]
    with pytest.raises(
        RnnlabError, match=r"holds a sequence tagger \(tag run\), not a language model; use `rnnlab tag predict`"
    ):
        read_run(tmp_path, LANGUAGE_MODELS)
    with pytest.raises(ValueError, match="unknown run kind"):
        write_run_config(tmp_path, "nope", {})
    with pytest.raises(ValueError, match="may not replace"):
        write_run_config(tmp_path, "tag", {}, {"kind": "lm"})
    (tmp_path / CONFIG).write_text(json.dumps({"kind": "diffusion", "model": {}}))
    with pytest.raises(RnnlabError, match="unknown run kind 'diffusion'"):
        read_run(tmp_path)


def test_runs_without_a_kind_are_language_models_or_reference_runs_by_their_engine(tmp_path) -> None:
    (tmp_path / CONFIG).write_text(json.dumps({"model": {}, "train": {}}))
    assert read_run(tmp_path)["kind"] == "lm"
    (tmp_path / CONFIG).write_text(json.dumps({"model": {}, "train": {"engine": "rnnlab.reference"}}))
    assert read_run(tmp_path, LANGUAGE_MODELS)["kind"] == "reference"
    assert "kind" not in json.loads((FIXTURES / "lm" / CONFIG).read_text())  # as rnnlab 0.1.0 wrote it


WRITERS = {  # each kind's command line, at a tiny size, without its --out
    "lm": "train {corpus} --preset tiny --hidden 8 --embed 4 --max-steps 1 --device cpu",
    "reference": "reference train {corpus} --hidden 4 --max-iters 2 --sample-every 0",
    "classify": "classify train --examples 40 --steps 1 --hidden 4",
    "tag": "tag train --examples 40 --steps 1 --hidden 4",
    "seq2seq": "seq2seq train --examples 40 --steps 1 --hidden 4 --length 3",
    "timeseries": "timeseries train --max-steps 1 --hidden 4 --window 5",
    "caption": "caption train --examples 20 --steps 1 --hidden 4 --embed 4",
    "vqa": "vqa train --scenes 30 --questions 2 --steps 1 --hidden 4 --embed 4",
    "esn": "esn train {series} --hidden 10 --washout 5",
    "ngram": "ngram train {corpus} --order 2",
    "hmm": "hmm train {corpus} --states 3 --max-iters 5",
    "window": "window train {corpus} --context 2 --embed 4 --hidden 8 --max-steps 20",
    "lds": "lds train {series} --states 2 --max-iters 5",
    "ar": "ar train {series} --order 3",
    "ctc": "ctc train --task lines --examples 20 --height 16 --max-steps 2 --hidden 8 --embed 8",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_writer_records_its_kind_and_version(cli, kind, tmp_path, corpus_file) -> None:
    series = tmp_path / "series.csv"
    series.write_text(SERIES)
    args = [word.format(corpus=corpus_file, series=series) for word in WRITERS[kind].split()]
    code, _, err = cli(*args, "--out", tmp_path / kind)
    assert code == 0, err
    written = json.loads((tmp_path / kind / CONFIG).read_text())
    assert written["kind"] == kind and written["rnnlab_version"] == rnnlab.__version__
    assert read_run(tmp_path / kind, kind)["kind"] == kind
