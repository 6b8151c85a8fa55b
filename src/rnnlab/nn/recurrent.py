"""Run a recurrent cell over time: a stack of L layers, `(N, T, D) -> (N, T, H)` plus carried state.

Two paths compute the same function:
- fused: `torch.nn.RNN/LSTM/GRU` (cuDNN on GPU, oneDNN/MKL on CPU) for `rnn-tanh`, `rnn-relu`, `lstm`
  and `gru` when no per-layer extra is asked for; their equations are exactly those cells';
- layered: one `rnnlab.nn.cells` cell per layer, with dropout (standard or variational/locked),
  layer normalisation, residual or highway connections between layers.
Tests check that the two paths agree on the same weights.

State is a tensor `(L, N, H)`, or a tuple `(h, c)` of them for the LSTM; `None` means the initial
state (zeros, or learned with `learn_init`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rnnlab.nn.cells import make_cell

State = Tensor | tuple[Tensor, ...]

_FUSED: dict[str, Callable[..., nn.RNNBase]] = {
    "rnn-tanh": lambda **kw: nn.RNN(nonlinearity="tanh", **kw),
    "rnn-relu": lambda **kw: nn.RNN(nonlinearity="relu", **kw),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}


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
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.residual, self.highway, self.is_lstm = residual, highway, cell == "lstm"
        extras = variational or residual or highway or layer_norm or peephole
        self.fused = fused and cell in _FUSED and not extras
        if self.fused:
            self.rnn = _FUSED[cell](
                input_size=input_size,
                hidden_size=hidden_size,
                num_layers=num_layers,
                dropout=dropout if num_layers > 1 else 0.0,
                batch_first=True,
            )
            if self.is_lstm:
                self._init_forget_bias(1.0)
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
            shape = (2 if self.is_lstm else 1, num_layers, 1, hidden_size)
            self.initial = nn.Parameter(torch.zeros(shape))
        else:
            self.initial = None

    def _init_forget_bias(self, value: float) -> None:
        """Forget-gate bias starts at `value` (Gers et al. 2000; Jozefowicz et al. 2015): remember by default.

        PyTorch's gate order is (input, forget, cell, output) and it adds two biases; we set their sum.
        """
        H = self.hidden_size
        with torch.no_grad():
            for layer in range(self.num_layers):
                getattr(self.rnn, f"bias_ih_l{layer}")[H : 2 * H].fill_(value)
                getattr(self.rnn, f"bias_hh_l{layer}")[H : 2 * H].zero_()

    def initial_state(self, N: int) -> State | None:
        """The learned initial state expanded to N streams, or None (zeros) without `learn_init`."""
        if self.initial is None:
            return None
        parts = tuple(p.expand(-1, N, -1).contiguous() for p in self.initial)
        return parts if self.is_lstm else parts[0]

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
