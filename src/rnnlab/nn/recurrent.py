"""Run a recurrent cell over time: a stack of L layers, `(N, T, D) -> (N, T, H)` plus carried state.

The cells of the foundation (`rnn-tanh`, `rnn-relu`, `lstm`, `gru`) use PyTorch's fused modules
(cuDNN on GPU, oneDNN/MKL on CPU), whose equations they are exactly; parameter names and gate order are
therefore those of `torch.nn.LSTM/GRU/RNN`, and their weights load directly.

State is a tensor `(L, N, H)` (RNN, GRU) or a tuple `(h, c)` of them (LSTM); `None` means zeros.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

State = torch.Tensor | tuple[torch.Tensor, ...]

_FUSED: dict[str, Callable[..., nn.RNNBase]] = {
    "rnn-tanh": lambda **kw: nn.RNN(nonlinearity="tanh", **kw),
    "rnn-relu": lambda **kw: nn.RNN(nonlinearity="relu", **kw),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}


class Recurrent(nn.Module):
    """L layers of one cell type with dropout between layers; batch-first like `nn.LSTM(batch_first=True)`."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if cell not in _FUSED:
            raise ValueError(f"unknown cell {cell!r}")
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.rnn = _FUSED[cell](
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        if cell == "lstm":
            self._init_forget_bias(1.0)

    def _init_forget_bias(self, value: float) -> None:
        """Forget-gate bias starts at `value` (Gers et al. 2000; Jozefowicz et al. 2015): remember by default.

        PyTorch's gate order is (input, forget, cell, output) and it adds two biases; we set their sum.
        """
        H = self.hidden_size
        with torch.no_grad():
            for layer in range(self.num_layers):
                getattr(self.rnn, f"bias_ih_l{layer}")[H : 2 * H].fill_(value)
                getattr(self.rnn, f"bias_hh_l{layer}")[H : 2 * H].zero_()

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """x: (N, T, D) -> outputs (N, T, H) of the top layer, final state of every layer."""
        return self.rnn(x, state)


def detach_state(state: State) -> State:
    """Cut the graph at the chunk boundary (truncated BPTT) but keep the values."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def state_tensors(state: State | None) -> list[torch.Tensor]:
    """A state as a flat list of tensors (for saving); [] for None."""
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]


def state_from_tensors(tensors: list[torch.Tensor]) -> State | None:
    """Inverse of `state_tensors`."""
    if not tensors:
        return None
    return tensors[0] if len(tensors) == 1 else tuple(tensors)
