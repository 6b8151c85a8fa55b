"""Linear recurrences: minGRU, minLSTM and a selective state-space block, trained a whole sequence at a time.

All three have a hidden state that depends *linearly* on its past, h_t = a_t ⊙ h_{t-1} + b_t, with a_t and
b_t computed from the inputs alone. All the gates of a sequence are then computed at once, outside any time
loop, and only this multiply-add is left to run through time (`recurrence`, `gated_scan`, `linear_scan`),
while generation still costs O(1) per token with `step`.

- minGRU, minLSTM: Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, "Were RNNs All We Needed?" (2024).
- ssm: the selective state space (S6) block of Mamba, Gu & Dao, "Mamba: Linear-Time Sequence Modeling with
  Selective State Spaces" (2023), in pure PyTorch.
- gated_scan (minGRU, minLSTM): one autograd node with its backward (BPTT of the linear recurrence) written
  out; in linear space, where Feng et al. use Heinsen's log-space cumulative sums (2023): on the CPU a time loop
  of one multiply-add per step reads the data once and is several times faster than any parallel form
  (benchmarks/results/scan.md); off the CPU `recurrence` takes a blocked parallel form.
- linear_scan (ssm): the same recurrence with a_t, b_t given, one autograd node as well.

Every `forward` (parallel) accepts and returns the carried state, so a sequence processed in chunks gives
the same outputs as one pass (stateful truncated BPTT); `forward_step` (sequential) is the recurrence itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.nn.cells import Cell, CellState, at_least_float32, gate_params, pre_norm
from rnnlab.nn.registry import register


def recurrence(
    a: Tensor,
    b: Tensor,
    h0: Tensor | None = None,
    *,
    adjoint: bool = False,
    blocked: bool | None = None,
    in_place: bool = False,
) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for all t (N, T, ...), h_{-1} = h0 (or 0), without autograd.

    `adjoint=True` (without h0) runs the transposed recurrence that backpropagation needs, from the end:
    Q_t = a_{t+1} ⊙ Q_{t+1} + b_t, Q_{T-1} = b_{T-1}; given b = ∂L/∂h, Q_t is ∂L/∂h_t through all later steps.

    Two ways, equal to rounding: on the CPU a time loop of one fused multiply-add per step, which reads and
    writes the data once (the scan is memory-bound there, and one pass beats every parallel form, which makes
    several); elsewhere (`blocked=True`, the default off the CPU) a blocked scan of about 2√T vectorised steps:
    the recurrence within each of K chunks of C ≈ √T steps for all chunks at once, then across the chunks.
    Only products of the a_t are formed, never their inverses, so both are stable for any decay 0 ≤ a_t ≤ 1.
    `in_place=True` lets the time loop write h over b (each b_t is read once, just before h_t is written).
    """
    assert h0 is None or not adjoint, "the adjoint recurrence starts from nothing"
    if blocked if blocked is not None else a.device.type != "cpu":
        if adjoint:  # the forward recurrence on reversed time, with a shifted by one step
            a = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], 1)
        return _blocked(a, b, h0, reverse=adjoint)
    h = b if in_place else torch.empty_like(b)
    steps = range(b.shape[1] - 1, -1, -1) if adjoint else range(b.shape[1])
    a_t, b_t, h_t = a.unbind(1), b.unbind(1), h.unbind(1)  # views made once: indexing per step costs µs
    previous = h0
    for t in steps:
        if previous is None:
            if not in_place:
                h_t[t].copy_(b_t[t])
        else:  # forward: a_t ⊙ h_{t-1} + b_t; adjoint: a_{t+1} ⊙ Q_{t+1} + b_t
            torch.addcmul(b_t[t], a_t[t + 1] if adjoint else a_t[t], previous, out=h_t[t])
        previous = h_t[t]
    return h


def _blocked(a: Tensor, b: Tensor, h0: Tensor | None, reverse: bool) -> Tensor:
    """`recurrence` as ≈ 2√T vectorised steps (the form for a GPU). `reverse` runs time backwards."""
    T = b.shape[1]
    C, K = _chunk_size(T)
    pad = K * C - T
    if pad:  # identity steps (a, b) = (1, 0) at the end in time order: they change no earlier state
        where = (pad, 0) if reverse else (0, pad)
        a, b = F.pad(a, (0, 0) * (a.dim() - 2) + where, value=1.0), F.pad(b, (0, 0) * (b.dim() - 2) + where)
    ac, bc = a.unflatten(1, (K, C)), b.unflatten(1, (K, C))
    order = range(C - 1, -1, -1) if reverse else range(C)
    local, decay = [], []  # within every chunk at once: the state from a zero start, and Π a since the start
    for c in order:
        local.append(bc[:, :, c] if not local else torch.addcmul(bc[:, :, c], ac[:, :, c], local[-1]))
        decay.append(ac[:, :, c] if not decay else ac[:, :, c] * decay[-1])
    carried = [torch.zeros_like(local[0][:, 0]) if h0 is None else h0]  # then the state entering each chunk
    for k in range(K - 1, 0, -1) if reverse else range(K - 1):
        carried.append(torch.addcmul(local[-1][:, k], decay[-1][:, k], carried[-1]))
    if reverse:
        local, decay, carried = local[::-1], decay[::-1], carried[::-1]
    h = torch.addcmul(torch.stack(local, 2), torch.stack(decay, 2), torch.stack(carried, 1).unsqueeze(2))
    h = h.flatten(1, 2)
    return (h[:, pad:] if reverse else h[:, :T]) if pad else h


