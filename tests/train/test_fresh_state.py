"""Random stream resets (--reset-prob): which rows restart, from which state, and that a learned initial
state trains through them."""

from __future__ import annotations

from pathlib import Path

import torch

import rnnlab
from rnnlab.nn.recurrent import reset_rows
from rnnlab.rundir import load_tensors


def test_reset_rows_restarts_only_the_chosen_streams_from_the_initial_state():
    h, c = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    keep = torch.tensor([True, False, True, False])
    zeros_h, zeros_c = reset_rows((h, c), keep)
    assert torch.equal(zeros_h[:, keep], h[:, keep]) and torch.equal(zeros_c[:, keep], c[:, keep])
    assert not zeros_h[:, ~keep].any() and not zeros_c[:, ~keep].any()
    initial = torch.randn(2, 1, 3, requires_grad=True)
    learned = reset_rows(h, keep, initial.expand(-1, 4, -1))
    assert torch.equal(learned[:, 1], initial[:, 0].detach()) and torch.equal(learned[:, 0], h[:, 0])
    learned.sum().backward()
    assert torch.equal(initial.grad, torch.full_like(initial, 2.0))  # two streams took it


def test_resets_depend_only_on_seed_and_step(tmp_path: Path, corpus_file: Path, tiny: dict):
    """Two runs with the same seed reset the same streams (so resume stays exact); another seed differs."""
    args = dict(max_steps=12, eval_every=100, reset_prob=0.5, decay="none", **tiny)
    a = rnnlab.train([str(corpus_file)], out=tmp_path / "a", **args)
    b = rnnlab.train([str(corpus_file)], out=tmp_path / "b", **args)
    c = rnnlab.train([str(corpus_file)], out=tmp_path / "c", **{**args, "reset_prob": 0.0})
    weights = [load_tensors(r.run_dir / "model.safetensors") for r in (a, b, c)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_a_learned_initial_state_trains_through_the_resets(tmp_path: Path, corpus_file: Path, tiny: dict):
    """With --learn-init the streams that restart take the learned state, so it receives gradient at every
    reset, not only at the first chunk of an epoch."""
    args = dict(max_steps=30, eval_every=100, learn_init=True, warmup=0, **tiny)
    rare = rnnlab.train([str(corpus_file)], out=tmp_path / "rare", reset_prob=0.0, **args)
    often = rnnlab.train([str(corpus_file)], out=tmp_path / "often", reset_prob=0.3, **args)
    moved = {}
    for name, result in (("rare", rare), ("often", often)):
        initial = load_tensors(result.run_dir / "model.safetensors")["rnn.initial"]
        moved[name] = float(initial.abs().sum())
    assert moved["often"] > 2 * moved["rare"] > 0
