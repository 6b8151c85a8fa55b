"""Softmax cross-entropy: the loss of a categorical prediction, and its famously simple gradient."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """p_k = e^{y_k} / Σ_j e^{y_j} over the last axis (shifted by the max so nothing overflows)."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy(logits: np.ndarray, targets: np.ndarray, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """Loss −Σ log p[target] and its gradient with respect to the logits, for logits (N, T, V), targets (N, T).

    `reduction="mean"` divides by N·T (torch's `F.cross_entropy`); `"sequence"` divides by N only, so
    each stream's loss is summed over its T steps: min-char-rnn's loss for N = 1, averaged over streams.
    """
    if reduction not in ("mean", "sequence"):
        raise ValueError(f"reduction must be 'mean' or 'sequence', got {reduction!r}")
    N, T, _ = logits.shape
    count = N * T if reduction == "mean" else N
    p = softmax(logits)
    p_target = np.take_along_axis(p, targets[..., None], axis=-1)
    loss = -np.log(p_target).sum() / count  # L = −Σ log p_target / count
    dlogits = p.copy()
    np.put_along_axis(dlogits, targets[..., None], p_target - 1.0, axis=-1)  # dL/dy = p − onehot(target)
    return float(loss), dlogits / count
