"""The one-token steppers compute what RNNLM.forward computes, and see in-place weight updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.models.language_model import RNNLM
from rnnlab.models.stepper import FusedStepper, ModuleStepper, make_stepper

V = 23


def model(spread: float = 0.3, **options: object) -> RNNLM:
    """Random weights, spread wider than PyTorch's init so that every gate is exercised."""
    torch.manual_seed(0)
    module = RNNLM(ModelConfig(vocab_size=V, **{"hidden": 24, "embed": 8, **options})).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(spread * torch.randn_like(p))
    return module


def states(state: object) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "lstm", "layers": 2},
        {"cell": "gru", "layers": 2, "embed": 0},  # one-hot input
        {"cell": "rnn-tanh", "layers": 1, "learn_init": True},
        {"cell": "rnn-relu", "layers": 2, "spread": 0.0},  # wider weights: ReLU growth amplifies rounding
        {"cell": "lstm", "layers": 1, "tie_weights": True, "learn_init": True},  # projection H -> D, tied head
        {"cell": "gru-cho", "layers": 2},  # not fused: the module path
        {"cell": "lstm", "layers": 2, "layer_norm": True},  # a per-layer extra: the module path
    ],
)
def test_steps_equal_the_sequence_forward(options: dict) -> None:
    """Equal to float32 rounding (the stepper sums in another order), in logits and final state."""
    module = model(**options)
    tokens = torch.randint(V, (1, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, final, _ = module(tokens)
        stepper = make_stepper(module)
        steps = np.stack([stepper.step(int(t)) for t in tokens[0]])
        assert isinstance(stepper, FusedStepper) == module.rnn.fused
        np.testing.assert_allclose(steps, logits[0].numpy(), rtol=1e-4, atol=1e-4)
        for a, b in zip(states(stepper.module_state()), states(final), strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stepper_class", [FusedStepper, ModuleStepper])
def test_in_place_weight_updates_are_seen_after_refresh(stepper_class: type) -> None:
    module = model(cell="lstm", layers=2)
    stepper = stepper_class(module)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(0.5)  # what dynamic evaluation's update does: in place
        stepper.refresh()
        fresh = stepper_class(module)
        np.testing.assert_array_equal(stepper.step(3), fresh.step(3))
