"""The GRU layer in its two published forms; gates in torch's order (r, z, n).

Cho et al. 2014 (`form="cho"`) apply the reset gate to h_{t-1} *before* the recurrent matrix:

    r = σ(W_xr x_t + b_xr + W_hr h_{t-1} + b_hr)         z = σ(W_xz x_t + b_xz + W_hz h_{t-1} + b_hz)
    n = tanh(W_xn x_t + b_xn + W_hn (r ⊙ h_{t-1}) + b_hn)
    h_t = z ⊙ h_{t-1} + (1 − z) ⊙ n

PyTorch and cuDNN (`form="torch"`, the default) apply it *after*, so W_hn h_{t-1} can be computed for
all gates in one matrix product:

    n = tanh(W_xn x_t + b_xn + r ⊙ (W_hn h_{t-1} + b_hn))

The interpolation h_t = (1 − z) ⊙ n + z ⊙ h_{t-1} is the same in both. The two forms are different
functions (they agree only where r = 1), so Cho-form weights cannot be loaded into `torch.nn.GRU`.
Both forms keep torch's two biases; in the Cho form b_hn sits outside r and merely adds to b_xn.
"""

from __future__ import annotations

import numpy as np

from rnnlab.reference.lstm import sigmoid

State = tuple[np.ndarray, ...]