def _chunk_size(T: int) -> tuple[int, int]:
    C = math.ceil(math.sqrt(T))
    return C, math.ceil(T / C)


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, *, blocked: bool | None = None) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for all t at once, for 0 ≤ a_t ≤ 1 and b_t of any sign (N, T, ...), from
    h0 (N, ...) (zeros if None): the SSM's scan. One autograd node whose backward is the adjoint recurrence:
    ∂L/∂b_t = Q_t, ∂L/∂a_t = Q_t ⊙ h_{t-1}, ∂L/∂h_0 = a_0 ⊙ Q_0. Differentiable once; Hessian-free runs the
    cells' step loop instead (`Cell.fused_op = False`). `blocked` as for `recurrence`. Runs in float32 at least.
    Returns h (N, T, ...).
    """
    return _LinearScan.apply(*at_least_float32(a, b, h0), blocked)


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, a: Tensor, b: Tensor, h0: Tensor | None, blocked: bool | None
    ) -> Tensor:
        h = recurrence(a, b, h0, blocked=blocked)
        ctx.save_for_backward(a, h0, h)
        ctx.blocked = blocked
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, dh: Tensor) -> tuple[Tensor | None, ...]:
        a, h0, h = ctx.saved_tensors
        Q = recurrence(a, dh, None, adjoint=True, blocked=ctx.blocked)
        da = torch.empty_like(h)  # Q_t h_{t-1}, without concatenating h_{-1} to h
        torch.mul(Q[:, 1:], h[:, :-1], out=da[:, 1:])
        torch.mul(Q[:, 0], 0 if h0 is None else h0, out=da[:, 0])
        return da, Q, None if h0 is None else a[:, 0] * Q[:, 0], None


def gated_scan(cv: Tensor, h0: Tensor | None = None) -> Tensor:
    """The min cells' recurrence for all t at once: h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t with z_t = σ(c_t)
    and h̃_t = g(v_t), from the pre-activations cv = [c, v] (N, T, 2H) and h0 (N, H) (zeros if None).
    Returns h (N, T, H).

    One autograd node with its backward written out (`_GatedScan.backward`), in linear space: the decay
    1 − z_t lies in (0, 1), so the recurrence needs no logarithms to be stable (Feng et al. take logs for
    Heinsen's cumulative-sum form, which divides by products of decays). [c, v] come in one tensor so that
    their gradient is written into one (N, T, 2H) tensor, not concatenated afterwards. Differentiable once;
    Hessian-free runs the cells' step loop instead (`Cell.fused_op = False`). Runs in float32 at least.
    """
    return _GatedScan.apply(*at_least_float32(cv, h0))


class _GatedScan(torch.autograd.Function):
    """Forward and backward of `gated_scan`, each one `recurrence` plus element-wise passes.

    Backward, with Q_t = ∂L/∂h_t through all later steps (the adjoint recurrence Q_t = a_{t+1} Q_{t+1} + ∂L/∂h_t):
        ∂L/∂c_t = Q_t ⊙ (h̃_t − h_{t-1}) ⊙ z_t a_t      ∂L/∂v_t = Q_t ⊙ z_t ⊙ g'(v_t)      ∂L/∂h_0 = a_0 ⊙ Q_0
    with a_t = 1 − z_t, and g'(v) = 1 for v ≥ 0 and σ'(v) = h̃ (1 − h̃) below.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, cv: Tensor, h0: Tensor | None) -> Tensor:
        c, v = cv.chunk(2, -1)
        z = torch.sigmoid(c)
        a = 1 - z  # the decay
        candidate = g(v)
        h = recurrence(a, z * candidate, h0, in_place=True)
        ctx.save_for_backward(v, h0, z, a, candidate, h)  # a = 1 − z kept, not recomputed: one pass fewer
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, dh: Tensor) -> tuple[Tensor, Tensor | None]:
        v, h0, z, a, candidate, h = ctx.saved_tensors
        Q = recurrence(a, dh, None, adjoint=True)
        dcv = torch.empty(*h.shape[:-1], 2 * h.shape[-1], dtype=h.dtype, device=h.device)
        dc, dv = dcv.chunk(2, -1)
        torch.sub(candidate[:, 1:], h[:, :-1], out=dc[:, 1:])  # h̃_t − h_{t-1}, without concatenating h_{-1} to h
        torch.sub(candidate[:, 0], 0 if h0 is None else h0, out=dc[:, 0])
        dc.mul_(Q).mul_(z).mul_(a)  # Q (h̃_t − h_{t-1}) z a
        torch.clamp(candidate, max=0.5, out=dv)  # g'(v): h̃ (1 − h̃) where v < 0 (there h̃ = σ(v) < ½) ...
        torch.addcmul(dv, dv, dv, value=-1, out=dv)
        dv.add_(torch.ge(v, 0, out=torch.empty_like(candidate)), alpha=0.75)  # ... and ¼ + ¾ = 1 where v ≥ 0
        dv.mul_(Q).mul_(z)
        return dcv, None if h0 is None else a[:, 0] * Q[:, 0]


