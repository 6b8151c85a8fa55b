"""Gradient clipping, the standard guard against exploding gradients in BPTT (Pascanu et al. 2013)."""

from __future__ import annotations

import math

import numpy as np


def clip_elementwise(grads: dict[str, np.ndarray], value: float) -> None:
    """Clip every gradient element to [−value, value] in place (min-char-rnn uses ±5)."""
    for g in grads.values():
        np.clip(g, -value, value, out=g)


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """‖g‖ = sqrt(Σ over all parameters and elements of g²): the L2 norm of the whole gradient."""
    return math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))


def clip_global_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Rescale all gradients together so that ‖g‖ ≤ max_norm, in place; return ‖g‖ before clipping.

    The lecture pseudo-code tests ‖g‖² > threshold; that compares a squared norm with a norm, so the
    threshold silently means its own square root. We compare the L2 norm itself, as torch's
    `clip_grad_norm_` does (including its 1e-6 guard against dividing by zero).
    """
    norm = global_norm(grads)
    scale = max_norm / (norm + 1e-6)
    if scale < 1.0:  # g ← g · max_norm / ‖g‖
        for g in grads.values():
            g *= scale
    return norm
