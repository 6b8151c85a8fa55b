"""Training: exact resume, kill-and-resume, epoch reset of the carried state, divergence rollback."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import rnnlab
from rnnlab.lm.train import _Loop


def _tensors(path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}  # noqa: SIM118


def test_training_learns_and_logs(trained_run: Path):
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train_loss" in r]
    val_rows = [r for r in rows if "val_bpc" in r]
    assert {"step", "lr", "train_loss", "train_bpc", "tokens_per_s"} <= set(train_rows[0])
    assert [r["step"] for r in val_rows] == [50, 100, 150]
    assert train_rows[-1]["train_loss"] < train_rows[0]["train_loss"] - 1.0
    assert val_rows[-1]["val_bpc"] < 3.0  # unigram entropy of this text is about 4.3 bits


def test_word_runs_log_bits_per_char_as_validation_does(tmp_path: Path, corpus_file: Path, tiny: dict):
    """A word is many characters: the training line's bits per char is bits per token over the training split's
    characters per token (shown beside it), the unit validation reports, not bits per token called "bpc"."""
    rnnlab.train([str(corpus_file)], out=tmp_path / "w", tokenizer="word", max_steps=40, eval_every=20, **tiny)
    rows = [json.loads(line) for line in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "train_loss" in r][-1]
    per_token = last["train_loss"] / math.log(2)
    assert per_token > 2 * last["train_bpc"]  # several characters a token
    val = [r for r in rows if "val_bpc" in r][-1]["val_bpc"]
    assert 0.5 < last["train_bpc"] / val < 2  # the same unit as validation's


def test_resume_continues_exactly(tmp_path: Path, corpus_file: Path, tiny: dict):
    """N steps in one go == N/2 steps, then --resume to N: identical weights, byte for byte."""
    args = dict(max_steps=40, eval_every=10, checkpoint_every=10, decay="none", dropout=0.1, **tiny)
    rnnlab.train([str(corpus_file)], out=tmp_path / "whole", **args)
    rnnlab.train([str(corpus_file)], out=tmp_path / "split", **{**args, "max_steps": 20})
    rnnlab.train(out=tmp_path / "split", resume=True, **{**args, "max_steps": 40})
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert (whole / "model.safetensors").read_bytes() == (split / "model.safetensors").read_bytes()
    a, b = _tensors(whole / "checkpoint/state.safetensors"), _tensors(split / "checkpoint/state.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [json.loads(line)["step"] for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(map(tuple, enumerate(steps))))


def test_killed_run_resumes_to_the_same_weights(tmp_path: Path, corpus_file: Path):
    """SIGKILL mid-training (cosine schedule), resume, compare with an uninterrupted run."""
    flags = ["--preset", "tiny", "--hidden", "48", "--embed", "16", "--batch-size", "8", "--seq-len", "32",
             "--max-steps", "300", "--checkpoint-every", "25", "--eval-every", "100"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rnnlab", "train", str(corpus_file)]
    subprocess.run([*cmd, "--out", str(tmp_path / "whole"), *flags], check=True, env=env, capture_output=True)

    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "killed"), *flags], env=env, stderr=subprocess.PIPE)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until it is past at least one checkpoint, then kill it hard
        if metrics.exists() and any(json.loads(r)["step"] >= 60 for r in metrics.read_text().splitlines() if r):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run(
        [*cmd, "--out", str(tmp_path / "killed"), "--resume", *flags], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "whole/model.safetensors").read_bytes() == (tmp_path / "killed/model.safetensors").read_bytes()
    a = _tensors(tmp_path / "whole/checkpoint/state.safetensors", "model.")
    b = _tensors(tmp_path / "killed/checkpoint/state.safetensors", "model.")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_state_is_carried_within_an_epoch_and_reset_at_its_end(tmp_path: Path, corpus_file: Path, tiny: dict):
    rnnlab.train([str(corpus_file)], out=tmp_path / "run", max_steps=1, **tiny)
    cfg = rnnlab.config.train_config_from_dict(json.loads((tmp_path / "run/config.json").read_text())["train"])
    model_cfg = rnnlab.config.model_config_from_dict(json.loads((tmp_path / "run/config.json").read_text())["model"])
    loop = _Loop(tmp_path / "run", model_cfg, cfg, show_progress=False)
    seen: list[bool] = []
    forward = loop.model.forward
    loop.model.forward = lambda x, state=None, targets=None: (seen.append(state is None), forward(x, state, targets))[1]
    per_epoch = loop.stream.chunks_per_epoch
    loop.progress.chunk = per_epoch - 2  # two chunks before the end of epoch 0
    loop.carried = None
    for _ in range(3):
        loop._train_step()
    assert seen == [True, False, True]  # fresh, carried, reset at the epoch boundary
    assert (loop.progress.epoch, loop.progress.chunk) == (1, 1)


def test_nonfinite_loss_rolls_back_and_lowers_the_learning_rate(tmp_path, corpus_file, monkeypatch, capsys, tiny):
    calls = {"n": 0}
    real = rnnlab.lm.model.RNNLM.forward

    def flaky(self, tokens, state=None, targets=None):
        logits, state, loss = real(self, tokens, state, targets)
        if targets is not None and self.training:
            calls["n"] += 1
            if calls["n"] == 15:
                loss = loss * float("nan")
        return logits, state, loss

    monkeypatch.setattr(rnnlab.lm.model.RNNLM, "forward", flaky)
    result = rnnlab.train([str(corpus_file)], out=tmp_path / "run", max_steps=20, checkpoint_every=10, **tiny)
    assert result.steps == 20
    err = capsys.readouterr().err
    assert "rolled back to step 10" in err and "lowered the learning rate" in err
    state = json.loads(safe_open(tmp_path / "run/checkpoint/state.safetensors", "pt").metadata()["progress"])
    assert state["lr_scale"] == 0.5
    assert all(torch.isfinite(t).all() for t in _tensors(tmp_path / "run/model.safetensors").values())


def test_early_stopping(tmp_path: Path, corpus_file: Path, tiny: dict):
    # lr so small that validation cannot improve by much; patience 1 stops at the first non-improvement.
    result = rnnlab.train(
        [str(corpus_file)], out=tmp_path / "run", max_steps=200, eval_every=2, patience=1, lr=1e-9, warmup=0, **tiny
    )
    assert result.steps < 200


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "adagrad", "rmsprop", "sgd"])
def test_every_optimizer_trains_and_resumes(tmp_path: Path, corpus_file: Path, optimizer: str, tiny: dict):
    lr = {"adagrad": 0.05, "sgd": 0.5, "rmsprop": 2e-3}.get(optimizer, 1e-2)
    args = dict(max_steps=8, checkpoint_every=4, eval_every=4, optimizer=optimizer, lr=lr, decay="none", **tiny)
    rnnlab.train([str(corpus_file)], out=tmp_path / "a", **args)
    rnnlab.train([str(corpus_file)], out=tmp_path / "b", **{**args, "max_steps": 4})
    rnnlab.train(out=tmp_path / "b", resume=True, **args)
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()


def test_mrnn_default_learning_rate_is_capped_unless_given():
    """mrnn diverges at the presets' 3e-3 (benchmarks/results/cells_quality.md): its default drops to 1e-3."""
    from rnnlab.config import build_configs
    from rnnlab.nn import registry

    assert build_configs("small", cell="mrnn")[1].lr == registry.get("mrnn").max_lr == 1e-3
    assert build_configs("small", cell="lstm")[1].lr == 3e-3
    assert build_configs("small", cell="mrnn", lr=3e-3)[1].lr == 3e-3  # an explicit --lr is kept
    assert build_configs("large", cell="mrnn")[1].lr == 1e-3
    assert build_configs(None, cell="mrnn")[1].lr == 1e-3  # TrainConfig's own 2e-3 is capped too


def test_samples_while_training_leave_the_training_unchanged(tmp_path: Path, corpus_file: Path, tiny: dict, capsys):
    """--sample-every N prints a sample every N steps from the sampler's own generator: with dropout on, a run
    that samples ends with the same weights, bit for bit, as one that does not."""
    args = dict(max_steps=20, eval_every=10, dropout=0.1, **tiny)
    rnnlab.train([str(corpus_file)], out=tmp_path / "quiet", sample_every=0, **args)
    assert "sample at step" not in capsys.readouterr().err
    rnnlab.train([str(corpus_file)], out=tmp_path / "talking", sample_every=10, **args)
    err = capsys.readouterr().err
    assert "sample at step 10" in err and "sample at step 20" in err
    quiet, talking = (
        _tensors(tmp_path / "quiet" / "model.safetensors"),
        _tensors(tmp_path / "talking" / "model.safetensors"),
    )
    assert all(torch.equal(quiet[k], talking[k]) for k in quiet)
