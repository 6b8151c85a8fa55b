"""The one-token steppers compute what RNNLM.forward computes, and see in-place weight updates."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.lm.model import RNNLM
from rnnlab.lm.stepper import CellStepper, FusedStepper, ModuleStepper, make_stepper
from rnnlab.nn import registry

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


def steps_equal_the_sequence_forward(module: RNNLM) -> FusedStepper | CellStepper | ModuleStepper:
    """Step 40 tokens through `make_stepper`'s stepper: the logits and final state of one sequence forward, to
    float32 rounding (the stepper sums in another order). Returns the stepper."""
    tokens = torch.randint(V, (1, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, final, _ = module(tokens)
        stepper = make_stepper(module)
        steps = np.stack([stepper.step(int(t)) for t in tokens[0]])
    np.testing.assert_allclose(steps, logits[0].numpy(), rtol=1e-4, atol=1e-4)
    for a, b in zip(
        states(stepper.module_state()), states(final), strict=True
    ):  # float32 rounding, at the scale of each part
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5 * max(1.0, float(b.abs().max())))
    return stepper


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "lstm", "layers": 2},
        {"cell": "gru", "layers": 2, "embed": 0},  # one-hot input
        {"cell": "rnn-tanh", "layers": 1, "learn_init": True},
        {"cell": "rnn-relu", "layers": 2, "spread": 0.0},  # wider weights: ReLU growth amplifies rounding
        {"cell": "lstm", "layers": 1, "tie_weights": True, "learn_init": True},  # projection H -> D, tied head
        {"cell": "lstm", "layers": 2, "variational": True, "dropout": 0.3},  # layered cells, the NumPy path
        {"cell": "gru", "layers": 2, "variational": True, "learn_init": True},  # layered cells, the NumPy path
        {"cell": "irnn", "layers": 2, "variational": True, "spread": 0.1},  # ReLU Elman cells, the NumPy path
        {"cell": "gru-cho", "layers": 2},  # not fused: the module path
        {"cell": "lstm", "layers": 2, "layer_norm": True},  # a per-layer extra: the module path
        {"cell": "lstm", "layers": 2, "residual": True, "embed": 24},  # a per-layer extra: the module path
        {"cell": "lstm", "layers": 1, "peephole": True},  # other equations: the module path
        {"cell": "mlstm", "layers": 2},  # a NumPy step of its own: the cells' path
        {"cell": "mlstm", "layers": 3, "embed": 0},  # one-hot input
        {"cell": "mlstm", "layers": 1, "tie_weights": True},  # projection H -> D, tied head
        {"cell": "mlstm", "layers": 2, "layer_norm": True},  # a per-layer extra: the module path
        {"cell": "mlstm-local", "layers": 2, "window": 5},  # its window shifts step by step in NumPy
    ],
)
def test_steps_equal_the_sequence_forward(options: dict) -> None:
    module = model(**options)
    stepper = steps_equal_the_sequence_forward(module)
    plain = not any(options.get(k) for k in ("layer_norm", "residual", "peephole"))
    has_equations = registry.get(options["cell"]).equations is not None
    has_numpy_step = module.rnn.layers[0].numpy_step() is not None
    assert isinstance(stepper, FusedStepper) == (plain and has_equations)
    assert isinstance(stepper, CellStepper) == (plain and has_numpy_step)


def test_the_mlstm_step_where_its_exponentials_leave_float32() -> None:
    """Write gates near e^-100 and forget gates near e^-10: within a few steps the stabiliser m falls to -100 and
    e^{-m} overflows float32. The NumPy step gives what the sequence forward gives, silently (no overflow warning)."""
    module = model(cell="mlstm", layers=2)
    with torch.no_grad():
        for cell in module.rnn.layers:
            heads = cell.heads
            cell.gates.weight.zero_()
            cell.gates.bias[:heads] = -100.0  # ĩ
            cell.gates.bias[heads:] = -10.0  # f̃
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stepper = steps_equal_the_sequence_forward(module)
    assert float(stepper.module_state()[3].min()) < -88  # m: e^{-m} is past float32's largest value


@pytest.mark.parametrize("name", [spec.name for spec in registry.cells() if spec.equations is not None])
def test_every_cell_with_equations_is_stepped_in_numpy(name: str) -> None:
    """A registered cell with `equations` takes the NumPy path with no edit to the stepper (PyTorch's init)."""
    assert isinstance(steps_equal_the_sequence_forward(model(0.0, cell=name, layers=2)), FusedStepper)


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "lstm", "layers": 2, "learn_init": True},
        {"cell": "gru", "layers": 2},
        {"cell": "gru-cho", "layers": 2},
        {"cell": "mlstm", "layers": 2},
    ],
)
def test_set_state_continues_from_the_modules_state(options: dict) -> None:
    """A prefix through the sequence forward, its state handed over, the rest stepped: the whole sequence's
    logits. set_state(None) goes back to the initial state (learned here for the LSTM)."""
    module = model(**options)
    tokens = torch.randint(V, (1, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits, _, _ = module(tokens)
        _, state, _ = module(tokens[:, :20])
        stepper = make_stepper(module)
        stepper.set_state(state)
        steps = np.stack([stepper.step(int(t)) for t in tokens[0, 20:]])
        np.testing.assert_allclose(steps, logits[0, 20:].numpy(), rtol=1e-4, atol=1e-4)
        stepper.set_state(None)
        np.testing.assert_allclose(stepper.step(int(tokens[0, 0])), logits[0, 0].numpy(), rtol=1e-4, atol=1e-4)


def test_a_vocabulary_past_the_table_limit_steps_without_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Layer 0's input share from the embedding row, one product per step: the same logits."""
    module = model(cell="lstm", layers=2)
    tokens = torch.randint(V, (1, 20), generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr("rnnlab.lm.stepper.TABLE_LIMIT", 0)
    with torch.no_grad():
        logits, _, _ = module(tokens)
        stepper = FusedStepper(module)
        assert stepper.table is None
        steps = np.stack([stepper.step(int(t)) for t in tokens[0]])
    np.testing.assert_allclose(steps, logits[0].numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("cell", "stepper_class"), [("lstm", FusedStepper), ("mlstm", CellStepper)])
def test_only_float32_cpu_models_take_the_numpy_path(cell: str, stepper_class: type) -> None:
    module = model(cell=cell, layers=2)
    assert stepper_class.supports(module)
    assert not stepper_class.supports(module.double())
    assert isinstance(make_stepper(module.double()), ModuleStepper)


@pytest.mark.parametrize(
    ("cell", "stepper_class"), [("lstm", FusedStepper), ("lstm", ModuleStepper), ("mlstm", CellStepper)]
)
def test_in_place_weight_updates_are_seen_after_refresh(cell: str, stepper_class: type) -> None:
    module = model(cell=cell, layers=2)
    stepper = stepper_class(module)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(0.5)  # what dynamic evaluation's update does: in place
        stepper.refresh()
        fresh = stepper_class(module)
        np.testing.assert_array_equal(stepper.step(3), fresh.step(3))
