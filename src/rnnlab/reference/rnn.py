"""The vanilla (Elman) RNN layer: h_t = f(W_xh x_t + W_hh h_{t-1} + b_h), with f = tanh or ReLU.

Shapes use torch-rnn's names: x (N, T, D), h (N, T, H). Weights are stored the way torch stores them,
W_xh (H, D) and W_hh (H, H), so with row vectors one step is a_t = x_t W_xhᵀ + h_{t-1} W_hhᵀ + b_h.
torch adds two biases (bias_ih + bias_hh); their sum is our b_h.
"""

from __future__ import annotations

import numpy as np

State = tuple[np.ndarray, ...]


class RNN:
    """One recurrent layer. `forward` runs over all T steps and remembers what `backward` needs."""

    def __init__(
        self, D: int, H: int, nonlinearity: str = "tanh", rng: np.random.Generator | None = None, std: float = 0.01
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.nonlinearity = nonlinearity
        self.params = {
            "W_xh": rng.standard_normal((H, D)) * std,
            "W_hh": rng.standard_normal((H, H)) * std,
            "b_h": np.zeros(H),
        }
        self.grads: dict[str, np.ndarray] = {}

    def initial_state(self, N: int) -> State:
        """h_0 = 0 for N streams."""
        return (np.zeros((N, self.params["W_hh"].shape[0])),)

    def forward(self, x: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """x (N, T, D), state (h_0,) -> outputs h (N, T, H) and the final state (h_T,)."""
        W_xh, W_hh, b_h = self.params["W_xh"], self.params["W_hh"], self.params["b_h"]
        N, T, _ = x.shape
        (h0,) = state if state is not None else self.initial_state(N)
        h = np.empty((N, T, W_hh.shape[0]))
        xa = x @ W_xh.T + b_h  # the input's share of every step at once: W_xh x_t + b_h
        h_prev = h0
        for t in range(T):
            a = xa[:, t] + h_prev @ W_hh.T  # a_t = W_xh x_t + W_hh h_{t-1} + b_h
            h[:, t] = np.tanh(a) if self.nonlinearity == "tanh" else np.maximum(a, 0.0)  # h_t = f(a_t)
            h_prev = h[:, t]
        self._cache = (x, h0, h)
        return h, (h[:, -1].copy(),)

    def backward(self, dh: np.ndarray) -> tuple[np.ndarray, State]:
        """dL/dh (N, T, H) -> dL/dx (N, T, D) and (dL/dh_0,); parameter gradients go to `self.grads`."""
        x, h0, h = self._cache
        W_xh, W_hh = self.params["W_xh"], self.params["W_hh"]
        N, T, H = h.shape
        da = np.empty_like(h)
        dh_next = np.zeros((N, H))  # dL/dh_t through step t+1 (nothing after the last step)
        for t in reversed(range(T)):
            dh_t = dh[:, t] + dh_next  # h_t feeds the output at t and the next step
            if self.nonlinearity == "tanh":
                da[:, t] = (1.0 - h[:, t] ** 2) * dh_t  # h = tanh(a)  ->  da = (1 - h²) ⊙ dh
            else:
                da[:, t] = (h[:, t] > 0) * dh_t  # h = max(a, 0)  ->  da = [a > 0] ⊙ dh
            dh_next = da[:, t] @ W_hh  # a_t = ... + W_hh h_{t-1}  ->  dh_{t-1} = W_hhᵀ da_t
        h_prev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)  # h_{t-1} for every t
        da2 = da.reshape(N * T, H)
        self.grads = {
            "W_xh": da2.T @ x.reshape(N * T, -1),  # dW_xh = Σ_t da_t x_tᵀ
            "W_hh": da2.T @ h_prev.reshape(N * T, H),  # dW_hh = Σ_t da_t h_{t-1}ᵀ
            "b_h": da2.sum(axis=0),  # db_h = Σ_t da_t
        }
        dx = da @ W_xh  # dx_t = W_xhᵀ da_t
        return dx, (dh_next,)
