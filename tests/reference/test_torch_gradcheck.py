"""The PyTorch cells pass `torch.autograd.gradcheck` in float64, for inputs, initial state and every weight."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from rnnlab.nn.recurrent import Recurrent


def torch_cell_gradcheck(cell: str, N: int = 2, T: int = 4, D: int = 3, H: int = 4) -> bool:
    """gradcheck of `Recurrent(cell)` with its weights passed as inputs, so their gradients are checked too."""
    torch.manual_seed(0)
    layer = Recurrent(cell, D, H).double()
    names = [name for name, _ in layer.named_parameters()]
    weights = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    x = torch.randn(N, T, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(1, N, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(1, N, H, dtype=torch.float64, requires_grad=True)

    def run(x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = (h0, c0) if cell == "lstm" else h0
        out, final = functional_call(layer, dict(zip(names, weights, strict=True)), (x, state))
        return (out, *final) if cell == "lstm" else (out, final)

    return torch.autograd.gradcheck(run, (x, h0, c0, *weights), eps=1e-6, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("cell", ["rnn-tanh", "rnn-relu", "lstm", "gru"])
def test_torch_cells_pass_autograd_gradcheck(cell: str):
    assert torch_cell_gradcheck(cell)
