"""Run a recurrent cell over time: a stack of L layers, `(N, T, D) -> (N, T, H)` plus carried state.

One parameter layout: one `rnnlab.nn.cells` cell per layer owns that layer's weights (`layers.{i}.weight_ih`,
`weight_hh`, `bias_ih`, `bias_hh`, gate order as `torch.nn.LSTM/GRU`), and two paths compute the same function:
- fused: for a cell whose equations PyTorch has (`Cell.torch_mode`: Elman, LSTM, GRU) in a stack with no per-layer
  extra, PyTorch's op for all L layers at once (oneDNN or ATen's loop on the CPU, cuDNN on a GPU), handed the
  cells' weights as `torch.nn.LSTM` hands it its own (`nn.cells.torch_layers`);
- layered: each cell in turn (its own fused op or its step loop), with dropout (standard or variational/locked),
  layer normalisation, residual or highway connections between layers.
Tests check that the two paths agree on the same weights, and with `torch.nn.RNN/LSTM/GRU`. Weights saved when
the fused path was a `torch.nn.LSTM` module (`rnn.weight_ih_l0`, rnnlab 0.1.0) load through `upgrade_state_dict`.

State is a tensor `(L, N, H)`, or a tuple of them where the cell's state has several parts (`(h, c)` for the
LSTM; the registration's `state`); `None` means the initial state (zeros, or learned with `learn_init`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.backends.cudnn.rnn import get_cudnn_mode

from rnnlab.nn import registry
from rnnlab.nn.cells import make_cell, torch_layers

State = Tensor | tuple[Tensor, ...]


class LockedDropout(nn.Module):
    """Variational dropout (Gal & Ghahramani 2016): one mask per sequence, shared by all time steps."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """x (N, T, F): drop the same features at every step of a sequence."""
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask


class Recurrent(nn.Module):
    """L layers of one cell type, batch-first like `nn.LSTM(batch_first=True)`; returns (outputs, state).
    `fused=False` keeps a stack that could run PyTorch's op for all its layers at once on its cells, one by one."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        *,
        variational: bool = False,
        residual: bool = False,
        highway: bool = False,
        layer_norm: bool = False,
        learn_init: bool = False,
        peephole: bool = False,
        factors: int = 0,
        window: int = 64,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.cell, self.spec, self.hidden_size, self.num_layers = cell, registry.get(cell), hidden_size, num_layers
        self.input_size, self.residual, self.highway = input_size, residual, highway
        # plain: each layer is nothing but its cell, the one below feeding the one above (dropout aside: off in eval)
        self.plain = not (residual or highway or layer_norm or peephole)
        # all layers in one call of PyTorch's op; `step_loops` turns it off, as it does the cells' own fused ops
        self.fused_op = fused and self.spec.torch_mode is not None and self.plain and not variational
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(
            make_cell(cell, d, hidden_size, peephole=peephole, factors=factors, window=window) for d in sizes
        )
        self.drop = LockedDropout(dropout) if variational else nn.Dropout(dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in sizes) if layer_norm else None
        # Highway gates exist only where a layer's input and output sizes match (the carry needs it).
        self.gates = nn.ModuleDict(
            {str(i): nn.Linear(d, hidden_size) for i, d in enumerate(sizes) if highway and d == hidden_size}
        )
        self.skip = [d == hidden_size for d in sizes]
        self._register_load_state_dict_pre_hook(_upgrade_on_load)
        if learn_init:
            shape = (len(self.spec.state), num_layers, 1, hidden_size)
            self.initial = nn.Parameter(torch.zeros(shape))
        else:
            self.initial = None

    def layer_weights(self) -> list[tuple[Tensor, Tensor, Tensor, Tensor]] | None:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of each layer's cell, where the stack in eval mode is nothing but
        its cell's `equations` on them: what the fused path, the NumPy stepper and the gradient probe run. None for
        cells without `equations` and for stacks with per-layer extras."""
        if self.spec.equations is None or not self.plain:
            return None
        return [cell.gate_weights() for cell in self.layers]

    def flatten_parameters(self) -> None:
        """On CUDA, lay the fused stack's weights out as views of one buffer in cuDNN's order, as
        `torch.nn.RNNBase.flatten_parameters` does its own; otherwise cuDNN copies them into one at every call (and
        warns). Nothing to do on the CPU, whose kernels take the weights where they are, for a stack that runs layer
        by layer, or for weights cuDNN cannot take. `.to()`, `.cuda()` and the like call it (`_apply`)."""
        weights = self._flat_weights() if self.fused_op else []
        dtypes = {w.dtype for w in weights}
        usable = all(w.is_cuda and torch.backends.cudnn.is_acceptable(w) for w in weights) and len(dtypes) == 1
        if not weights or not usable or len({w.data_ptr() for w in weights}) < len(weights):
            return
        with torch.cuda.device_of(weights[0]), torch.no_grad():
            if torch._use_cudnn_rnn_flatten_weight():
                mode = get_cudnn_mode(self.spec.torch_mode)
                torch._cudnn_rnn_flatten_weight(
                    weights, 4, self.input_size, mode, self.hidden_size, 0, self.num_layers, True, False
                )

    def _flat_weights(self) -> list[Tensor]:
        """The weights as PyTorch's op takes them: [W_ih, W_hh, b_ih, b_hh] of layer 0, then of layer 1, ..."""
        return [w for cell in self.layers for w in cell.gate_weights()]

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Recurrent:
        """`nn.Module._apply`, behind every move or cast, then `flatten_parameters`, as `torch.nn.RNNBase` does."""
        module = super()._apply(fn, recurse)
        self.flatten_parameters()
        return module

    def initial_state(self, N: int) -> State | None:
        """The learned initial state expanded to N streams, or None (zeros) without `learn_init`."""
        if self.initial is None:
            return None
        parts = tuple(p.expand(-1, N, -1).contiguous() for p in self.initial)
        return parts if len(parts) > 1 else parts[0]

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (N, T, D) -> outputs (N, T, H) of the top layer, final state of every layer."""
        if state is None:
            state = self.initial_state(x.shape[0])
        if self.fused_op:
            if state is None:  # zeros, in the state's layout
                zeros = x.new_zeros(self.num_layers, x.shape[0], self.hidden_size)
                state = tuple(zeros for _ in self.spec.state) if len(self.spec.state) > 1 else zeros
            return torch_layers(self.spec.torch_mode, x, state, self._flat_weights(), self.drop.p, self.training)
        per_layer = _split_layers(state, self.num_layers)
        final = []
        for i, cell in enumerate(self.layers):
            inputs = self.drop(x) if i > 0 else x  # dropout between layers, as in nn.LSTM
            out, layer_state = cell(inputs, per_layer[i])
            if self.norms is not None:
                out = self.norms[i](out)
            if str(i) in self.gates:  # highway: y = g ⊙ H(x) + (1 − g) ⊙ x
                g = torch.sigmoid(self.gates[str(i)](inputs))
                out = g * out + (1 - g) * inputs
            elif self.residual and self.skip[i]:  # residual: y = H(x) + x
                out = out + inputs
            final.append(layer_state)
            x = out
        return x, _stack_layers(final)


# A weight of the `torch.nn.RNN/LSTM/GRU` module, named `rnn`, that held a fused stack's weights up to rnnlab 0.1.0.
_FUSED_NAME = re.compile(r"(^|\.)rnn\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")


def upgrade_state_dict(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """`tensors` with the weights of a fused stack saved by rnnlab 0.1.0 under their names today: `<prefix>rnn.
    weight_ih_l{k}` (an `nn.LSTM` inside the `Recurrent` at `<prefix>`) becomes `<prefix>layers.{k}.weight_ih`, and so
    on for `weight_hh`, `bias_ih`, `bias_hh` (the same tensors, the same gate order). Every other name is kept, so
    weights already in today's layout pass unchanged. For checks of names and shapes before `load_state_dict`, which
    itself upgrades (a pre-hook of `Recurrent`)."""
    return {_upgrade_name(name): tensor for name, tensor in tensors.items()}


def _upgrade_name(name: str) -> str:
    return _FUSED_NAME.sub(r"\1layers.\3.\2", name)


def _upgrade_on_load(state_dict: dict[str, Tensor], prefix: str, *_: Any) -> None:
    """`Recurrent`'s load_state_dict pre-hook: `upgrade_state_dict` on the names under its prefix, in place."""
    for name in [k for k in state_dict if k.startswith(prefix)]:
        new = prefix + _upgrade_name(name[len(prefix) :])
        if new != name:
            state_dict[new] = state_dict.pop(name)


