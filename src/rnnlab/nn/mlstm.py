"""The mLSTM block of xLSTM: an LSTM whose cell is a matrix, written to and read from like a key-value memory.

Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp, Klambauer, Brandstetter & Hochreiter, "xLSTM: Extended Long
Short-Term Memory" (2024). Per head, with a key k_t, value v_t and query q_t (d each) and scalar gates:

    C_t = f_t C_{t-1} + i_t k_t v_tᵀ        n_t = f_t n_{t-1} + i_t k_t        (C: d x d, n: d)
    h̃_t = C_tᵀ q_t / max(|n_tᵀ q_t|, 1)     f_t = σ(f̃_t),  i_t = exp(ĩ_t)

A GRU of H units remembers H numbers; each head here remembers d² of them and recalls a value by its key, which
is what copying an identifier seen a few lines earlier takes. The exponential input gate lets a new write
outweigh everything stored before; its scale is kept in a stabiliser m_t (log space), so the state is stored
as (C_t e^{-m_t}, n_t e^{-m_t}, m_t) and nothing overflows.

The recurrence is linear in C and n, so a chunk of T steps is computed at once (`mlstm_chunk`): with
F_t = Σ_{s≤t} log f_s, step t reads Σ_{s≤t} e^{F_t − F_s + ĩ_s} (q_t·k_s) v_s from this chunk, an attention-like
(T, T) product, plus e^{F_t} C_0ᵀ q_t from the state carried in. One token (`step`) is the same function with
T = 1, so generation costs O(1) per token. The block around the cell follows the paper's mLSTM block: pre-norm,
an up-projection, a causal convolution feeding the query, key and gates, a head-wise norm, an output gate and
a residual connection.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.nn.cells import Cell, CellState, pre_norm
from rnnlab.nn.registry import register

HEADS = 4  # heads by default, or the most of them that divide the inner width
HEAD_EPS = 1e-6  # the head norm's epsilon
CHUNK = 64  # steps per parallel chunk: the (T, T) products stay small and the cost linear in the sequence length


def _view(p: Tensor) -> np.ndarray:
    """A parameter as a NumPy array sharing its memory: in-place updates (dynamic evaluation) show through."""
    return p.detach().numpy()


def mlstm_chunk(
    q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, f_pre: Tensor, state: tuple[Tensor, Tensor, Tensor]
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """T steps of the mLSTM recurrence at once, for every head.

    q, k, v (N, heads, T, d), k already scaled by 1/√d; i_pre, f_pre (N, heads, T) the gates' pre-activations;
    state (C (N, heads, d, d), n (N, heads, d), m (N, heads)), stored divided by e^m. Returns h̃ (N, heads, T, d)
    and the state after step T, in the same form.
    """
    C0, n0, m0 = state
    T = q.shape[2]
    F_cum = torch.cumsum(F.logsigmoid(f_pre), -1)  # F_t = Σ_{s≤t} log f_s   (N, heads, T)
    log_d = F_cum[..., :, None] - F_cum[..., None, :] + i_pre[..., None, :]  # log of f_{s+1}···f_t i_s, (t, s)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    log_d = log_d.masked_fill(~causal, -math.inf)
    carried = F_cum + m0[..., None]  # log scale of the state carried in, at step t
    m = torch.maximum(carried, log_d.amax(-1))  # the stabiliser m_t
    weights = (q @ k.transpose(-1, -2)) * torch.exp(log_d - m[..., None])  # e^{F_t − F_s + ĩ_s − m_t} (q_t·k_s)
    scale = torch.exp(carried - m)[..., None]
    numerator = weights @ v + scale * (q @ C0)
    denominator = weights.sum(-1, keepdim=True) + scale * (q @ n0[..., None])
    h = numerator / torch.maximum(denominator.abs(), torch.exp(-m)[..., None])  # max(|nᵀq|, 1), scaled by e^-m
    # The state after step T: each write decays by f_{s+1}···f_T, the carried state by all T forget gates.
    last = log_d[..., -1, :]  # log(f_{s+1}···f_T i_s)   (N, heads, T)
    m_T = torch.maximum(carried[..., -1], last.amax(-1))
    write = torch.exp(last - m_T[..., None])[..., None] * k  # (N, heads, T, d)
    keep = torch.exp(carried[..., -1] - m_T)
    C = keep[..., None, None] * C0 + write.transpose(-1, -2) @ v
    n = keep[..., None] * n0 + write.sum(-2)
    return h, (C, n, m_T)


@register(
    "mlstm",
    state=("conv", "C", "n", "m"),
    per_unit=False,
    no_onnx="the exporter has no operator for its RMSNorm",
)
class MLSTMCell(Cell):
    """The mLSTM block (xLSTM), pre-norm and residual:

        u = x (or W_in x when D ≠ H)             [a; z] = W_up RMSNorm(u)                       (E = expand·H each)
        c = SiLU(causal depthwise conv_k(a))    q = W_q c   k = W_k c / √d   v = W_v a   [ĩ; f̃] = W_g c
        h̃ = mLSTM(q, k, v, ĩ, f̃) per head       y = (HeadNorm(h̃) + s ⊙ c) ⊙ SiLU(z)         out = u + W_down y

    State: (the last k − 1 conv inputs (N, k−1, E), C (N, heads, d, d), n (N, heads, d), m (N, heads)), shapes that
    do not depend on the layer, so `Recurrent` stacks it. Forget gates start open (bias 3 to 6 across heads), as in
    the paper, so the memory starts long.
    """

    fused_op = True

    def __init__(
        self, input_size: int, hidden_size: int, heads: int | None = None, expand: int = 2, d_conv: int = 4
    ) -> None:
        super().__init__()
        H, E = hidden_size, expand * hidden_size
        heads = heads or math.gcd(E, HEADS)
        if E % heads:
            raise ValueError(f"mlstm: {expand} x hidden size {H} must be a multiple of heads {heads}")
        self.hidden_size, self.inner, self.heads, self.d_conv = H, E, heads, d_conv
        self.memory_heads = self._memory_head_count(heads)
        self.in_input = nn.Linear(input_size, H) if input_size != H else None
        self.norm = nn.RMSNorm(H)
        self.up = nn.Linear(H, 2 * E)
        bound = 1 / math.sqrt(d_conv)  # nn.Conv1d's default for a depthwise filter of d_conv taps
        self.conv_weight = nn.Parameter(torch.empty(d_conv, E).uniform_(-bound, bound))
        self.conv_bias = nn.Parameter(torch.empty(E).uniform_(-bound, bound))
        self.qk = nn.Linear(E, 2 * E, bias=False)
        self.v = nn.Linear(E, E, bias=False)
        self.gates = nn.Linear(E, 2 * self.memory_heads)  # ĩ and f̃ of each head that keeps a matrix memory
        self.head_norm = nn.Parameter(torch.ones(E))
        self.skip = nn.Parameter(torch.ones(E))
        self.down = nn.Linear(E, H)
        with torch.no_grad():  # input gates near e^0, forget gates open (bias 3 to 6 across heads): a long memory
            heads = self.memory_heads
            nn.init.zeros_(self.gates.weight)
            nn.init.normal_(self.gates.bias[:heads], 0.0, 0.1)  # ĩ
            self.gates.bias[heads:].copy_(torch.linspace(3.0, 6.0, heads))  # f̃

    def _memory_head_count(self, heads: int) -> int:
        """How many of the heads keep a matrix memory: all of them here (nn/local.py gives half to attention)."""
        return heads

    def initial_state(self, N: int, device: torch.device, dtype: torch.dtype) -> CellState:
        """Zeros: (conv inputs (N, k−1, E), C (N, heads, d, d), n (N, heads, d), m (N, heads)), for the memory heads."""
        E, heads, d = self.inner, self.memory_heads, self.inner // self.heads
        zeros = lambda *shape: torch.zeros(N, *shape, device=device, dtype=dtype)  # noqa: E731
        return zeros(self.d_conv - 1, E), zeros(heads, d, d), zeros(heads, d), zeros(heads)

    def project(self, x: Tensor) -> Tensor:
        """Everything before the convolution, which needs no state: [u, a, z] (..., H + 2E)."""
        u = self.in_input(x) if self.in_input is not None else x
        return torch.cat([u, self.up(pre_norm(self.norm, u))], -1)

    def _convolve(self, window: Tensor) -> Tensor:
        """SiLU of the causal depthwise convolution: window (N, k−1+T, E), the carried inputs first -> (N, T, E).
        As k shifted multiply-adds, which on the CPU run faster than a grouped `conv1d` and its backward."""
        T = window.shape[1] - (self.d_conv - 1)
        out = self.conv_bias + sum(w * window[:, j : j + T] for j, w in enumerate(self.conv_weight))
        return F.silu(out)

    def _heads(self, t: Tensor) -> Tensor:
        """(N, T, E) -> (N, heads, T, d)."""
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def _memory(self, a: Tensor, c: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The memory over the T steps of a (N, T, E) and its convolved c, `CHUNK` steps at a time: h̃ (N, T, E) and
        the new (C, n, m).

        The projections run once for all T steps; the recurrence runs in float32 at least, outside autocast: the
        gates' exponentials and the carried memory must not be rounded to bf16."""
        q, k = self.qk(c).chunk(2, -1)
        v = self.v(a)
        gates = self.gates(c)
        with torch.autocast(a.device.type, enabled=False):
            dtype = torch.promote_types(q.dtype, torch.float32)
            q, k, v = (self._heads(t.to(dtype)) for t in (q, k, v))
            i_pre, f_pre = gates.to(dtype).transpose(1, 2).chunk(2, 1)  # (N, memory heads, T) each
            h, memory = self._read(q, k, v, i_pre, f_pre, tuple(s.to(dtype) for s in state))
        return h.transpose(1, 2).flatten(2), memory

    def _read(
        self, q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, f_pre: Tensor, state: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Every head reads and writes its matrix memory: h̃ (N, heads, T, d) and the new (C, n, m)."""
        k = k / math.sqrt(k.shape[-1])
        outputs = []
        for part in zip(*(t.split(CHUNK, 2) for t in (q, k, v, i_pre, f_pre)), strict=True):
            h, state = mlstm_chunk(*part, state)
            outputs.append(h)
        return torch.cat(outputs, 2), state

    def _output(self, u: Tensor, c: Tensor, z: Tensor, h: Tensor) -> Tensor:
        # RMS norm per head, written out: on the CPU it trains faster than F.rms_norm (benchmarked by hand)
        heads = h.unflatten(-1, (self.heads, -1))
        normed = (heads * torch.rsqrt(heads.pow(2).mean(-1, keepdim=True) + HEAD_EPS)).flatten(-2) * self.head_norm
        return u + self.down((normed + self.skip * c) * F.silu(z))

    def _split(self, xw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        H, E = self.hidden_size, self.inner
        return xw[..., :H], xw[..., H : H + E], xw[..., H + E :]

    def numpy_step(self) -> Callable[[np.ndarray, tuple[np.ndarray, ...]], tuple[np.ndarray, tuple]]:
        """The block for one token in NumPy float32 (the one-token stepper's fast path, lm/stepper.py): `sequence`'s
        arithmetic at T = 1, where the chunk's (T, T) product is the recurrence itself, on views of the weights."""
        E = self.inner
        w_in, b_in = (
            (_view(self.in_input.weight), _view(self.in_input.bias)) if self.in_input is not None else (None, None)
        )
        norm, eps = _view(self.norm.weight), self.norm.eps or np.finfo(np.float32).eps
        w_up, b_up, w_qk, w_v = (_view(p) for p in (self.up.weight, self.up.bias, self.qk.weight, self.v.weight))
        w_down, b_down = (_view(p) for p in self.down.parameters())
        conv_w, conv_b, head_norm, skip = (
            _view(p) for p in (self.conv_weight, self.conv_bias, self.head_norm, self.skip)
        )
        read = self._numpy_read()

        def step(x: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple]:
            with np.errstate(over="ignore"):  # e^{-m} and SiLU's e^{-x} may pass float32's range: inf, as in torch
                return arithmetic(x, state)

        def arithmetic(x: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple]:
            conv, *memory = state
            u = w_in @ x + b_in if w_in is not None else x
            az = w_up @ (u / np.sqrt(np.dot(u, u) / len(u) + eps) * norm) + b_up
            a, z = az[:E], az[E:]
            window = np.concatenate([conv, a[None]])  # (k, E): the last k inputs
            c = (conv_w * window).sum(0) + conv_b
            c *= 1 / (1 + np.exp(-c))  # SiLU
            q, k = (w_qk @ c).reshape(2, self.heads, -1)
            v = (w_v @ a).reshape(self.heads, -1)
            h, memory = read(q, k, v, c, tuple(memory))
            h = (h / np.sqrt(np.mean(h * h, -1, keepdims=True) + HEAD_EPS)).reshape(E) * head_norm
            y = (h + skip * c) * (z / (1 + np.exp(-z)))
            return u + w_down @ y + b_down, (window[1:], *memory)

        return step

    def _numpy_read(self) -> Callable[..., tuple[np.ndarray, tuple]]:
        """`_read` for one token in NumPy: read(q, k, v (heads, d) unscaled, c (E,) for the gates, (C, n, m)) ->
        (h̃ (heads, d), the new (C, n, m))."""
        w_gates, b_gates = _view(self.gates.weight), _view(self.gates.bias)

        def read(q: np.ndarray, k: np.ndarray, v: np.ndarray, c: np.ndarray, memory: tuple) -> tuple[np.ndarray, tuple]:
            C, n, m = memory
            k = k * np.float32(1 / math.sqrt(k.shape[-1]))
            i_pre, f_pre = (w_gates @ c + b_gates).reshape(2, -1)
            carried = m - np.logaddexp(0, -f_pre)  # log f_t + m_{t-1}
            m = np.maximum(carried, i_pre)
            keep, write = np.exp(carried - m), np.exp(i_pre - m)
            C = keep[:, None, None] * C + write[:, None, None] * k[:, :, None] * v[:, None, :]
            n = keep[:, None] * n + write[:, None] * k
            h = (q[:, None] @ C)[:, 0] / np.maximum(np.abs((n * q).sum(-1)), np.exp(-m))[:, None]
            return h, (C, n, m)

        return read

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        conv, *memory = state
        u, a, z = self._split(xw)
        window = torch.cat([conv, a[:, None]], 1)  # (N, k, E): the last k inputs
        c = self._convolve(window)
        h, memory = self._memory(a[:, None], c, tuple(memory))
        return self._output(u, c[:, 0], z, h[:, 0]), (window[:, 1:], *memory)

    def sequence(self, x: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """x (N, T, D) -> (N, T, H), final state: the memory `CHUNK` steps at a time, each chunk at once."""
        conv, *memory = state
        u, a, z = self._split(self.project(x))
        window = torch.cat([conv, a], 1)  # (N, k−1+T, E): the carried inputs first
        c = self._convolve(window)
        h, memory = self._memory(a, c, tuple(memory))
        return self._output(u, c, z, h), (window[:, window.shape[1] - (self.d_conv - 1) :], *memory)
