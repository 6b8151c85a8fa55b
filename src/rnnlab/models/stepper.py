"""One token at a time through an `RNNLM`, with the per-call overhead stripped: for coding and sampling loops
that must run strictly step by step (the arithmetic decoder needs each prediction before the next input, the
sampler each token before it can feed it back).

`RNNLM.forward` on a (1, 1) input pays for generality: module dispatch, `nn.LSTM`'s fused sequence kernel
(hundreds of microseconds for T = 1 on CPU), state packing. For the fused cells (`nn.RNN/LSTM/GRU`, no
per-layer extras) `FusedStepper` computes the same equations in NumPy float32 on views of the weights, a
dozen array operations per layer (NumPy's per-call cost is a few times lower than PyTorch's, which
halves the time of a step at these sizes):

    layer 0 input share   table[token]           (V, G·H): embedding @ W_ih^T + b_ih (+ b_hh), once per weights
    layer l > 0           b + W_ih h_{l-1}
    recurrent share       W_hh h_l (+ b_hh), then the cell's gate arithmetic in PyTorch's gate order
    head                  b + W (proj(h_top))

The same equations also run layered stacks of those cells (`rnn.layers`) whose only extra is variational
dropout, an identity in eval mode, and `irnn` (a ReLU Elman cell with another initialisation). For a large
vocabulary the layer-0 table would be large (V rows of G·H): past `TABLE_LIMIT` entries, layer 0's input
share is one product per step instead.

Results equal `RNNLM.forward` to float32 rounding, not bitwise (other kernels, other summation order).
Every other model, and any model not in float32 on the CPU, goes through `ModuleStepper`, the plain
one-step forward. Both start from the model's initial state, or from any state in `RNNLM.forward`'s format
given to `set_state` (sampling runs the prime through the sequence forward and continues from its state).
Callers that need bit-identical results on two runs (the compressor) must use the same stepper class with
the same PyTorch and NumPy builds on the same kind of CPU. (NumPy's BLAS may use several threads for a matrix-vector
product; on this project's machine its results were bitwise the same with 1 and 2 threads.)

Weights are views of the module's parameters, so in-place updates (dynamic evaluation) are seen at once;
`refresh()` must then rebuild the tensors derived from them (the layer-0 table, summed biases).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from rnnlab.models.language_model import RNNLM
from rnnlab.nn.cells import ElmanCell, GRUCell, LSTMCell
from rnnlab.nn.recurrent import Recurrent, State

TABLE_LIMIT = 1 << 22  # entries of layer 0's per-token table (16 MB of float32); above it, a product per step

# --cell -> the equations FusedStepper runs for it (irnn is a ReLU Elman cell with its own initialisation)
EQUATIONS = {"rnn-tanh": "rnn-tanh", "rnn-relu": "rnn-relu", "irnn": "rnn-relu", "lstm": "lstm", "gru": "gru"}


class ModuleStepper:
    """The general path: `module(token, state)` one step at a time."""

    def __init__(self, module: RNNLM) -> None:
        self.module = module
        self.state: State | None = None
        self.x = torch.zeros((1, 1), dtype=torch.long, device=module.head.weight.device)

    def refresh(self) -> None:
        """Nothing is derived from the weights here."""

    @torch.no_grad()
    def step(self, token: int) -> np.ndarray:
        """Feed `token`; the float32 logits (V,) of the next token (on the CPU, whatever the module's device)."""
        self.x[0, 0] = token
        logits, self.state, _ = self.module(self.x, self.state)
        return logits[0, -1].float().cpu().numpy()

    def set_state(self, state: State | None) -> None:
        """Continue from `state`, in `RNNLM.forward`'s format (None: the model's initial state)."""
        self.state = state

    def module_state(self) -> State | None:
        """The carried state in `RNNLM.forward`'s format (None: the initial state)."""
        return self.state


class FusedStepper:
    """The fast path for stacks of `nn.RNN/LSTM/GRU` equations (see the module docstring); CPU, float32, eval
    mode. `supports(module)` says whether a model is one."""

    def __init__(self, module: RNNLM) -> None:
        rnn = module.rnn
        self.module, self.kind, self.L, self.H = module, EQUATIONS[rnn.cell], rnn.num_layers, rnn.hidden_size
        self.w_ih, self.w_hh, self.b_ih, self.b_hh = (
            [_array(p) for p in params] for params in zip(*_layer_parameters(rnn), strict=True)
        )
        self.head_w, self.head_b = _array(module.head.weight), _array(module.head.bias)
        proj = module.proj
        self.proj = (_array(proj.weight), _array(proj.bias)) if proj is not None else None
        self.refresh()
        self.set_state(None)

    @staticmethod
    def supports(module: RNNLM) -> bool:
        """True for a float32 CPU model whose stack runs these equations with no per-layer extra but dropout."""
        rnn, weight = module.rnn, module.head.weight
        if weight.device.type != "cpu" or weight.dtype != torch.float32 or rnn.cell not in EQUATIONS:
            return False
        if rnn.fused:
            return True
        plain = rnn.norms is None and not len(rnn.gates) and not rnn.residual
        return plain and all(_plain_cell(cell) for cell in rnn.layers)

    def refresh(self) -> None:
        """Rebuild what is derived from the weights: the input share of layer 0 for every token, and, except
        for the GRU (whose b_hn sits inside the reset gate's product), b_ih + b_hh folded into one bias."""
        fold = self.kind != "gru"
        self.bias = [b_ih + b_hh if fold else b_ih for b_ih, b_hh in zip(self.b_ih, self.b_hh, strict=True)]
        embed = self.module.embed
        w = self.w_ih[0].T  # one-hot input (embed = 0): row v of the table is column v of W_ih
        self.embedding = _array(embed.weight) if embed is not None else None
        if self.embedding is None:
            self.table = w + self.bias[0]
        elif self.embedding.shape[0] * w.shape[1] <= TABLE_LIMIT:
            self.table = self.embedding @ w + self.bias[0]
        else:
            self.table = None

    def set_state(self, state: State | None) -> None:
        """Continue from `state`, in `RNNLM.forward`'s format: (L, 1, H) tensors, a tuple (h, c) of them for
        the LSTM (None: the model's initial state, learned or zeros). The values are copied."""
        if state is None:
            state = self.module.rnn.initial_state(1)
        if state is None:
            parts = [np.zeros((self.L, self.H), dtype=np.float32)] * 2
        else:
            parts = [p[:, 0].detach().numpy().copy() for p in (state if isinstance(state, tuple) else (state,))]
        self.h = list(parts[0])
        self.c = list(parts[1]) if self.kind == "lstm" else []

    def step(self, token: int) -> np.ndarray:
        """Feed `token`; the float32 logits (V,) of the next token."""
        if self.table is not None:
            x = self.table[token]
        else:
            x = self.w_ih[0] @ self.embedding[token]
            x += self.bias[0]
        for i in range(self.L):
            if i:
                x = self.w_ih[i] @ x
                x += self.bias[i]
            x = self._cell(i, x)
        if self.proj is not None:
            x = self.proj[0] @ x + self.proj[1]
        logits = self.head_w @ x
        logits += self.head_b
        return logits

    def _cell(self, i: int, xw: np.ndarray) -> np.ndarray:
        """Layer i's step from its input share xw (G·H,): the equations of `torch.nn.LSTM/GRU/RNN`."""
        H, h = self.H, self.h[i]
        if self.kind == "lstm":  # gates i, f, g, o (xw includes both biases)
            g = self.w_hh[i] @ h
            g += xw
            s = _sigmoid(g)
            c = s[H : 2 * H] * self.c[i]
            c += s[:H] * np.tanh(g[2 * H : 3 * H])
            self.c[i] = c
            h = s[3 * H :] * np.tanh(c)
        elif self.kind == "gru":  # gates r, z, n; the reset gate multiplies W_hn h + b_hn
            gh = self.w_hh[i] @ h
            gh += self.b_hh[i]
            rz = _sigmoid(xw[: 2 * H] + gh[: 2 * H])
            n = np.tanh(xw[2 * H :] + rz[:H] * gh[2 * H :])
            h = n + rz[H:] * (h - n)  # (1 - z) n + z h
        else:
            pre = self.w_hh[i] @ h
            pre += xw
            h = np.tanh(pre, out=pre) if self.kind == "rnn-tanh" else np.maximum(pre, 0, out=pre)
        self.h[i] = h
        return h

    def module_state(self) -> State:
        """The carried state in `RNNLM.forward`'s format: (L, 1, H), or a tuple (h, c) of them."""
        h = torch.from_numpy(np.stack(self.h)[:, None])
        return (h, torch.from_numpy(np.stack(self.c)[:, None])) if self.kind == "lstm" else h


def _array(p: Tensor) -> np.ndarray:
    """A NumPy view of a parameter: in-place updates of the parameter show through."""
    return p.detach().numpy()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = (1 + tanh(x / 2)) / 2: no overflow for large |x|, a new array."""
    s = x * 0.5
    np.tanh(s, out=s)
    s *= 0.5
    s += 0.5
    return s


def _layer_parameters(rnn: Recurrent) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """(weight_ih, weight_hh, bias_ih, bias_hh) of each layer: the fused module's or each cell's (same layout)."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    if rnn.fused:
        fused: nn.RNNBase = rnn.rnn
        return [tuple(getattr(fused, f"{name}_l{i}") for name in names) for i in range(rnn.num_layers)]
    return [tuple(getattr(cell, name) for name in names) for cell in rnn.layers]


def _plain_cell(cell: nn.Module) -> bool:
    """A cell whose equations are exactly `torch.nn.RNN/LSTM/GRU`'s (an LSTM without peepholes)."""
    if isinstance(cell, LSTMCell):
        return cell.peephole is None
    return isinstance(cell, ElmanCell | GRUCell)


def make_stepper(module: RNNLM) -> FusedStepper | ModuleStepper:
    """The fast stepper for the models it supports (`FusedStepper.supports`), else the general one."""
    return FusedStepper(module) if FusedStepper.supports(module) else ModuleStepper(module)
