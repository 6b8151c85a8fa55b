"""Linear-time recurrences trained with a parallel scan: minGRU, minLSTM and a selective state-space block.

All three have a hidden state that depends *linearly* on its past, h_t = a_t ⊙ h_{t-1} + b_t, with a_t and
b_t computed from the inputs alone. The whole sequence can then be computed at once with cumulative sums
(`scan`, `linear_scan`) instead of a step loop, while generation still costs O(1) per token with `step`.

- minGRU, minLSTM: Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We Needed?" (2024).
- ssm: the selective state space (S6) block of Mamba, Gu & Dao, "Mamba: Linear-Time Sequence Modeling with
  Selective State Spaces" (2023), in pure PyTorch.
- scan: Heinsen, "Efficient Parallelization of a Ubiquitous Sequential Computation" (2023), in log space,
  for minGRU/minLSTM whose b_t > 0; linear_scan: Blelloch, "Prefix Sums and Their Applications" (1990),
  for the SSM whose b_t take both signs.

Every `forward` (parallel) accepts and returns the carried state, so a sequence processed in chunks gives
the same outputs as one pass (stateful truncated BPTT); `forward_step` (sequential) is the recurrence itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.nn.cells import Cell, CellState


def scan(log_a: Tensor, log_b: Tensor, h0: Tensor | None = None) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for all t at once, for a_t > 0 and b_t > 0 given by their logs (N, T, ...).

    Heinsen (2023): with a*_t = Σ_{s≤t} log a_s, h_t = exp(a*_t) h_0 + Σ_{s≤t} exp(a*_t − a*_s) b_s
                                                   = exp(a*_t) h_0 + exp(a*_t + logcumsumexp_s(log b_s − a*_s)).
    The initial state h_0 (N, ...) is the extra first term, with weight exp(a*_t); it is added outside the
    logarithm so that it may be zero or negative (a learned or carried state). Returns h (N, T, ...).
    """
    a_star = torch.cumsum(log_a, 1)  # a*_t = Σ_{s≤t} log a_s
    h = torch.exp(a_star + logcumsumexp(log_b - a_star))  # Σ_{s≤t} exp(a*_t − a*_s) b_s
    if h0 is not None:
        h = h + torch.exp(a_star) * h0.unsqueeze(1)  # + (Π_{s≤t} a_s) h_0
    return h


def logcumsumexp(x: Tensor) -> Tensor:
    """log Σ_{s≤t} exp(x_s) along dim 1, as `torch.logcumsumexp(x, 1)` but several times faster on CPU,
    where PyTorch's kernel and especially its backward cost tens of ns per element.

    A blocked scan: the T steps are cut into K chunks of C ≈ √T; each chunk's running logaddexp is taken
    for all chunks at once (C vectorised steps), then the chunk totals are carried across chunks (K steps).
    Every operation is a logaddexp of two finite numbers, so it is as stable as the sequential form.
    The backward pass is analytic (see `_LogCumSumExp.backward`).
    """
    return _LogCumSumExp.apply(x)


def _chunks(x: Tensor, C: int, K: int) -> Tensor:
    """(N, T, ...) → (N, K, C, ...), zero-padded at the end (later positions never affect earlier ones)."""
    pad = K * C - x.shape[1]
    if pad:
        x = F.pad(x, (0, 0) * (x.dim() - 2) + (0, pad))
    return x.unflatten(1, (K, C))


def _chunk_size(T: int) -> tuple[int, int]:
    C = math.ceil(math.sqrt(T))
    return C, math.ceil(T / C)