def _split_layers(state: State | None, L: int) -> list:
    """(L, N, H) or ((L, N, H), (L, N, H)) -> per-layer (N, H) or ((N, H), (N, H)); None -> [None] * L."""
    if state is None:
        return [None] * L
    if isinstance(state, tuple):
        return list(zip(*(s.unbind(0) for s in state), strict=True))
    return list(state.unbind(0))


def _stack_layers(states: list) -> State:
    if isinstance(states[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*states, strict=True))
    return torch.stack(states)


def reset_rows(state: State, keep: Tensor, initial: State | None = None) -> State:
    """`state` with the streams where `keep` (N,) is False set to `initial` (zeros when None).

    Every state tensor has the N streams on dim 1 ((L, N, H) and the like), so one mask serves all cells.
    Gradients reach a learned `initial` through the rows that take it.
    """
    parts, starts = state_tensors(state), state_tensors(initial)
    out = []
    for i, t in enumerate(parts):
        mask = keep.view(1, -1, *([1] * (t.dim() - 2))).to(t.dtype)
        fresh = starts[i].to(t.dtype) if starts else torch.zeros_like(t)
        out.append(t * mask + fresh * (1 - mask))
    return state_from_tensors(out)  # type: ignore[return-value]


def detach_state(state: State) -> State:
    """Cut the graph at the chunk boundary (truncated BPTT) but keep the values."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def state_tensors(state: State | None) -> list[Tensor]:
    """A state as a flat list of tensors (for saving); [] for None."""
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]


def state_from_tensors(tensors: list[Tensor]) -> State | None:
    """Inverse of `state_tensors`."""
    if not tensors:
        return None
    return tensors[0] if len(tensors) == 1 else tuple(tensors)
