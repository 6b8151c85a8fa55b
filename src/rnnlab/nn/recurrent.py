"""Run a recurrent cell over time: a stack of L layers, `(N, T, D) -> (N, T, H)` plus carried state.

Two paths compute the same function:
- fused: `torch.nn.RNN/LSTM/GRU` (cuDNN on GPU, oneDNN/MKL on CPU) for the cells registered with the module
  whose equations they are (`torch_module`, nn/registry.py) when no per-layer extra is asked for;
- layered: one `rnnlab.nn.cells` cell per layer, with dropout (standard or variational/locked),
  layer normalisation, residual or highway connections between layers.
Tests check that the two paths agree on the same weights.

State is a tensor `(L, N, H)`, or a tuple of them where the cell's state has several parts (`(h, c)` for the
LSTM; the registration's `state`); `None` means the initial state (zeros, or learned with `learn_init`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.nn import registry
from rnnlab.nn.cells import make_cell

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
    """L layers of one cell type, batch-first like `nn.LSTM(batch_first=True)`; returns (outputs, state)."""

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
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.cell, self.spec, self.hidden_size, self.num_layers = cell, registry.get(cell), hidden_size, num_layers
        self.residual, self.highway = residual, highway
        # plain: each layer is nothing but its cell, the one below feeding the one above (dropout aside: off in eval)
        self.plain = not (residual or highway or layer_norm or peephole)
        self.fused = fused and self.spec.torch_module is not None and self.plain and not variational
        if self.fused:
            self.rnn = self.spec.torch_module(
                input_size=input_size,
                hidden_size=hidden_size,
                num_layers=num_layers,
                dropout=dropout if num_layers > 1 else 0.0,
                batch_first=True,
            )
            self.spec.cls.init_fused(self.rnn)
        else:
            sizes = [input_size] + [hidden_size] * (num_layers - 1)
            self.layers = nn.ModuleList(
                make_cell(cell, d, hidden_size, peephole=peephole, factors=factors) for d in sizes
            )
            self.drop = LockedDropout(dropout) if variational else nn.Dropout(dropout)
            self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in sizes) if layer_norm else None
            # Highway gates exist only where a layer's input and output sizes match (the carry needs it).
            self.gates = nn.ModuleDict(
                {str(i): nn.Linear(d, hidden_size) for i, d in enumerate(sizes) if highway and d == hidden_size}
            )
            self.skip = [d == hidden_size for d in sizes]
        if learn_init:
            shape = (len(self.spec.state), num_layers, 1, hidden_size)
            self.initial = nn.Parameter(torch.zeros(shape))
        else:
            self.initial = None

    def layer_weights(self) -> list[tuple[Tensor, Tensor, Tensor, Tensor]] | None:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of each layer, the PyTorch module's or each cell's (the same
        layout), where the stack in eval mode is nothing but its cell's `equations` on them: what the NumPy stepper
        and the gradient probe run. None for cells without `equations` and for stacks with per-layer extras."""
        if self.spec.equations is None or not self.plain:
            return None
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        if self.fused:
            return [tuple(getattr(self.rnn, f"{name}_l{i}") for name in names) for i in range(self.num_layers)]
        return [tuple(getattr(cell, name) for name in names) for cell in self.layers]

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
        if self.fused:
            return self.rnn(x, state)
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