def g(x: Tensor) -> Tensor:
    """Feng et al.'s positive activation for the candidate state: x + ½ for x ≥ 0, σ(x) below (continuous at 0).

    Written as max(x + ½, σ(x)), which is the same function (σ lies below its tangent x/4 + ½ for x > 0 and
    above it for x < 0) and costs no branch per element.
    """
    return torch.maximum(x + 0.5, torch.sigmoid(x))


@register("mingru")
class MinGRUCell(Cell):
    """minGRU (Feng et al. 2024): a GRU whose gates see only the input, so its state is linear in its past:

        z_t = σ(W_z x_t + b_z)      h̃_t = g(W_h x_t + b_h)      h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

    `weight_ih` (2H, D) and `bias_ih` (2H) stack (z, h̃). A sequence runs as one `gated_scan`.
    """

    fused_op = True

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        gate_params(self, input_size, hidden_size, 2, 0)

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        k, v = xw.chunk(2, -1)
        z = torch.sigmoid(k)  # z_t = σ(W_z x_t + b_z)
        h = (1 - z) * state + z * g(v)  # h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ g(W_h x_t + b_h)
        return h, h

    def sequence(self, x: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """x (N, T, D) -> h (N, T, H), h_T: all steps at once by `gated_scan`."""
        h = gated_scan(self.project(x), state)
        return h, h[:, -1]


@register("minlstm")
class MinLSTMCell(Cell):
    """minLSTM (Feng et al. 2024): input and forget gates from the input alone, normalised to sum to one:

        i_t = σ(W_i x_t + b_i)    f_t = σ(W_f x_t + b_f)    f'_t = f_t / (f_t + i_t)    i'_t = i_t / (f_t + i_t)
        h̃_t = g(W_h x_t + b_h)     h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t

    `weight_ih` (3H, D) and `bias_ih` (3H) stack (i, f, h̃), in `torch.nn.LSTM`'s gate order. Since f' + i' = 1,
    this is minGRU's recurrence with z_t = i'_t = σ(log i_t − log f_t), computed that way (the quotient
    would be 0/0 once both gates underflow), so a sequence runs as one `gated_scan` too.
    """

    fused_op = True

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        gate_params(self, input_size, hidden_size, 3, 0)

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        ki, kf, v = xw.chunk(3, -1)
        i_norm = torch.sigmoid(self._log_ratio(ki, kf))  # i'_t = i_t / (f_t + i_t), and f'_t = 1 − i'_t
        h = torch.lerp(state, g(v), i_norm)  # h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t
        return h, h

    @staticmethod
    def _log_ratio(ki: Tensor, kf: Tensor) -> Tensor:
        """log i_t − log f_t = softplus(−k_f) − softplus(−k_i), as log σ(k) = −softplus(−k)."""
        return F.softplus(-kf) - F.softplus(-ki)

    def sequence(self, x: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """x (N, T, D) -> h (N, T, H), h_T: all steps at once by `gated_scan`."""
        ki, kf, v = self.project(x).chunk(3, -1)
        h = gated_scan(torch.cat([self._log_ratio(ki, kf), v], -1), state)
        return h, h[:, -1]


@register("ssm", state=("conv", "ssm"), per_unit=False, no_onnx="the exporter has no operator for its RMSNorm")
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

    fused_op = True

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
        return torch.cat([u, self.in_proj(pre_norm(self.norm, u))], -1)

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

    def sequence(self, x: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """x (N, T, D) -> (N, T, H), final (conv, ssm) state: the recurrence by `linear_scan`."""
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
