"""Mixed precision on the CPU: `auto` picks bf16 only where it is native; bf16 training learns as well
as fp32 and still resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnlab
from rnnlab.errors import RnnlabError
from rnnlab.train.precision import Precision, resolve_precision

CPU = torch.device("cpu")


def test_explicit_precisions_are_kept_and_auto_falls_back_to_fp32_without_native_bf16(monkeypatch):
    assert [resolve_precision(p, CPU) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"
    assert Precision("auto", CPU).dtype is None  # fp32: autocast disabled


def test_auto_is_bf16_exactly_when_onednn_has_native_bf16():
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")


def test_bf16_training_learns_like_fp32(tmp_path: Path, corpus_file: Path, tiny: dict):
    args = dict(max_steps=120, eval_every=120, lr=1e-2, **tiny)
    fp32 = rnnlab.train([str(corpus_file)], out=tmp_path / "fp32", **args)
    bf16 = rnnlab.train([str(corpus_file)], out=tmp_path / "bf16", precision="bf16", **args)
    assert bf16.best_val_bpc < 3.0  # unigram entropy of this text is about 4.3 bits
    assert abs(bf16.best_val_bpc - fp32.best_val_bpc) < 0.1


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
