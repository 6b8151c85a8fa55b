"""Gradient checking: compare a hand-written backward pass with central differences.

    dL/dθ_i ≈ (L(θ + ε e_i) − L(θ − ε e_i)) / 2ε        (error O(ε²); float64 makes ε = 1e-6 safe)

Agreement is measured as the relative error ‖a − n‖ / (‖a‖ + ‖n‖): about 1e-10 when the backward pass
is right, and of order 1 when a term is missing or a sign is wrong.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnnlab.reference.model import CharRNN, Layer, State


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """dF/dx by central differences, nudging each element of `x` in place (and restoring it)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        f_plus = f()
        x[i] = old - eps
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """‖a − n‖ / (‖a‖ + ‖n‖), 0 when both are zero."""
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(np.linalg.norm(analytic - numeric) / scale) if scale > 0 else 0.0


def check_layer(layer: Layer, x: np.ndarray, state: State, seed: int = 0) -> dict[str, float]:
    """Relative error of the layer's gradient for every parameter, the input `x` and each initial-state array.

    The loss is L = Σ h ⊙ w with a fixed random w, so every output element carries a different weight.
    """
    w = np.random.default_rng(seed).standard_normal(layer.forward(x, state)[0].shape)

    def loss() -> float:
        return float(np.sum(layer.forward(x, state)[0] * w))

    layer.forward(x, state)
    dx, dstate = layer.backward(w)
    analytic = {**layer.grads, "x": dx, **{f"state{i}": d for i, d in enumerate(dstate)}}
    arrays = {**layer.params, "x": x, **{f"state{i}": s for i, s in enumerate(state)}}
    return {name: relative_error(analytic[name], numerical_gradient(loss, arrays[name])) for name in analytic}


def check_model(model: CharRNN, tokens: np.ndarray, targets: np.ndarray, state: State) -> dict[str, float]:
    """Relative error of the whole model's gradient (head, layer, loss) for every parameter and the initial state."""

    def loss() -> float:
        return float(model.forward(tokens, targets, state)[2])

    loss()
    analytic = {**model.backward(), **{f"state{i}": d for i, d in enumerate(model.dstate0)}}
    arrays = {**model.params, **{f"state{i}": s for i, s in enumerate(state)}}
    return {name: relative_error(analytic[name], numerical_gradient(loss, arrays[name])) for name in analytic}