class _LogCumSumExp(torch.autograd.Function):
    """y = logcumsumexp(x) along dim 1 with a blocked forward and an analytic, blocked backward.

    Backward: ∂L/∂x_s = Σ_{t≥s} g_t exp(x_s − y_t) = exp(x_s − y_s) Q_s with Q_s = Σ_{t≥s} g_t exp(y_s − y_t),
    i.e. the reverse recurrence Q_s = g_s + exp(y_s − y_{s+1}) Q_{s+1}. Every factor is ≤ 1 (y only grows), so
    it is stable for any g of either sign. The backward is made of differentiable operations (HF's
    curvature products differentiate it again) and of vmappable ones (HF's per-example gradients).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        T = x.shape[1]
        C, K = _chunk_size(T)
        xc = _chunks(x, C, K)
        running = [xc[:, :, 0]]  # within every chunk at once
        for c in range(1, C):
            running.append(torch.logaddexp(running[-1], xc[:, :, c]))
        carried = [running[-1][:, 0]]  # then the chunk totals, across chunks
        for k in range(1, K - 1):
            carried.append(torch.logaddexp(carried[-1], running[-1][:, k]))
        local = torch.stack(running, 2)
        if K > 1:
            later = torch.logaddexp(torch.stack(carried, 1).unsqueeze(2), local[:, 1:])
            local = torch.cat([local[:, :1], later], 1)
        return local.flatten(1, 2)[:, :T]

    @staticmethod
    def setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0], output)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, g: Tensor) -> Tensor:
        x, y = ctx.saved_tensors
        T = x.shape[1]
        C, K = _chunk_size(T)
        gc = _chunks(g, C, K)
        dc = _chunks(torch.exp(y[:, :-1] - y[:, 1:]), C, K)  # d_s = exp(y_s − y_{s+1}); d_{T−1} = 0 (padding)
        local, reach = [gc[:, :, C - 1]], [dc[:, :, C - 1]]  # Q within the chunk, and Q's weight on the next chunk
        for c in range(C - 2, -1, -1):
            local.append(gc[:, :, c] + dc[:, :, c] * local[-1])
            reach.append(dc[:, :, c] * reach[-1])
        starts = [torch.zeros_like(local[-1][:, 0])]  # Q at the first position of chunk k + 1, from the end
        for k in range(K - 1, 0, -1):
            starts.append(local[-1][:, k] + reach[-1][:, k] * starts[-1])
        next_start = torch.stack(starts[::-1], 1).unsqueeze(2)
        Q = torch.stack(local[::-1], 2) + torch.stack(reach[::-1], 2) * next_start
        return torch.exp(x - y) * Q.flatten(1, 2)[:, :T]


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for all t at once, for 0 < a_t ≤ 1 and b_t of any sign (N, T, ...).

    A work-efficient parallel scan (Blelloch 1990) in linear space, for the selective SSM whose inputs
    B̄_t x_t take both signs (so they have no real logarithm). Only products of the a_t ≤ 1 are formed,
    never their inverses, so it is stable for any decay. The initial state h_0 (N, ...) is the state
    before the first step; it is handed down the recursion, whose first pair starts from it too, so it
    costs no extra pass over (N, T, ...). Returns h (N, T, ...).
    """
    T = a.shape[1]
    if T == 1:
        return b if h0 is None else a * h0.unsqueeze(1) + b
    if T % 2:  # make the length even with an identity step (a, b) = (1, 0)
        pad = (0, 0) * (a.dim() - 2) + (0, 1)
        a, b = F.pad(a, pad, value=1.0), F.pad(b, pad)
    (a_even, a_odd), (b_even, b_odd) = a.unflatten(1, (-1, 2)).unbind(2), b.unflatten(1, (-1, 2)).unbind(2)
    # two steps in one: h_{2i+1} = (a_{2i+1} a_{2i}) h_{2i-1} + (a_{2i+1} b_{2i} + b_{2i+1})
    h_odd = linear_scan(a_odd * a_even, a_odd * b_even + b_odd, h0)
    # then each step in between: h_{2i} = a_{2i} h_{2i-1} + b_{2i}, with h_{-1} = h_0
    first = torch.zeros_like(h_odd[:, :1]) if h0 is None else h0.unsqueeze(1)
    h_before = torch.cat([first, h_odd[:, :-1]], 1)
    h_even = a_even * h_before + b_even
    h = torch.stack([h_even, h_odd], 2).flatten(1, 2)
    return h[:, :T] if h.shape[1] > T else h  # an un-needed full slice would cost a zero-filled gradient


