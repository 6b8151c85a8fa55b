"""Data-parallel training under torchrun (2 CPU processes, gloo): same loss curve as one process,
and a killed distributed run resumes to the same weights as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from rnnlab.errors import RnnlabError
from rnnlab.train.distributed import Distributed

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")

FLAGS = ["--preset", "tiny", "--hidden", "32", "--embed", "16", "--batch-size", "8", "--seq-len", "16",
         "--log-every", "1", "--eval-every", "1000", "--device", "cpu", "--decay", "none"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _train(corpus: Path, out: Path, *flags: str, procs: int = 0) -> list[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
    return [*(launcher if procs else [sys.executable]), "-m", "rnnlab", "train", str(corpus), "--out", str(out),
            *FLAGS, *flags]  # fmt: skip


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if "train_loss" in r]


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def test_two_processes_follow_the_single_process_loss_curve(tmp_path: Path, corpus_file: Path):
    """Same global batch (N = 8: 4 streams per rank) and seed, dropout 0: the same losses, step by step."""
    flags = ["--max-steps", "6", "--dropout", "0"]
    subprocess.run(_train(corpus_file, tmp_path / "one", *flags), check=True, env=ENV, capture_output=True)
    two = subprocess.run(_train(corpus_file, tmp_path / "two", *flags, procs=2), env=ENV, capture_output=True)
    assert two.returncode == 0, two.stderr.decode()[-3000:]
    one_losses, two_losses = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one_losses) == len(two_losses) == 6
    assert one_losses == pytest.approx(two_losses, abs=1e-5)
    # The checkpoint holds the full (L, N, H) carried state, gathered from both ranks.
    a, b = (
        _tensors(tmp_path / "one/checkpoint/state.safetensors"),
        _tensors(tmp_path / "two/checkpoint/state.safetensors"),
    )
    assert a["state.0"].shape == b["state.0"].shape == (1, 8, 32)
    assert torch.allclose(a["state.0"], b["state.0"], atol=1e-4)
    assert b["rng.dist.cpu"].shape[0] == 2


@pytest.mark.timeout(600)  # three torchrun launches; slow only on a loaded 2-core machine
def test_killed_distributed_run_resumes_to_the_same_weights(tmp_path: Path, corpus_file: Path):
    """SIGKILL torchrun and its workers after a checkpoint, resume: the weights equal an uninterrupted run's
    (dropout on, so each rank's generator state must be restored too)."""
    flags = ["--max-steps", "200", "--checkpoint-every", "3", "--dropout", "0.2"]  # long enough to kill mid-run
    whole = subprocess.run(_train(corpus_file, tmp_path / "whole", *flags, procs=2), env=ENV, capture_output=True)
    assert whole.returncode == 0, whole.stderr.decode()[-3000:]

    cmd = _train(corpus_file, tmp_path / "killed", *flags, procs=2)
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:  # past a few checkpoints, well before the end
        if metrics.exists() and any(json.loads(r)["step"] >= 7 for r in metrics.read_text().splitlines() if r):
            break
        time.sleep(0.05)
    for pid in [*_children(proc.pid), proc.pid]:  # torchrun starts each worker in its own session
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed/model.safetensors").exists()
    resumed = subprocess.run([*cmd, "--resume"], env=ENV, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    a = _tensors(tmp_path / "whole/checkpoint/state.safetensors")
    b = _tensors(tmp_path / "killed/checkpoint/state.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        if key.startswith(("model.", "optim.", "state.")):
            assert torch.equal(a[key], b[key]), key


def test_batch_must_split_evenly_across_processes():
    with pytest.raises(RnnlabError, match="divisible by the number of processes 3"):
        Distributed(rank=0, world=3).rows(8)
    assert Distributed(rank=1, world=2).rows(8) == slice(4, 8)


def _children(pid: int) -> list[int]:
    """Direct child processes of `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found
