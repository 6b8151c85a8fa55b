"""The command line end to end: train -> sample -> eval -> info, and every bad input -> one line, exit 2."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

TINY_FLAGS = ["--preset", "tiny", "--hidden", "32", "--embed", "8", "--batch-size", "4", "--seq-len", "16"]


def expect_error(cli: Callable[..., tuple[int, str, str]], *args: str, match: str) -> str:
    code, _, err = cli(*args)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0], lines[0]
    return lines[0]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_train_sample_eval_info_end_to_end(tmp_path: Path, corpus_file: Path, cli):
    out = tmp_path / "run"
    code, _, err = cli("train", corpus_file, "--out", out, *TINY_FLAGS, "--max-steps", "30", "--eval-every", "10")
    assert code == 0, err
    assert {"config.json", "tokenizer.json", "model.safetensors", "metrics.jsonl"} <= {p.name for p in out.iterdir()}
    assert (out / "checkpoint" / "state.safetensors").is_file()

    code, sample, _ = cli("sample", out, "--prime", "def ", "--length", "50", "--seed", "7", "--top-k", "5")
    assert code == 0 and sample.startswith("def ") and len(sample) == len("def ") + 50 + 1
    _, again, _ = cli("sample", out, "--prime", "def ", "--length", "50", "--seed", "7", "--top-k", "5")
    assert again == sample
    _, two, _ = cli("sample", out, "--length", "20", "--num-samples", "2", "--seed", "1")
    assert two.count("\n---\n") == 1

    code, text, _ = cli("eval", out, corpus_file, "--json")
    scores = json.loads(text)
    assert set(scores) == {"nats_per_token", "bits_per_char", "perplexity", "tokens", "chars"}
    assert scores["tokens"] == len(corpus_file.read_text()) - 1

    code, text, _ = cli("info", out)
    assert code == 0 and "parameters" in text and "validation   best" in text


def test_eval_on_training_text_beats_shuffled_text(trained_run: Path, corpus_file: Path, tmp_path: Path, cli):
    text = corpus_file.read_text()
    chars = list(text)
    random.Random(0).shuffle(chars)
    shuffled = tmp_path / "shuffled.py"
    shuffled.write_text("".join(chars))
    _, own, _ = cli("eval", trained_run, corpus_file, "--json")
    _, other, _ = cli("eval", trained_run, shuffled, "--json")
    own_bpc, other_bpc = json.loads(own)["bits_per_char"], json.loads(other)["bits_per_char"]
    assert own_bpc < other_bpc - 1.0


def test_byte_tokenizer_trains_on_binary_and_scores_per_character(tmp_path: Path, cli):
    data = tmp_path / "mixed.txt"
    data.write_text("naïve café ☃ " * 400)
    code, _, err = cli("train", data, "--out", tmp_path / "run", "--tokenizer", "byte", *TINY_FLAGS,
                       "--max-steps", "5")  # fmt: skip
    assert code == 0, err
    _, text, _ = cli("eval", tmp_path / "run", data, "--json")
    scores = json.loads(text)
    assert scores["tokens"] == len(data.read_bytes()) - 1
    assert scores["chars"] == len(data.read_text()) - 1


# ---- bad input: one line, exit status 2, nothing damaged ----


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "empty": tmp_path / "empty.txt",
        "binary": tmp_path / "blob.bin",
        "latin1": tmp_path / "latin1.txt",
        "short": tmp_path / "short.txt",
        "euro": tmp_path / "euro.txt",
    }
    paths["empty"].write_text("")
    paths["binary"].write_bytes(bytes(range(256)) * 4)
    paths["latin1"].write_bytes("café crème ".encode("latin-1") * 100)
    paths["short"].write_text("too short")
    paths["euro"].write_text("price: 5 €")
    return paths


@pytest.mark.parametrize(
    ("key", "extra", "match"),
    [
        ("missing", [], "input not found"),
        ("empty", [], "training input is empty"),
        ("binary", [], "binary file; use --tokenizer byte"),
        ("latin1", [], "not valid UTF-8"),
        ("short", [], "too short"),
    ],
)
def test_bad_training_input(tmp_path, files, cli, key, extra, match):
    source = files.get(key, tmp_path / "missing.txt")
    expect_error(cli, "train", source, "--out", tmp_path / "out", *TINY_FLAGS, *extra, match=match)
    assert not (tmp_path / "out").exists()  # nothing half-made left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--hidden", "0"], "--hidden must be > 0"),
        (["--layers", "-1"], "--layers must be > 0"),
        (["--batch-size", "0"], "--batch-size must be > 0"),
        (["--seq-len", "0"], "--seq-len must be > 0"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--lr", "-0.1"], "--lr must be > 0"),
        (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
        (["--cell", "transformer"], "'transformer' is not one of 'rnn-tanh'"),
        (["--optimizer", "lion"], "'lion' is not one of 'adam'"),
        (["--max-time", "soon"], "cannot read duration"),
        (["--preset", "huge"], "'huge' is not one of 'tiny'"),
        (["--hidden", "many"], "Invalid value for '--hidden'"),
        (["--no-such-flag"], "No such option"),
    ],
)
def test_impossible_hyperparameters(tmp_path, corpus_file, cli, flags, match):
    expect_error(cli, "train", corpus_file, "--out", tmp_path / "out", *TINY_FLAGS, *flags, match=match)


def test_bad_run_directories_and_files(trained_run: Path, tmp_path: Path, files, cli):
    expect_error(cli, "sample", tmp_path / "nowhere", match="is not a directory")
    expect_error(cli, "sample", tmp_path, match="not an rnnlab run directory")
    expect_error(cli, "eval", trained_run, files["euro"], match="'€'")
    expect_error(cli, "sample", trained_run, "--prime", "€", match="not in the model's vocabulary")
    expect_error(cli, "eval", trained_run, files["latin1"], match="not valid UTF-8")
    expect_error(cli, "sample", trained_run, "--top-p", "0", match="--top-p")

    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    expect_error(cli, "sample", broken, match="corrupt or truncated")
    weights.write_bytes(b"\xff" * 64)
    expect_error(cli, "eval", broken, files["short"], match="corrupt or truncated")
    (broken / "config.json").write_text("{not json")
    expect_error(cli, "info", broken, match="not valid JSON")


def test_existing_run_is_never_damaged(trained_run: Path, corpus_file: Path, cli):
    before = digest(trained_run)
    expect_error(cli, "train", corpus_file, "--out", trained_run, *TINY_FLAGS, match="already exists; use --resume")
    expect_error(cli, "train", "--out", trained_run, "--resume", "--hidden", "64", match="--hidden 64 differs")
    expect_error(cli, "train", "--out", trained_run, "--resume", "--cell", "gru", match="--cell gru differs")
    expect_error(cli, "train", "--out", trained_run, "--resume", "--lr", "-1", match="--lr must be > 0")
    assert digest(trained_run) == before


def test_resume_needs_a_run(tmp_path: Path, cli):
    expect_error(cli, "train", "--resume", match="--resume needs --out")
    expect_error(cli, "train", "--out", tmp_path / "none", "--resume", match="is not a directory")


def test_characters_only_in_the_held_out_tail_are_in_the_vocabulary(tmp_path: Path, cli):
    """The default corpus has such files (ligatures in a docstring's tail): training must not fail on them."""
    data = tmp_path / "tail.txt"
    data.write_text("plain ascii text, repeated. " * 200 + "ﬅ")
    code, _, err = cli("train", data, "--out", tmp_path / "run", *TINY_FLAGS, "--max-steps", "3")
    assert code == 0, err
    assert "ﬅ" in json.loads((tmp_path / "run" / "tokenizer.json").read_text())["model"]["vocab"]