def g(x: Tensor) -> Tensor:
    """Feng et al.'s positive activation for the candidate state: x + 0.5 for x ≥ 0, σ(x) below (continuous at 0)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed without ever taking the log of a small number: log(x + 0.5), or log σ(x) = −softplus(−x)."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class MinGRUCell(Cell):
    """minGRU (Feng et al. 2024): a GRU whose gates see only the input, so its state is linear in its past:

        z_t = σ(W_z x_t + b_z)      h̃_t = g(W_h x_t + b_h)      h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

    `weight_ih` (2H, D) and `bias_ih` (2H) stack (z, h̃). Training uses the paper's log-space form:
    log a_t = log(1 − z_t) = −softplus(k_t), log b_t = log z_t + log h̃_t = −softplus(−k_t) + log g(·).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(2 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(2 * hidden_size))
        self._uniform_init()

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        k, v = xw.chunk(2, -1)
        z = torch.sigmoid(k)  # z_t = σ(W_z x_t + b_z)
        h = (1 - z) * state + z * g(v)  # h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ g(W_h x_t + b_h)
        return h, h

    def forward(self, x: Tensor, state: CellState | None = None) -> tuple[Tensor, CellState]:
        """A sequence x (N, T, D) -> h (N, T, H), h_T: all steps at once by the log-space scan."""
        k, v = self.project(x).chunk(2, -1)
        log_a = -F.softplus(k)  # log(1 − z_t)
        log_b = -F.softplus(-k) + log_g(v)  # log z_t + log h̃_t
        h = scan(log_a, log_b, state)
        return h, h[:, -1]


