"""Every reference layer and the whole model pass a central-difference gradient check in float64."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.reference import GRU, LSTM, RNN, CharRNN
from rnnlab.reference.gradcheck import check_layer, check_model, numerical_gradient, relative_error
from rnnlab.reference.loss import cross_entropy

N, T, D, H, V = 2, 5, 3, 4, 6
LAYERS = {
    "rnn-tanh": lambda rng: RNN(D, H, "tanh", rng=rng),
    "rnn-relu": lambda rng: RNN(D, H, "relu", rng=rng),
    "lstm": lambda rng: LSTM(D, H, rng=rng),
    "gru": lambda rng: GRU(D, H, "torch", rng=rng),
    "gru-cho": lambda rng: GRU(D, H, "cho", rng=rng),
}


def randomise(params: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Weights and biases large enough that every nonlinearity works away from its linear region."""
    for p in params.values():
        p[...] = rng.standard_normal(p.shape) * 0.7


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_gradients(name: str):
    rng = np.random.default_rng(0)
    layer = LAYERS[name](rng)
    randomise(layer.params, rng)
    state = tuple(rng.standard_normal((N, H)) for _ in layer.initial_state(N))
    errors = check_layer(layer, rng.standard_normal((N, T, D)), state)
    assert set(errors) >= {*layer.params, "x", "state0"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("cell", ["rnn-tanh", "rnn-relu", "lstm", "gru", "gru-cho"])
@pytest.mark.parametrize("reduction", ["mean", "sequence"])
def test_model_gradients(cell: str, reduction: str):
    rng = np.random.default_rng(1)
    model = CharRNN(cell, V, H, rng=rng, reduction=reduction)
    randomise(model.params, rng)
    state = tuple(rng.standard_normal((N, H)) for _ in model.layer.initial_state(N))
    errors = check_model(model, rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T)), state)
    assert set(errors) >= {*model.params, "state0"}
    assert max(errors.values()) < 1e-7, errors


def test_cross_entropy_gradient():
    rng = np.random.default_rng(2)
    logits, targets = rng.standard_normal((N, T, V)), rng.integers(0, V, (N, T))
    loss, dlogits = cross_entropy(logits, targets)
    numeric = numerical_gradient(lambda: cross_entropy(logits, targets)[0], logits)
    assert relative_error(dlogits, numeric) < 1e-7
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(np.take_along_axis(p, targets[..., None], -1))), rel=1e-14)


def test_the_checker_catches_a_wrong_backward_pass():
    """A backward pass that ignores all but the last output gradient: the check must report it."""

    class Truncated(RNN):
        def backward(self, dh: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
            dh_last = np.zeros_like(dh)
            dh_last[:, -1] = dh[:, -1]
            return super().backward(dh_last)

    rng = np.random.default_rng(3)
    layer = Truncated(D, H, rng=rng)
    randomise(layer.params, rng)
    errors = check_layer(layer, rng.standard_normal((N, T, D)), (rng.standard_normal((N, H)),))
    assert errors["W_hh"] > 1e-2