class GRU:
    """One GRU layer; W_xh (3H, D), W_hh (3H, H), b_xh (3H), b_hh (3H) as in `torch.nn.GRU`."""

    def __init__(
        self, D: int, H: int, form: str = "torch", rng: np.random.Generator | None = None, std: float = 0.01
    ) -> None:
        if form not in ("torch", "cho"):
            raise ValueError(f"form must be 'torch' or 'cho', got {form!r}")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.form = form
        self.params = {
            "W_xh": rng.standard_normal((3 * H, D)) * std,
            "W_hh": rng.standard_normal((3 * H, H)) * std,
            "b_xh": np.zeros(3 * H),
            "b_hh": np.zeros(3 * H),
        }
        self.grads: dict[str, np.ndarray] = {}

    def initial_state(self, N: int) -> State:
        """h_0 = 0 for N streams."""
        return (np.zeros((N, self.params["W_hh"].shape[1])),)

    def forward(self, x: np.ndarray, state: State | None = None) -> tuple[np.ndarray, State]:
        """x (N, T, D), state (h_0,) -> outputs h (N, T, H) and the final state (h_T,)."""
        W_xh, W_hh, b_xh, b_hh = (self.params[k] for k in ("W_xh", "W_hh", "b_xh", "b_hh"))
        N, T, _ = x.shape
        H = W_hh.shape[1]
        (h0,) = state if state is not None else self.initial_state(N)
        h = np.empty((N, T, H))
        r, z, n = np.empty((N, T, H)), np.empty((N, T, H)), np.empty((N, T, H))
        hn = np.empty((N, T, H))  # W_hn h_{t-1} + b_hn (torch form) or W_hn (r ⊙ h_{t-1}) + b_hn (Cho form)
        xa = x @ W_xh.T + b_xh  # the input's share of every gate and step: W_x x_t + b_x
        h_prev = h0
        for t in range(T):
            ha = h_prev @ W_hh[: 2 * H].T + b_hh[: 2 * H]  # W_hr h_{t-1} + b_hr, W_hz h_{t-1} + b_hz
            r[:, t] = sigmoid(xa[:, t, :H] + ha[:, :H])  # r = σ(...)
            z[:, t] = sigmoid(xa[:, t, H : 2 * H] + ha[:, H:])  # z = σ(...)
            if self.form == "torch":
                hn[:, t] = h_prev @ W_hh[2 * H :].T + b_hh[2 * H :]  # W_hn h_{t-1} + b_hn
                n[:, t] = np.tanh(xa[:, t, 2 * H :] + r[:, t] * hn[:, t])  # n = tanh(W_xn x + b_xn + r ⊙ (...))
            else:
                hn[:, t] = (r[:, t] * h_prev) @ W_hh[2 * H :].T + b_hh[2 * H :]  # W_hn (r ⊙ h_{t-1}) + b_hn
                n[:, t] = np.tanh(xa[:, t, 2 * H :] + hn[:, t])  # n = tanh(W_xn x + b_xn + ...)
            h[:, t] = z[:, t] * h_prev + (1.0 - z[:, t]) * n[:, t]  # h_t = z ⊙ h_{t-1} + (1 − z) ⊙ n
            h_prev = h[:, t]
        self._cache = (x, h0, h, r, z, n, hn)
        return h, (h[:, -1].copy(),)

    def backward(self, dh: np.ndarray) -> tuple[np.ndarray, State]:
        """dL/dh (N, T, H) -> dL/dx and (dL/dh_0,); parameter gradients go to `self.grads`."""
        x, h0, h, r, z, n, hn = self._cache
        W_xh, W_hh = self.params["W_xh"], self.params["W_hh"]
        N, T, H = h.shape
        dxa = np.empty((N, T, 3 * H))  # dL/d(pre-activation), input side: what W_xh and b_xh see
        dha = np.empty((N, T, 3 * H))  # dL/d(pre-activation), hidden side: what W_hh and b_hh see
        h_in = np.empty((N, T, H))  # what W_hn multiplied: h_{t-1} (torch) or r ⊙ h_{t-1} (Cho)
        dh_next = np.zeros((N, H))
        for t in reversed(range(T)):
            h_prev = h[:, t - 1] if t > 0 else h0
            rt, zt, nt = r[:, t], z[:, t], n[:, t]
            dh_t = dh[:, t] + dh_next  # h_t feeds the output at t and the next step
            dz = (h_prev - nt) * dh_t  # h = z ⊙ h_prev + (1 − z) ⊙ n
            dn = (1.0 - zt) * dh_t
            dh_prev = zt * dh_t
            dan = (1.0 - nt**2) * dn  # n = tanh(a_n)  ->  da_n = (1 − n²) ⊙ dn
            if self.form == "torch":
                dr = hn[:, t] * dan  # a_n = ... + r ⊙ hn  ->  dr = hn ⊙ da_n, dhn = r ⊙ da_n
                dha[:, t, 2 * H :] = rt * dan
                h_in[:, t] = h_prev
                dh_prev = dh_prev + dha[:, t, 2 * H :] @ W_hh[2 * H :]  # hn = W_hn h_prev + b_hn
            else:
                dha[:, t, 2 * H :] = dan  # a_n = ... + W_hn (r ⊙ h_prev) + b_hn
                d_rh = dan @ W_hh[2 * H :]  # d(r ⊙ h_prev) = W_hnᵀ da_n
                dr = h_prev * d_rh
                h_in[:, t] = rt * h_prev
                dh_prev = dh_prev + rt * d_rh
            dxa[:, t, :H] = dha[:, t, :H] = rt * (1.0 - rt) * dr  # r = σ(a_r)
            dxa[:, t, H : 2 * H] = dha[:, t, H : 2 * H] = zt * (1.0 - zt) * dz  # z = σ(a_z)
            dxa[:, t, 2 * H :] = dan
            dh_next = dh_prev + dha[:, t, : 2 * H] @ W_hh[: 2 * H]  # a_r, a_z = ... + W_h{r,z} h_prev
        h_prev_all = np.concatenate([h0[:, None], h[:, :-1]], axis=1).reshape(N * T, H)
        dxa2, dha2 = dxa.reshape(N * T, 3 * H), dha.reshape(N * T, 3 * H)
        self.grads = {
            "W_xh": dxa2.T @ x.reshape(N * T, -1),  # dW_x = Σ_t da_t x_tᵀ
            "W_hh": np.concatenate(
                [dha2[:, : 2 * H].T @ h_prev_all, dha2[:, 2 * H :].T @ h_in.reshape(N * T, H)]
            ),  # dW_h{r,z} = Σ_t da_t h_{t-1}ᵀ;  dW_hn = Σ_t da_n (h_in)ᵀ
            "b_xh": dxa2.sum(axis=0),
            "b_hh": dha2.sum(axis=0),
        }
        return dxa @ W_xh, (dh_next,)
