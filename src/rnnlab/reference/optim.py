"""Optimisers over a dict of NumPy parameters, updated in place (so layers keep seeing their arrays).

Each `step(grads)` is the textbook update; SGD-momentum, RMSProp and Adam follow torch.optim's
formulas exactly, Adagrad follows min-char-rnn (ε inside the square root).
"""

from __future__ import annotations

import numpy as np

Params = dict[str, np.ndarray]


class Adagrad:
    """m ← m + g²;  θ ← θ − lr · g / sqrt(m + ε)   (Duchi et al. 2011, as written in min-char-rnn)."""

    def __init__(self, params: Params, lr: float = 0.1, eps: float = 1e-8) -> None:
        self.params, self.lr, self.eps = params, lr, eps
        self.mem = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: Params) -> None:
        for k, p in self.params.items():
            g, m = grads[k], self.mem[k]
            m += g * g
            p -= self.lr * g / np.sqrt(m + self.eps)


class SGD:
    """v ← μ v + g;  θ ← θ − lr · v   (heavy-ball momentum in torch's form; μ = 0 is plain SGD)."""

    def __init__(self, params: Params, lr: float = 0.1, momentum: float = 0.9) -> None:
        self.params, self.lr, self.momentum = params, lr, momentum
        self.velocity = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: Params) -> None:
        for k, p in self.params.items():
            v = self.velocity[k]
            v *= self.momentum
            v += grads[k]
            p -= self.lr * v


class RMSProp:
    """s ← α s + (1 − α) g²;  θ ← θ − lr · g / (sqrt(s) + ε)   (Tieleman & Hinton 2012)."""

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8) -> None:
        self.params, self.lr, self.alpha, self.eps = params, lr, alpha, eps
        self.square = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: Params) -> None:
        for k, p in self.params.items():
            g, s = grads[k], self.square[k]
            s *= self.alpha
            s += (1.0 - self.alpha) * g * g
            p -= self.lr * g / (np.sqrt(s) + self.eps)


class Adam:
    """m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;  θ ← θ − lr · m̂ / (sqrt(v̂) + ε)   (Kingma & Ba 2015).

    m̂ = m / (1 − β1^t) and v̂ = v / (1 − β2^t) undo the bias of starting the averages at zero.
    """

    def __init__(
        self, params: Params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads: Params) -> None:
        self.t += 1
        b1, b2 = self.betas
        for k, p in self.params.items():
            g, m, v = grads[k], self.m[k], self.v[k]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            m_hat = m / (1.0 - b1**self.t)
            v_hat = v / (1.0 - b2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


OPTIMIZERS = {"adagrad": Adagrad, "sgd": SGD, "rmsprop": RMSProp, "adam": Adam}


def make_optimizer(name: str, params: Params, lr: float) -> Adagrad | SGD | RMSProp | Adam:
    """The optimiser called `name` (adagrad | sgd | rmsprop | adam) with its other settings at their defaults."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr=lr)
