"""Recurrent cells, each written as its equations.

Every cell splits its work the same way, which is also its fast path:
    project(x)          the input's share of every gate for all T steps at once: one (N·T, D) x (D, G·H) product
    step(xw_t, state)   what must stay in the time loop: the recurrent product and the gate arithmetic
`forward_step(x_t, state)` (one step, used for sampling) and `forward(x, state)` (a sequence, used for
training) are both built from these two, so they agree by construction, and tests check it anyway. The LSTM
and GRU cells, whose equations are PyTorch's, run a sequence with PyTorch's fused op on their own weights
instead (`sequence`, used while `fused_op` is on), as do the scan cells with theirs (nn/scan.py) and the
peephole LSTM with its hand-written BPTT (nn/peephole_lstm.py); tests check each against its step loop in value
and gradient. The recurrent stack hands PyTorch's op the weights of all its layers at once (`torch_layers`).

The cells whose step is xw = W_ih x + b_ih, hw = W_hh h + b_hh and then element-wise arithmetic (Elman, LSTM, GRU:
the equations of `torch.nn.RNN/LSTM/GRU`) write that arithmetic once, as `equations(xw, hw, state, ops, record)`:
`step` runs it on tensors, the NumPy one-token stepper (models/stepper.py) on arrays (`ops=NUMPY`), and the
gradient probe (analysis/gradients.py) with a `record` hook, which is handed each gate's activations.

Each cell registers its `--cell` name here with `@register` (nn/registry.py), the scan cells in nn/scan.py.

Shapes: x (N, T, D) batch-first, h (N, H). State is a tensor h, or a tuple (h, c) for the LSTM.
Parameter names and gate order follow `torch.nn.RNN/LSTM/GRU` where the equations are the same
(`weight_ih` (G·H, D), `weight_hh` (G·H, H), `bias_ih`, `bias_hh`), so their weights load directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.nn.peephole_lstm import peephole_lstm
from rnnlab.nn.registry import get, register

CellState = Tensor | tuple[Tensor, ...]
Record = Callable[..., None]  # record(sigmoid=(...), tanh=(...)): the activations `equations` computed, by function


class Ops(NamedTuple):
    """The element-wise functions of `equations`, for torch tensors or NumPy arrays."""

    sigmoid: Callable[[Any], Any]
    tanh: Callable[[Any], Any]
    relu: Callable[[Any], Any]


def _numpy_sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = (1 + tanh(x / 2)) / 2: no overflow for large |x|, a new array."""
    s = x * 0.5
    np.tanh(s, out=s)
    s *= 0.5
    s += 0.5
    return s


TORCH = Ops(torch.sigmoid, torch.tanh, torch.relu)
NUMPY = Ops(_numpy_sigmoid, np.tanh, lambda x: np.maximum(x, 0))

