"""The delay-tap (NARX) cell's own property: its output at step t depends on the inputs x_{t-k..t} and on no older
one, in a sequence, across a carried state and in a stack (the registry-wide suite in test_cells.py checks its
gradients, its step loop against its sequence op, its state layout and that it learns)."""

from __future__ import annotations

import pytest
import torch

from rnnlab.nn import registry
from rnnlab.nn.cells import NARX_DELAYS, NARXCell
from rnnlab.nn.recurrent import Recurrent

N, T, D, H, K = 2, 12, 3, 5, 3


def cell_with(delays: int = K) -> NARXCell:
    torch.manual_seed(0)
    cell = NARXCell(D, H, delays=delays).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0, 0.5)
    return cell


@pytest.mark.parametrize("fused", [True, False])
def test_the_output_at_t_depends_on_the_last_k_inputs_only(fused: bool) -> None:
    """d h_t / d x_s is non-zero exactly for t - k <= s <= t, on the sequence op and on the step loop."""
    cell = cell_with()
    cell.fused_op = fused
    x = torch.randn(N, T, D, dtype=torch.float64, requires_grad=True)
    out, _ = cell(x)
    for t in range(T):
        (grad,) = torch.autograd.grad(out[:, t].sum(), x, retain_graph=True)
        reaches = grad.abs().sum((0, 2)) > 0
        assert reaches.tolist() == [t - K <= s <= t for s in range(T)], t


def test_changing_an_older_input_leaves_the_output_exactly_unchanged() -> None:
    """Perturb x_s: h_t moves for s <= t <= s + k, and for every other t stays bit for bit the same."""
    cell = cell_with()
    x = torch.randn(N, T, D, dtype=torch.float64)
    with torch.no_grad():
        out, _ = cell(x)
        for s in range(T):
            y = x.clone()
            y[:, s] += 1.0
            moved = (cell(y)[0] != out).any(-1).any(0)
            assert moved.tolist() == [s <= t <= s + K for t in range(T)], s


def test_the_window_spans_a_carried_state() -> None:
    """Read in two chunks, the second chunk's first k outputs still see the first chunk's last inputs, and the
    result is the one-piece run's."""
    cell = cell_with()
    x = torch.randn(N, T, D, dtype=torch.float64)
    with torch.no_grad():
        whole, final = cell(x)
        head, state = cell(x[:, :5])
        tail, carried = cell(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([head, tail], 1), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(carried, final, rtol=1e-12, atol=1e-12)


def test_a_stack_of_two_sees_two_windows_and_stacks_its_state_whatever_the_input_size() -> None:
    """Layer 2 reads layer 1's outputs h_{t-k..t}, so the stack's output reaches back 2k steps; the state is (L, N,
    k·H) with D != H (the delay line is kept in projected form, so its width does not depend on the input size)."""
    torch.manual_seed(0)
    stack = Recurrent("narx", D, H, num_layers=2).double()
    long = 3 * NARX_DELAYS
    x = torch.randn(N, long, D, dtype=torch.float64, requires_grad=True)
    out, state = stack(x)
    assert state.shape == (2, N, NARX_DELAYS * H)
    (grad,) = torch.autograd.grad(out[:, -1].sum(), x)
    reaches = grad.abs().sum((0, 2)) > 0
    assert reaches.tolist() == [s >= long - 1 - 2 * NARX_DELAYS for s in range(long)]


def test_it_is_registered_with_a_state_that_is_not_per_unit() -> None:
    spec = registry.get("narx")
    assert spec.cls is NARXCell and spec.state == ("taps",) and not spec.per_unit
    with pytest.raises(ValueError, match="delays >= 1"):
        NARXCell(D, H, delays=0)
