"""The LSTM layer (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    a_t = W_xh x_t + W_hh h_{t-1} + b_h        split in four, in torch's gate order (i, f, g, o)
    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

Weights are stored as torch stores them: W_xh (4H, D), W_hh (4H, H); b_h is torch's bias_ih + bias_hh.
"""

from __future__ import annotations

import numpy as np

State = tuple[np.ndarray, ...]


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + e^-a), written so that large |a| does not overflow."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class LSTM:
    """One LSTM layer; the state is (h, c)."""

    def __init__(self, D: int, H: int, rng: np.random.Generator | None = None, std: float = 0.01) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        self.params = {
            "W_xh": rng.standard_normal((4 * H, D)) * std,
            "W_hh": rng.standard_normal((4 * H, H)) * std,
            "b_h": np.zeros(4 * H),
        }
        self.grads: dict[str, np.ndarray] = {}

    def initial_state(self, N: int) -> State:
        """h_0 = c_0 = 0 for N streams."""
        H = self.params["W_hh"].shape[1]
        return np.zeros((N, H)), np.zeros((N, H))

    def forward(self, x: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """x (N, T, D), state (h_0, c_0) -> outputs h (N, T, H) and the final state (h_T, c_T)."""
        W_xh, W_hh, b_h = self.params["W_xh"], self.params["W_hh"], self.params["b_h"]
        N, T, _ = x.shape
        H = W_hh.shape[1]
        h0, c0 = state if state is not None else self.initial_state(N)
        h, c = np.empty((N, T, H)), np.empty((N, T, H))
        gates = np.empty((N, T, 4 * H))  # i, f, g, o after their nonlinearities
        xa = x @ W_xh.T + b_h  # the input's share of every step: W_xh x_t + b_h
        h_prev, c_prev = h0, c0
        for t in range(T):
            a = xa[:, t] + h_prev @ W_hh.T  # a_t = W_xh x_t + W_hh h_{t-1} + b_h
            gates[:, t, : 2 * H] = sigmoid(a[:, : 2 * H])  # i, f = σ(a_i), σ(a_f)
            gates[:, t, 2 * H : 3 * H] = np.tanh(a[:, 2 * H : 3 * H])  # g = tanh(a_g)
            gates[:, t, 3 * H :] = sigmoid(a[:, 3 * H :])  # o = σ(a_o)
            i, f, g, o = np.split(gates[:, t], 4, axis=1)
            c[:, t] = f * c_prev + i * g  # c_t = f ⊙ c_{t-1} + i ⊙ g
            h[:, t] = o * np.tanh(c[:, t])  # h_t = o ⊙ tanh(c_t)
            h_prev, c_prev = h[:, t], c[:, t]
        self._cache = (x, h0, c0, h, c, gates)
        return h, (h[:, -1].copy(), c[:, -1].copy())

    def backward(self, dh: np.ndarray) -> tuple[np.ndarray, State]:
        """dL/dh (N, T, H) -> dL/dx and (dL/dh_0, dL/dc_0); parameter gradients go to `self.grads`."""
        x, h0, c0, h, c, gates = self._cache
        W_xh, W_hh = self.params["W_xh"], self.params["W_hh"]
        N, T, H = h.shape
        da = np.empty_like(gates)
        dh_next, dc_next = np.zeros((N, H)), np.zeros((N, H))
        for t in reversed(range(T)):
            i, f, g, o = np.split(gates[:, t], 4, axis=1)
            c_prev = c[:, t - 1] if t > 0 else c0
            tanh_c = np.tanh(c[:, t])
            dh_t = dh[:, t] + dh_next  # h_t feeds the output at t and the next step
            do = tanh_c * dh_t  # h = o ⊙ tanh(c)  ->  do = tanh(c) ⊙ dh
            dc = dc_next + o * (1.0 - tanh_c**2) * dh_t  # ... and dc = o ⊙ (1 - tanh²(c)) ⊙ dh (+ from t+1)
            di, dg, df = g * dc, i * dc, c_prev * dc  # c = f ⊙ c_prev + i ⊙ g
            dc_next = f * dc  # dc_{t-1} = f ⊙ dc_t
            da[:, t, :H] = i * (1.0 - i) * di  # i = σ(a_i)  ->  da_i = i(1 - i) ⊙ di
            da[:, t, H : 2 * H] = f * (1.0 - f) * df  # f = σ(a_f)
            da[:, t, 2 * H : 3 * H] = (1.0 - g**2) * dg  # g = tanh(a_g)  ->  da_g = (1 - g²) ⊙ dg
            da[:, t, 3 * H :] = o * (1.0 - o) * do  # o = σ(a_o)
            dh_next = da[:, t] @ W_hh  # dh_{t-1} = W_hhᵀ da_t
        h_prev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
        da2 = da.reshape(N * T, 4 * H)
        self.grads = {
            "W_xh": da2.T @ x.reshape(N * T, -1),  # dW_xh = Σ_t da_t x_tᵀ
            "W_hh": da2.T @ h_prev.reshape(N * T, H),  # dW_hh = Σ_t da_t h_{t-1}ᵀ
            "b_h": da2.sum(axis=0),
        }
        return da @ W_xh, (dh_next, dc_next)