# PyTorch's fused sequence ops by `torch.nn.RNNBase`'s mode names (a cell's `torch_mode`).
_TORCH_OPS = {"RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu, "LSTM": torch.lstm, "GRU": torch.gru}


def torch_layers(
    mode: str, x: Tensor, state: CellState, weights: list[Tensor], dropout: float = 0.0, train: bool = False
) -> tuple[Tensor, CellState]:
    """L layers of PyTorch's fused op `mode` (a cell's `torch_mode`), batch-first, called as `torch.nn.RNN/LSTM/GRU`
    call it (oneDNN or ATen's loop on the CPU, cuDNN on a GPU), on weights that need not belong to such a module:
    x (N, T, D), state (L, N, H) (the LSTM's: (h, c) of them), weights [W_ih, W_hh, b_ih, b_hh] of layer 0, then of
    layer 1, ...; dropout on every layer's outputs but the last's while `train`. Returns (outputs (N, T, H), final
    state in the same form)."""
    out, *final = _TORCH_OPS[mode](x, state, weights, True, len(weights) // 4, dropout, train, False, True)
    return out, tuple(final) if len(final) > 1 else final[0]


def _each(state: CellState, fn: Callable[[Tensor], Tensor]) -> CellState:
    """`fn` applied to every part of a state."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def at_least_float32(*tensors: Tensor | None) -> list[Tensor | None]:
    """The tensors in float32 (float64 stays), for the cells' own sequence nodes: a state carried over T steps
    must not be kept in bf16 or fp16, which mixed-precision training would otherwise hand them."""
    return [None if t is None else t.to(torch.promote_types(t.dtype, torch.float32)) for t in tensors]


def pre_norm(norm: nn.RMSNorm, u: Tensor) -> Tensor:
    """`norm(u)` in the norm's own dtype: under autocast the blocks' inputs arrive in bf16, and an RMSNorm whose
    input and weight differ in dtype leaves its fused kernel (and warns)."""
    return norm(u.to(norm.weight.dtype))


class Cell(nn.Module):
    """A recurrent cell: `project` the inputs once, then `step` through time."""

    hidden_size: int
    # True where `forward` runs a whole sequence as one op with its own backward (`sequence`): PyTorch's fused op
    # on the cell's weights (LSTM, GRU), rnnlab's scans (minGRU, minLSTM, ssm, in nn/scan.py) or its peephole
    # LSTM (nn/peephole_lstm.py). False forces the step loop, which `torch.func.vmap` and double backward need
    # (Hessian-free's curvature products), and the ONNX exporter, which sees only primitive ops (lm/export.py).
    fused_op: bool = False
    # The mode of `torch.nn.RNNBase` whose equations and parameters (`gate_weights`) are this cell's, for
    # `torch_layers`: "RNN_TANH", "RNN_RELU", "LSTM" or "GRU"; None for a cell whose equations PyTorch lacks.
    torch_mode: ClassVar[str | None] = None
    # `step`'s arithmetic on plain arrays, for the cells that have one (see the module docstring):
    # equations(xw, hw, state, ops=TORCH, record=None) -> (h_t, new state).
    equations: ClassVar[Callable[..., tuple[Any, Any]] | None] = None
    # Whether `equations` reads only the sum xw + hw, so that b_hh may be added to the input share instead (the
    # NumPy stepper folds it into its per-token table). The GRU's b_hn sits inside the reset gate's product.
    bias_hh_foldable: ClassVar[bool] = True

    def project(self, x: Tensor) -> Tensor:
        """Input contribution to every gate, for any leading shape: (..., D) -> (..., G·H)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """One time step from the projected input xw (N, G·H): returns (h_t, new state). For a cell with
        `equations`, those on xw and the recurrent share W_hh h + b_hh; every other cell writes its own."""
        if self.equations is None:
            raise NotImplementedError
        h = state[0] if isinstance(state, tuple) else state
        return self.equations(xw, F.linear(h, self.weight_hh, self.bias_hh), state)

    def recurrent_weights(self) -> Any:
        """Slices of the parameters that `step` uses, for cells that slice them (else None); `forward` takes
        them once per sequence and hands them to every `step(xw, state, weights)`.

        A slice of a parameter taken inside the time loop costs, in backward, one gradient of the parameter's
        full size per step (zeros around the slice, then added up); sliced once per sequence, it costs one.
        """
        return None

    def numpy_step(self) -> Callable[[np.ndarray, tuple[np.ndarray, ...]], tuple[np.ndarray, tuple]] | None:
        """For cells without `equations` whose step is more than a gate product (the mLSTM block): one step on
        NumPy float32 arrays, x (D,) and the state's parts without the batch axis -> (h (H,), new parts), reading
        views of the parameters, so that in-place updates show through. None for every other cell."""
        return None

    def stepper(self) -> Callable[[Tensor, CellState], tuple[Tensor, CellState]]:
        """The function `forward` calls at each time step: `step`, given the sliced weights if any."""
        weights = self.recurrent_weights()
        return self.step if weights is None else lambda xw, state: self.step(xw, state, weights)

    def initial_state(self, N: int, device: torch.device, dtype: torch.dtype) -> CellState:
        """Zeros: h_0 (and c_0) of shape (N, H)."""
        return torch.zeros(N, self.hidden_size, device=device, dtype=dtype)

    def forward_step(self, x: Tensor, state: CellState | None = None) -> tuple[Tensor, CellState]:
        """One step: x (N, D) -> h (N, H), state."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        return self.step(self.project(x), state)

    def gate_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) in `torch.nn.RNN/LSTM/GRU`'s layout: what PyTorch's op
        (`torch_mode`), the NumPy stepper and the probes run, for the cells that have those weights."""
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def sequence(self, x: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """A whole sequence as one op, for cells with `fused_op`: same contract as `forward`. Here PyTorch's op
        (`torch_mode`) as a stack of one layer on this cell's own weights; cells without one write their own."""
        if self.torch_mode is None:
            raise NotImplementedError
        layers = _each(state, lambda s: s[None])  # (N, H) -> (1, N, H)
        out, final = torch_layers(self.torch_mode, x, layers, list(self.gate_weights()), train=self.training)
        return out, _each(final, lambda s: s[0])

    def forward(self, x: Tensor, state: CellState | None = None) -> tuple[Tensor, CellState]:
        """A sequence: x (N, T, D) -> outputs (N, T, H), final state. By `sequence` when `fused_op` is on,
        else by the step loop."""
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        if self.fused_op:
            return self.sequence(x, state)
        outputs, step = [], self.stepper()
        # The projection is hoisted out of the time loop; `unbind` (not xw[:, t]) gives autograd one
        # gradient to stack, where T slices would each scatter into a zero tensor of xw's full size.
        for xw_t in self.project(x).unbind(1):
            h, state = step(xw_t, state)
            outputs.append(h)
        return torch.stack(outputs, 1), state

    def _uniform_init(self) -> None:
        """PyTorch's default for its recurrent modules: U(-1/sqrt(H), 1/sqrt(H)) for every parameter."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)


def gate_params(cell: Cell, D: int, H: int, input_gates: int, hidden_gates: int) -> None:
    """Give `cell` its gate weights: `weight_ih` (input_gates·H, D) and `bias_ih`, and where hidden_gates > 0
    `weight_hh` (hidden_gates·H, H) and `bias_hh`, initialised as every cell's are (`Cell._uniform_init`)."""
    cell.hidden_size = H
    shapes = {"weight_ih": (input_gates * H, D), "weight_hh": (hidden_gates * H, H)}
    shapes |= {"bias_ih": (input_gates * H,), "bias_hh": (hidden_gates * H,)}  # in this order: parameters() keeps it
    for name, shape in shapes.items():
        if shape[0]:
            setattr(cell, name, nn.Parameter(torch.empty(shape)))
    cell._uniform_init()


@register("rnn-tanh")
class ElmanCell(Cell):
    """Elman RNN: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), f = tanh (as `torch.nn.RNN`); ReLU in `ReLUCell`."""

    nonlinearity: ClassVar[str] = "tanh"  # f, by its name in `Ops`
    # PyTorch's Elman op runs all the layers of a stack (cuDNN on a GPU), but the cell alone keeps its step loop: on
    # the CPU the op is a step loop under autograd as well, and no faster (the rnn-tanh rows of
    # benchmarks/results/cells.md).
    torch_mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        gate_params(self, input_size, hidden_size, 1, 1)

    @classmethod
    def equations(cls, xw: Any, hw: Any, state: Any, ops: Ops = TORCH, record: Record | None = None) -> tuple[Any, Any]:
        """h_t = f(xw + hw), from the input share xw = W_ih x + b_ih and the recurrent share hw = W_hh h + b_hh."""
        h = getattr(ops, cls.nonlinearity)(xw + hw)
        if record is not None:
            record(**{cls.nonlinearity: (h,)})
        return h, h


@register("rnn-relu")
class ReLUCell(ElmanCell):
    """Elman RNN with f = ReLU (as `torch.nn.RNN(nonlinearity="relu")`)."""

    nonlinearity = "relu"
    torch_mode = "RNN_RELU"


@register("irnn")
class IRNNCell(ReLUCell):
    """IRNN (Le, Jaitly & Hinton 2015): a ReLU Elman RNN with W_hh = I and zero biases at initialisation,
    so that at the start the hidden state is copied forward and gradients neither vanish nor explode."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        with torch.no_grad():
            self.weight_hh.copy_(torch.eye(hidden_size))
            self.bias_ih.zero_()
            self.bias_hh.zero_()
            nn.init.normal_(self.weight_ih, std=0.001)  # the paper's small Gaussian input weights


def _forget_bias(bias_ih: Tensor, bias_hh: Tensor, value: float) -> None:
    """The LSTM's forget-gate bias starts at `value` (Gers et al. 2000; Jozefowicz et al. 2015): remember by default.
    Gate order (i, f, g, o); of the two biases PyTorch adds, their sum is set."""
    H = bias_ih.shape[0] // 4
    with torch.no_grad():
        bias_ih[H : 2 * H].fill_(value)
        bias_hh[H : 2 * H].zero_()


@register("lstm", state=("h", "c"), options=("peephole",))
class LSTMCell(Cell):
    """LSTM (Hochreiter & Schmidhuber 1997; forget gate, Gers et al. 2000), gate order (i, f, g, o):

        i = σ(W_i x + U_i h + p_i ⊙ c_{t-1})    f = σ(W_f x + U_f h + p_f ⊙ c_{t-1})    g = tanh(W_g x + U_g h)
        c_t = f ⊙ c_{t-1} + i ⊙ g               o = σ(W_o x + U_o h + p_o ⊙ c_t)        h_t = o ⊙ tanh(c_t)

    (biases omitted). Peephole weights p (Gers & Schmidhuber 2000) only with `peephole=True`; without
    them this is exactly `torch.nn.LSTM`. The forget-gate bias starts at `forget_bias`.
    """

    fused_op = True
    torch_mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, peephole: bool = False, forget_bias: float = 1.0) -> None:
        super().__init__()
        gate_params(self, input_size, hidden_size, 4, 4)
        _forget_bias(self.bias_ih, self.bias_hh, forget_bias)
        self.peephole = nn.Parameter(torch.zeros(3, hidden_size)) if peephole else None

    def initial_state(self, N: int, device: torch.device, dtype: torch.dtype) -> CellState:
        zeros = torch.zeros(N, self.hidden_size, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def sequence(self, x: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """Without peepholes the equations are `torch.nn.LSTM`'s, so PyTorch's fused op runs them on this
        cell's own weights (`Cell.sequence`). With peepholes, which PyTorch's op lacks, rnnlab's own one-node LSTM
        with hand-written BPTT (nn/peephole_lstm.py). Both are faster than the step loop on the CPU
        (benchmarks/results/cells.md)."""
        if self.peephole is None:
            return super().sequence(x, state)
        h, c = state
        weights = (self.weight_ih, self.bias_ih + self.bias_hh, self.weight_hh, self.peephole)
        out, h, c = peephole_lstm(*at_least_float32(x, *weights, h, c))
        return out, (h, c)

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """`equations`, with the peephole weights if any."""
        hw = F.linear(state[0], self.weight_hh, self.bias_hh)
        return self.equations(xw, hw, state, peephole=self.peephole)

    @staticmethod
    def equations(
        xw: Any, hw: Any, state: Any, ops: Ops = TORCH, record: Record | None = None, peephole: Any = None
    ) -> tuple[Any, Any]:
        """(h_t, (h_t, c_t)) from the input and recurrent shares of the four gates (..., 4H) and (h, c)_{t-1}, with
        the peephole weights (3, H) if any. Without them σ is taken of all four pre-activations at once (g's share
        unused): one call, not three."""
        c = state[1]
        H = c.shape[-1]
        a = xw + hw
        if peephole is None:
            s = ops.sigmoid(a)
            i, f, o = s[..., :H], s[..., H : 2 * H], s[..., 3 * H :]
        else:  # i and f see c_{t-1}, o sees c_t
            i, f = ops.sigmoid(a[..., :H] + peephole[0] * c), ops.sigmoid(a[..., H : 2 * H] + peephole[1] * c)
        g = ops.tanh(a[..., 2 * H : 3 * H])
        c = f * c + i * g
        if peephole is not None:
            o = ops.sigmoid(a[..., 3 * H :] + peephole[2] * c)
        tanh_c = ops.tanh(c)
        h = o * tanh_c
        if record is not None:
            record(sigmoid=(i, f, o), tanh=(g, tanh_c))
        return h, (h, c)


@register("gru")
class GRUCell(Cell):
    """GRU in the PyTorch/cuDNN form, gate order (r, z, n); the reset gate acts *after* W_hn:

    r = σ(W_r x + b_ir + U_r h + b_hr)     z = σ(W_z x + b_iz + U_z h + b_hz)
    n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))                h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
    """

    fused_op = True  # PyTorch's fused GRU op on this cell's own weights (`Cell.sequence`)
    torch_mode = "GRU"
    bias_hh_foldable = False

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        gate_params(self, input_size, hidden_size, 3, 3)

    @staticmethod
    def equations(xw: Any, hw: Any, state: Any, ops: Ops = TORCH, record: Record | None = None) -> tuple[Any, Any]:
        """h_t from the input and recurrent shares of the three gates (..., 3H) and h_{t-1} (the new state is h_t)."""
        H = state.shape[-1]
        rz = ops.sigmoid(xw[..., : 2 * H] + hw[..., : 2 * H])
        n = ops.tanh(xw[..., 2 * H :] + rz[..., :H] * hw[..., 2 * H :])
        h = n + rz[..., H:] * (state - n)  # (1 − z) ⊙ n + z ⊙ h_{t-1}, as PyTorch's kernel computes it
        if record is not None:
            record(sigmoid=(rz,), tanh=(n,))
        return h, h


@register("gru-cho")
class GRUChoCell(Cell):
    """GRU in the form of Cho et al. (2014) and the lectures: the reset gate acts *before* W_hn:

        n = tanh(W_n x + b_in + U_n (r ⊙ h_{t-1}) + b_hn)          h_t = z ⊙ h_{t-1} + (1 − z) ⊙ n

    with r and z as in `GRUCell`. The two forms are different functions (equal only where r = 1);
    this one needs a second recurrent product per step, after r is known.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        gate_params(self, input_size, hidden_size, 3, 3)

    def recurrent_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(U_rz, b_hrz) for the gates, then (U_n, b_hn) for the candidate."""
        H = self.hidden_size
        return self.weight_hh[: 2 * H], self.bias_hh[: 2 * H], self.weight_hh[2 * H :], self.bias_hh[2 * H :]

    def step(self, xw: Tensor, state: CellState, weights: tuple[Tensor, ...] | None = None) -> tuple[Tensor, CellState]:
        U_rz, b_rz, U_n, b_n = weights or self.recurrent_weights()
        xr, xz, xn = xw.chunk(3, 1)
        rz = F.linear(state, U_rz, b_rz)
        r, z = torch.sigmoid(xr + rz[:, : self.hidden_size]), torch.sigmoid(xz + rz[:, self.hidden_size :])
        n = torch.tanh(xn + F.linear(r * state, U_n, b_n))
        h = z * state + (1 - z) * n
        return h, h


class MUTCell(Cell):
    """MUT1, MUT2, MUT3: the three architectures found by evolutionary search in Jozefowicz, Zaremba &
    Sutskever, "An Empirical Exploration of Recurrent Network Architectures" (ICML 2015), section 3.3
    (the lecture slides misprint some terms; these are the paper's):

        MUT1:  z = σ(W_xz x + b_z)                     r = σ(W_xr x + W_hr h + b_r)
               h_{t+1} = tanh(W_hh (r ⊙ h) + tanh(x) + b_h) ⊙ z + h ⊙ (1 − z)
        MUT2:  z = σ(W_xz x + W_hz h + b_z)            r = σ(x + W_hr h + b_r)
               h_{t+1} = tanh(W_hh (r ⊙ h) + W_xh x + b_h) ⊙ z + h ⊙ (1 − z)
        MUT3:  z = σ(W_xz x + W_hz tanh(h) + b_z)      r = σ(W_xr x + W_hr h + b_r)
               h_{t+1} = tanh(W_hh (r ⊙ h) + W_xh x + b_h) ⊙ z + h ⊙ (1 − z)

    Only the weights the paper has exist: `weight_ih` stacks the x-weights (MUT1: W_xz, W_xr; MUT2:
    W_xz, W_xh; MUT3: W_xz, W_xr, W_xh), `weight_hh` the h-weights (MUT1: W_hr, W_hh; MUT2/3: W_hz,
    W_hr, W_hh), `bias` is (b_z, b_r, b_h). MUT1 and MUT2 add x un-weighted, so they need D = H.
    Each variant is a subclass (`MUT1Cell` ...) with its own `--cell` name.
    """

    variant: ClassVar[int]
    _X_TERMS: ClassVar[dict[int, str]] = {1: "zr", 2: "zh", 3: "zrh"}  # gates whose x-term has a weight
    _H_TERMS: ClassVar[dict[int, str]] = {1: "rh", 2: "zrh", 3: "zrh"}  # gates with an h-weight

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        variant = self.variant
        if variant in (1, 2) and input_size != hidden_size:
            raise ValueError(f"MUT{variant} adds x un-weighted, so it needs input size = hidden size")
        self.hidden_size = H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(len(self._X_TERMS[variant]) * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(len(self._H_TERMS[variant]) * H, H))
        self.bias = nn.Parameter(torch.empty(3 * H))
        self._uniform_init()

    def project(self, x: Tensor) -> Tensor:
        """The x-terms of (z, r, candidate), with the paper's un-weighted x where it has no weight, plus biases."""
        if self.variant == 3:  # every gate's x-term is weighted, in gate order: one product, no concatenation
            return F.linear(x, self.weight_ih, self.bias)
        weighted = dict(
            zip(
                self._X_TERMS[self.variant],
                F.linear(x, self.weight_ih).chunk(len(self._X_TERMS[self.variant]), -1),
                strict=True,
            )
        )
        unweighted = torch.tanh(x) if self.variant == 1 else x
        terms = [weighted.get(gate, unweighted) for gate in "zrh"]
        return torch.cat(terms, -1) + self.bias

    def recurrent_weights(self) -> dict[str, Tensor]:
        """The h-weights by gate ("z", "r", "h"), as views of `weight_hh`."""
        gates = self._H_TERMS[self.variant]
        return dict(zip(gates, self.weight_hh.chunk(len(gates), 0), strict=True))

    def step(self, xw: Tensor, state: CellState, weights: dict[str, Tensor] | None = None) -> tuple[Tensor, CellState]:
        W = weights or self.recurrent_weights()
        xz, xr, xh = xw.chunk(3, 1)
        if self.variant == 1:
            z = torch.sigmoid(xz)
        elif self.variant == 2:
            z = torch.sigmoid(xz + F.linear(state, W["z"]))
        else:
            z = torch.sigmoid(xz + F.linear(torch.tanh(state), W["z"]))
        r = torch.sigmoid(xr + F.linear(state, W["r"]))
        candidate = torch.tanh(F.linear(r * state, W["h"]) + xh)
        h = candidate * z + state * (1 - z)
        return h, h


@register("mut1", same_width=True)
class MUT1Cell(MUTCell):
    """MUT1 (see `MUTCell`)."""

    variant = 1


@register("mut2", same_width=True)
class MUT2Cell(MUTCell):
    """MUT2 (see `MUTCell`)."""

    variant = 2


@register("mut3")
class MUT3Cell(MUTCell):
    """MUT3 (see `MUTCell`)."""

    variant = 3


# mrnn's default learning rate is capped: its hidden-to-hidden matrix is a product W_hf diag(gains) W_fh, so the
# small steps Adam takes on every factor compound; at the default rate the product's spectral radius grew until the
# hidden units saturated and training diverged (benchmarks/results/cells_quality.md).
@register("mrnn", options=("factors",), max_lr=1e-3)
class MRNNCell(Cell):
    """Multiplicative RNN (Sutskever, Martens & Hinton 2011) with factored 3-way weights: the input
    chooses the hidden-to-hidden matrix W_hh(x) = W_hf diag(W_fx x + b_f) W_fh.

        f_t = (W_fx x_t + b_f) ⊙ (W_fh h_{t-1})        h_t = tanh(W_hf f_t + W_hx x_t + b)

    The paper's inputs are one-hot, so W_fx x picks one gain vector per character; with dense embeddings
    the factor bias b_f (initialised to 1) keeps the gains near 1 at the start, so the cell begins as an
    ordinary RNN with W_hh = W_hf W_fh, whatever the embedding's scale (without it the gains start as
    random sums of embedding entries and training crawls). `weight_ih` and `bias_ih` stack [W_fx; W_hx]
    and [b_f; b], so both input terms come from one hoisted product; `weight_fh` (F, H) and `weight_hf`
    (H, F) are the recurrent factors.
    """

    def __init__(self, input_size: int, hidden_size: int, factors: int = 0) -> None:
        super().__init__()
        self.hidden_size, self.factors = hidden_size, factors or hidden_size
        Fn, H, D = self.factors, hidden_size, input_size
        self.weight_ih = nn.Parameter(torch.empty(Fn + H, D))
        self.bias_ih = nn.Parameter(torch.empty(Fn + H))
        self.weight_fh = nn.Parameter(torch.empty(Fn, H))
        self.weight_hf = nn.Parameter(torch.empty(H, Fn))
        self._uniform_init()
        with torch.no_grad():
            self.bias_ih[:Fn] += 1.0  # factor gains start near 1: "use W_hf W_fh as is"

    def project(self, x: Tensor) -> Tensor:
        """[W_fx x + b_f, W_hx x + b]: the input's factor gains and its direct contribution."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        fx, hx = xw[:, : self.factors], xw[:, self.factors :]
        f = fx * F.linear(state, self.weight_fh)
        h = torch.tanh(F.linear(f, self.weight_hf) + hx)
        return h, h


NARX_DELAYS = 8  # the `--cell narx` delay line: h_t sees x_{t-8..t}, as far back as a char LM's short words


@register("narx", state=("taps",), per_unit=False, no_onnx="the exporter takes (L, N, H) states, not a k·H line")
class NARXCell(Cell):
    """Delay-tap (time-delay, NARX) cell: the network sees a tapped delay line of its last k inputs, not its
    previous hidden state (Lang, Waibel & Hinton 1990's time-delay network; the input taps of Lin, Horne, Tiňo &
    Giles 1996's NARX network):

        h_t = tanh(W_0 x_t + W_1 x_{t-1} + ... + W_k x_{t-k} + b)        k = `delays`

    so h_t depends on x_{t-k..t} and on nothing older: its memory is the window. Output taps are left out on
    purpose: feeding back the cell's own output h_{t-1} is Elman's recurrence, the very thing this cell is the
    contrast to, and in next-token prediction under teacher forcing the previous outputs are the previous inputs.

    The delay line is held in projected form (the transposed direct form of an FIR filter): part m = 1..k of the
    state is the inputs' share, already read, of h_{t+m}'s pre-activation, Σ_{j ≥ m} W_j x_{t+m-j}, each (N, H).
    The state is therefore (N, k·H) whatever the input size, so layers of different input sizes stack (the
    registry's state contract); it is not per unit (k values per unit, none of them h). `weight_ih` stacks
    [W_0; W_1; ...; W_k] ((k+1)·H, D), so every tap comes from one product per sequence; `bias_ih` (H) is b.
    """

    fused_op = True  # `sequence`: all steps at once as k + 1 shifted sums; the step loop is the check

    def __init__(self, input_size: int, hidden_size: int, delays: int = NARX_DELAYS) -> None:
        super().__init__()
        if delays < 1:
            raise ValueError(f"a delay line needs delays >= 1, got {delays}")
        self.hidden_size, self.delays = hidden_size, delays
        self.weight_ih = nn.Parameter(torch.empty((delays + 1) * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self._uniform_init()

    def initial_state(self, N: int, device: torch.device, dtype: torch.dtype) -> CellState:
        """Zeros (N, k·H): before the first input, every earlier input counts as zero."""
        return torch.zeros(N, self.delays * self.hidden_size, device=device, dtype=dtype)

    def project(self, x: Tensor) -> Tensor:
        """Every tap's share, [W_0 x + b, W_1 x, ..., W_k x]: (..., D) -> (..., (k+1)·H)."""
        return F.linear(x, self.weight_ih, F.pad(self.bias_ih, (0, self.delays * self.hidden_size)))

    def step(self, xw: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """h_t from x_t's share and part 1 of the line; the line moves up one place and takes x_t's later shares."""
        H = self.hidden_size
        h = torch.tanh(xw[..., :H] + state[..., :H])
        return h, F.pad(state[..., H:], (0, H)) + xw[..., H:]

    def sequence(self, x: Tensor, state: CellState) -> tuple[Tensor, CellState]:
        """x (N, T, D) -> h (N, T, H), final line: the pre-activations of steps 0..T+k-1 as the carried line plus
        each tap's shares shifted by its delay; the first T are this sequence's, the last k the line carried on."""
        N, T, _ = x.shape
        H, k = self.hidden_size, self.delays
        taps = self.project(x).view(N, T, k + 1, H)
        pre = F.pad(state.view(N, k, H), (0, 0, 0, T))  # (N, T + k, H)
        for j in range(k + 1):
            pre = pre + F.pad(taps[:, :, j], (0, 0, j, k - j))
        return torch.tanh(pre[:, :T]), pre[:, T:].reshape(N, k * H)


def make_cell(name: str, input_size: int, hidden_size: int, **options: Any) -> Cell:
    """The cell called `name` (as in `--cell`; nn/registry.py). `options` are ModelConfig fields by name (peephole,
    factors); each cell is given those its registration lists, as they apply to it alone."""
    spec = get(name)
    return spec.cls(input_size, hidden_size, **{k: v for k, v in options.items() if k in spec.options})


def step_loops(module: nn.Module) -> nn.Module:
    """`module` with every cell on its step loop, for what sees only primitive ops: Hessian-free's vmap and double
    backward, and the ONNX exporter. Turns `fused_op` off in every module that has one: the cells, and the recurrent
    stacks (nn/recurrent.py), which then run their layers one by one."""
    for m in module.modules():
        if hasattr(m, "fused_op"):
            m.fused_op = False
    return module