class MinLSTMCell(Cell):
    """minLSTM (Feng et al. 2024): input and forget gates from the input alone, normalised to sum to one:

        i_t = σ(W_i x_t + b_i)    f_t = σ(W_f x_t + b_f)    f'_t = f_t / (f_t + i_t)    i'_t = i_t / (f_t + i_t)
        h̃_t = g(W_h x_t + b_h)     h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t

    `weight_ih` (3H, D) and `bias_ih` (3H) stack (i, f, h̃), in `torch.nn.LSTM`'s gate order. In log space,
    with d = log i − log f = softplus(−k_f) − softplus(−k_i): log f' = −softplus(d), log i' = −softplus(−d).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size))
        self._uniform_init()

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        ki, kf, v = xw.chunk(3, -1)
        i, f = torch.sigmoid(ki), torch.sigmoid(kf)
        h = f / (f + i) * state + i / (f + i) * g(v)  # h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t
        return h, h

    def forward(self, x: Tensor, state: CellState | None = None) -> tuple[Tensor, CellState]:
        """A sequence x (N, T, D) -> h (N, T, H), h_T: all steps at once by the log-space scan."""
        ki, kf, v = self.project(x).chunk(3, -1)
        d = F.softplus(-kf) - F.softplus(-ki)  # log i_t − log f_t
        log_a = -F.softplus(d)  # log f'_t = −log(1 + i_t / f_t)
        log_b = -F.softplus(-d) + log_g(v)  # log i'_t + log h̃_t
        h = scan(log_a, log_b, state)
        return h, h[:, -1]


class SSMCell(Cell):
    """A selective state-space block in the style of Mamba's S6 (Gu & Dao 2023), pre-norm and residual:

        u = x (or W_in x when D ≠ H)            [x'; z] = W_xz RMSNorm(u)                (E = expand·H each)
        x' ← SiLU(causal depthwise conv_k(x'))   Δ = softplus(W_Δ (W_r x') + b_Δ)   B = W_B x'   C = W_C x'
        Ā = exp(Δ A), A = −exp(A_log) diagonal   B̄ = Δ B   (zero-order hold for A, Euler for B, as Mamba)
        h_t = Ā_t ⊙ h_{t-1} + B̄_t x'_t   (per channel, S states)    y_t = C_t h_t + D ⊙ x'_t
        out = u + W_out (y ⊙ SiLU(z))

    The state is O(1) in the sequence length: (the last k − 1 conv inputs (N, E, k−1), h (N, E, S)), a tuple
    whose shapes do not depend on the layer, so `Recurrent` can stack it. Parameter names follow Mamba's.
    """

    def __init__(self, input_size: int, hidden_size: int, expand: int = 2, d_state: int = 16, d_conv: int = 4) -> None:
        super().__init__()
        H, E, S = hidden_size, expand * hidden_size, d_state
        self.hidden_size, self.inner, self.d_state, self.d_conv = H, E, S, d_conv
        self.dt_rank = math.ceil(H / 16)
        self.in_input = nn.Linear(input_size, H) if input_size != H else None
        self.norm = nn.RMSNorm(H)
        self.in_proj = nn.Linear(H, 2 * E)
        self.conv1d = nn.Conv1d(E, E, d_conv, groups=E)
        self.x_proj = nn.Linear(E, self.dt_rank + 2 * S, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, E)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, S + 1, dtype=torch.float32)).repeat(E, 1))  # S4D-real
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, H)
        with torch.no_grad():  # Mamba's Δ init: softplus(b_Δ) log-uniform in [1e-3, 1e-1]
            nn.init.uniform_(self.dt_proj.weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
            dt = torch.exp(torch.empty(E).uniform_(math.log(1e-3), math.log(1e-1)))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def initial_state(self, N: int, device: torch.device, dtype: torch.dtype) -> CellState:
        """Zeros: (conv inputs (N, E, k−1), ssm state (N, E, S))."""
        conv = torch.zeros(N, self.inner, self.d_conv - 1, device=device, dtype=dtype)
        return conv, torch.zeros(N, self.inner, self.d_state, device=device, dtype=dtype)

    def project(self, x: Tensor) -> Tensor:
        """Everything before the conv, which needs no state: [u, x', z] (..., H + 2E)."""
        u = self.in_input(x) if self.in_input is not None else x
        return torch.cat([u, self.in_proj(self.norm(u))], -1)

    def _split(self, xw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        H, E = self.hidden_size, self.inner
        return xw[..., :H], xw[..., H : H + E], xw[..., H + E :]

    def _select(self, xc: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The input-dependent parameters: Δ (..., E), B (..., S), C (..., S)."""
        dt, B, C = self.x_proj(xc).split([self.dt_rank, self.d_state, self.d_state], -1)
        return F.softplus(self.dt_proj(dt)), B, C  # Δ = softplus(W_Δ (W_r x') + b_Δ)

    def _output(self, u: Tensor, xc: Tensor, z: Tensor, y: Tensor) -> Tensor:
        return u + self.out_proj((y + self.D * xc) * F.silu(z))  # u + W_out ((C h + D ⊙ x') ⊙ SiLU(z))

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        conv, h = state
        u, xs, z = self._split(xw)
        window = torch.cat([conv, xs.unsqueeze(-1)], -1)  # (N, E, k): the last k inputs
        xc = F.silu((window * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)  # causal conv, SiLU
        delta, B, C = self._select(xc)
        A = -torch.exp(self.A_log)  # (E, S)
        h = torch.exp(delta.unsqueeze(-1) * A) * h + (delta * xc).unsqueeze(-1) * B.unsqueeze(1)  # Ā h + B̄ x'
        y = (h @ C.unsqueeze(-1)).squeeze(-1)  # C h
        return self._output(u, xc, z, y), (window[..., 1:], h)

    def forward(self, x: Tensor, state: CellState | None = None) -> tuple[Tensor, CellState]:
        """A sequence x (N, T, D) -> (N, T, H), final (conv, ssm) state: the recurrence by `linear_scan`."""
        if state is None:
            conv, h0 = self.initial_state(x.shape[0], x.device, x.dtype)
        else:
            conv, h0 = state
        u, xs, z = self._split(self.project(x))
        window = torch.cat([conv, xs.transpose(1, 2)], -1)  # (N, E, k−1+T): the carried inputs first
        xc = F.silu(F.conv1d(window, self.conv1d.weight, self.conv1d.bias, groups=self.inner)).transpose(1, 2)
        delta, B, C = self._select(xc)  # (N, T, E), (N, T, S), (N, T, S)
        A = -torch.exp(self.A_log)
        a = torch.exp(delta.unsqueeze(-1) * A)  # Ā_t = exp(Δ_t A)   (N, T, E, S)
        b = (delta * xc).unsqueeze(-1) * B.unsqueeze(2)  # B̄_t x'_t = Δ_t x'_t B_t
        h = linear_scan(a, b, h0)  # (N, T, E, S)
        y = (h @ C.unsqueeze(-1)).squeeze(-1)  # y_t = C_t h_t
        return self._output(u, xc, z, y), (window[..., window.shape[-1] - (self.d_conv - 1) :], h[:, -1])


SCAN_CELLS: dict[str, type[Cell]] = {"mingru": MinGRUCell, "minlstm": MinLSTMCell, "ssm": SSMCell}
