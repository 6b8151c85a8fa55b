"""Mixed precision on the CPU: `auto` picks bf16 only where it is native; bf16 training learns as well
as fp32 and still resumes exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnlab
from rnnlab.config import build_configs
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import RNNLM
from rnnlab.train.precision import Precision, check_precision, resolve_precision

CPU = torch.device("cpu")


def _bf16_runs_here() -> bool:
    """Whether this CPU's kernels run an LSTM in bf16 (an AVX2-only CPU's oneDNN has no such primitive)."""
    model_cfg, _ = build_configs("tiny", vocab_size=8)
    try:
        check_precision("bf16", CPU, RNNLM(model_cfg), 8)
    except RnnlabError:
        return False
    return True


BF16 = _bf16_runs_here()
needs_bf16 = pytest.mark.skipif(not BF16, reason="this CPU's oneDNN cannot run a bf16 LSTM (refusal tested instead)")


def test_explicit_precisions_are_kept_and_auto_falls_back_to_fp32_without_native_bf16(monkeypatch):
    assert [resolve_precision(p, CPU) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"
    assert Precision("auto", CPU).dtype is None  # fp32: autocast disabled


def test_auto_is_bf16_exactly_when_onednn_has_native_bf16():
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")


@needs_bf16
def test_bf16_training_learns_like_fp32(tmp_path: Path, corpus_file: Path, tiny: dict):
    args = dict(max_steps=120, eval_every=120, lr=1e-2, **tiny)
    fp32 = rnnlab.train([str(corpus_file)], out=tmp_path / "fp32", **args)
    bf16 = rnnlab.train([str(corpus_file)], out=tmp_path / "bf16", precision="bf16", **args)
    assert bf16.best_val_bpc < 3.0  # unigram entropy of this text is about 4.3 bits
    assert abs(bf16.best_val_bpc - fp32.best_val_bpc) < 0.1


@needs_bf16
def test_bf16_run_resumes_exactly(tmp_path: Path, corpus_file: Path, tiny: dict):
    args = dict(max_steps=30, eval_every=10, checkpoint_every=10, decay="none", precision="bf16", **tiny)
    rnnlab.train([str(corpus_file)], out=tmp_path / "whole", **args)
    rnnlab.train([str(corpus_file)], out=tmp_path / "split", **{**args, "max_steps": 15})
    rnnlab.train(out=tmp_path / "split", resume=True, **args)
    whole, split = (load_file(tmp_path / run / "checkpoint" / "state.safetensors") for run in ("whole", "split"))
    assert whole.keys() == split.keys()
    for key in whole:
        assert torch.equal(whole[key], split[key]), key


def test_unknown_precision_is_a_clear_error(tmp_path: Path, corpus_file: Path, tiny: dict):
    with pytest.raises(RnnlabError, match="fp32, bf16, fp16 or auto"):
        rnnlab.train([str(corpus_file)], out=tmp_path / "x", precision="fp8", **tiny)


@pytest.mark.skipif(BF16, reason="this CPU runs bf16; the refusal is tested with a failing kernel instead")
def test_bf16_is_refused_where_the_kernels_cannot_run_it(tmp_path: Path, corpus_file: Path, cli):
    code, _, err = cli("train", corpus_file, "--out", tmp_path / "r", "--precision", "bf16", "--max-steps", "1")
    assert code == 2 and err.startswith("error: --precision bf16 cannot run") and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


class _FailingKernel:
    """What autocast looks like on a CPU without a bf16 LSTM primitive: the forward pass raises."""

    def __enter__(self) -> None:
        raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive")

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_precision_the_kernels_cannot_run_is_refused_before_anything_is_written(
    tmp_path: Path, corpus_file: Path, cli, monkeypatch
):
    flags = ["--preset", "tiny", "--hidden", "16", "--embed", "8", "--batch-size", "4", "--seq-len", "16"]
    assert cli("train", corpus_file, "--out", tmp_path / "run", "--max-steps", "2", *flags)[0] == 0
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    monkeypatch.setattr(Precision, "autocast", lambda self: _FailingKernel())
    code, _, err = cli("train", corpus_file, "--out", tmp_path / "new", "--precision", "bf16", *flags)
    assert code == 2 and err.startswith("error: --precision bf16 cannot run") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new*"))
    code, _, err = cli("train", "--out", tmp_path / "run", "--resume", "--precision", "fp16", "--max-steps", "4")
    assert code == 2 and "--precision fp16 cannot run" in err, err
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    assert cli("train", "--out", tmp_path / "run", "--resume", "--max-steps", "4")[0] == 0


def test_auto_falls_back_to_fp32_when_the_recurrent_kernels_fail_in_bf16(monkeypatch):
    from rnnlab.train import precision

    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(precision, "_cpu_bf16_recurrences_run", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setattr(precision, "_cpu_bf16_recurrences_run", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"


def test_bf16_is_refused_on_an_avx2_only_onednn(tmp_path: Path, corpus_file: Path):
    """oneDNN capped at AVX2 (what an AVX2-only CPU gives it) has no bf16 LSTM primitive: the real kernel
    fails, `--precision bf16` is refused before anything is written, and `auto` trains in fp32."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1"}
    flags = ["--preset", "tiny", "--hidden", "16", "--embed", "8", "--batch-size", "4", "--seq-len", "16"]
    cmd = [sys.executable, "-m", "rnnlab", "train", str(corpus_file), *flags, "--max-steps", "2"]
    refused = subprocess.run(
        [*cmd, "--out", str(tmp_path / "bf16"), "--precision", "bf16"], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error: --precision bf16 cannot run") and len(refused.stderr.splitlines()) == 1
    assert not (tmp_path / "bf16").exists()
    auto = subprocess.run(
        [*cmd, "--out", str(tmp_path / "auto"), "--precision", "auto"], env=env, capture_output=True, text=True
    )
    assert auto.returncode == 0 and "runs in fp32" in auto.stderr, auto.stderr
