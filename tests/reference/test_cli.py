"""`rnnlab reference train` writes a run directory that `rnnlab sample` and `rnnlab eval` use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnlab.lm.model import LanguageModel


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("hello world, the cat sat on the mat. " * 40)
    return path


def test_reference_train_then_sample_and_eval(tmp_path: Path, text_file: Path, cli):
    out = tmp_path / "run"
    args = ["--out", out, "--hidden", "16", "--max-iters", "200", "--print-every", "100", "--sample-every", "200"]
    code, stdout, err = cli("reference", "train", text_file, *args)
    assert code == 0, err
    losses = [float(line.split()[-1]) for line in stdout.splitlines() if line.startswith("iter ")]
    assert len(losses) == 2 and losses[1] < losses[0]
    V = len(set(text_file.read_text()))
    config = json.loads((out / "config.json").read_text())
    expected = {"vocab_size": V, "cell": "rnn-tanh", "layers": 1, "hidden": 16, "embed": 0, "dropout": 0.0}
    assert {k: config["model"][k] for k in expected} == expected
    assert config["train"]["optimizer"] == "adagrad" and config["train"]["clip_value"] == 5.0

    code, sample, _ = cli("sample", out, "--length", "30", "--seed", "1")
    assert code == 0 and len(sample) == 31
    code, scores, _ = cli("eval", out, text_file, "--json")
    assert code == 0
    assert json.loads(scores)["bits_per_char"] < np.log2(V) - 1  # far better than uniform: the weights loaded


def test_run_directory_loads_as_rnnlm(tmp_path: Path, text_file: Path, cli):
    out = tmp_path / "run"
    assert cli("reference", "train", text_file, "--out", out, "--hidden", "8", "--max-iters", "20")[0] == 0
    lm = LanguageModel.load(out)
    assert lm.module.rnn.layers[0].bias_hh.abs().sum().item() == 0.0
    assert lm.module.head.weight.shape == (len(set(text_file.read_text())), 8)


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--cell", "mut1"], "unknown cell"),
        (["--optimizer", "lbfgs"], "unknown optimizer"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--seq-len", "5000"], "too few"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, text_file: Path, cli, flags: list[str], match: str):
    code, _, err = cli("reference", "train", text_file, "--out", tmp_path / "r", *flags)
    assert code == 2 and len(err.strip().splitlines()) == 1 and match in err, err


def test_task_demos(tmp_path: Path, cli):
    assert "hell -> ello" in cli("task", "hello")[1]
    assert "hand-built   0 0 0 0 1 1 0 0 1" in cli("task", "repeated-ones")[1]
    assert "h_1 = [0.54 0.2  0.72]" in cli("task", "worked-example")[1]
    code, table, _ = cli("task", "gradient-flow", "--plot", tmp_path / "flow.png", "--steps", "20")
    assert code == 0 and "tanh" in table and (tmp_path / "flow.png").stat().st_size > 1000
