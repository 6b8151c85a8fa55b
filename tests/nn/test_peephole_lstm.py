"""The peephole LSTM's one-node forward and hand-written BPTT (nn/peephole_lstm.py) against the same equations
run step by step under autograd, in float64: values, every gradient, whichever outputs the loss uses."""

from __future__ import annotations

import pytest
import torch

from rnnlab.nn.cells import make_cell
from rnnlab.nn.peephole_lstm import peephole_lstm

D, H = 3, 5


def step_by_step(x, weight_ih, bias, weight_hh, p, h, c):
    """The peephole LSTM's equations, one step at a time, differentiated by autograd."""
    outputs = []
    for x_t in x.unbind(1):
        i, f, g, o = (x_t @ weight_ih.T + bias + h @ weight_hh.T).chunk(4, 1)
        i, f = torch.sigmoid(i + p[0] * c), torch.sigmoid(f + p[1] * c)
        c = f * c + i * torch.tanh(g)
        h = torch.sigmoid(o + p[2] * c) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, 1), h, c


def random_inputs(N: int, T: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(N, T, D), (4 * H, D), (4 * H,), (4 * H, H), (3, H), (N, H), (N, H)]
    return [torch.randn(*s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]


@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("T", [1, 2, 9])
@pytest.mark.parametrize("used", [(0, 1, 2), (0,), (1,), (2,)])
def test_values_and_every_gradient_equal_autograd_through_the_step_loop(N, T, used):
    """`used`: which of (outputs, h_T, c_T) the loss depends on (the others get no gradient in backward)."""
    inputs = random_inputs(N, T)
    fast, slow = peephole_lstm(*inputs), step_by_step(*inputs)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    weights = [torch.randn_like(y) for y in slow]
    grads = [
        torch.autograd.grad(sum((ys[k] * weights[k]).sum() for k in used), inputs, retain_graph=True)
        for ys in (fast, slow)
    ]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_a_second_backward_over_the_same_graph_gives_the_same_gradients():
    """Backward overwrites the saved activations with their gradients; with retain_graph a second backward must
    recompute them, not read gradients as activations."""
    inputs = random_inputs(3, 7)
    out, h, c = peephole_lstm(*inputs)
    loss = out.sum() + (h * c).sum()
    first = torch.autograd.grad(loss, inputs, retain_graph=True)
    second = torch.autograd.grad(loss, inputs)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("T", [1, 6])
def test_gradcheck(T):
    assert torch.autograd.gradcheck(peephole_lstm, random_inputs(2, T, seed=T))


def test_runs_in_float32_under_bf16_autocast():
    """Under mixed precision the cell state is not kept in bf16: the node computes in float32."""
    torch.manual_seed(0)
    cell = make_cell("lstm", 16, 16, peephole=True)
    with torch.no_grad():
        cell.peephole.normal_(0, 0.5)
    x = torch.randn(2, 50, 16, requires_grad=True)
    exact, _ = cell(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, (h, c) = cell(x)
    assert mixed.dtype == h.dtype == c.dtype == torch.float32
    assert (mixed - exact).abs().max() < 0.02
    mixed.sum().backward()
    assert x.grad is not None and cell.peephole.grad.dtype == torch.float32
