"""The mLSTM block: its chunked, stabilised recurrence against the paper's equations written out step by step in
float64 without a stabiliser, chunks with a carried state against one pass, and the state's bounds."""

from __future__ import annotations

import pytest
import torch

from rnnlab.nn.mlstm import CHUNK, MLSTMCell, mlstm_chunk
from rnnlab.nn.recurrent import Recurrent


def naive(q, k, v, i_pre, f_pre, C, n):
    """The equations as printed: C_t = f_t C + i_t k vᵀ, n_t = f_t n + i_t k, h = Cᵀq / max(|nᵀq|, 1), in true scale."""
    outputs = []
    for t in range(q.shape[2]):
        f = torch.sigmoid(f_pre[..., t])[..., None]
        i = torch.exp(i_pre[..., t])[..., None]
        C = f[..., None] * C + i[..., None] * k[..., t, :, None] * v[..., t, None, :]
        n = f * n + i * k[..., t, :]
        qt = q[..., t, :]
        num = (qt[..., :, None] * C).sum(-2)
        den = (qt * n).sum(-1, keepdim=True).abs().clamp(min=1.0)
        outputs.append(num / den)
    return torch.stack(outputs, 2), C, n


def true_scale(state):
    """(C, n) as the equations have them: the stored state times e^m."""
    C, n, m = state
    return C * torch.exp(m)[..., None, None], n * torch.exp(m)[..., None]


def random_inputs(N=2, heads=3, T=9, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(N, heads, T, d, generator=g, dtype=torch.float64) for _ in range(3))
    i_pre = 2 * torch.randn(N, heads, T, generator=g, dtype=torch.float64)
    f_pre = 2 * torch.randn(N, heads, T, generator=g, dtype=torch.float64)
    return q, k, v, i_pre, f_pre


def test_chunk_equals_the_equations_step_by_step():
    q, k, v, i_pre, f_pre = random_inputs()
    zeros = (torch.zeros(2, 3, 4, 4, dtype=torch.float64), torch.zeros(2, 3, 4, dtype=torch.float64))
    h, (C, n, m) = mlstm_chunk(q, k, v, i_pre, f_pre, (*zeros, torch.zeros(2, 3, dtype=torch.float64)))
    h_ref, C_ref, n_ref = naive(q, k, v, i_pre, f_pre, *zeros)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(true_scale((C, n, m)), (C_ref, n_ref))


def test_chunks_with_a_carried_state_equal_one_pass_and_one_step_at_a_time():
    q, k, v, i_pre, f_pre = random_inputs(T=12)
    start = (torch.zeros(2, 3, 4, 4, dtype=torch.float64), torch.zeros(2, 3, 4, dtype=torch.float64))
    start = (*start, torch.zeros(2, 3, dtype=torch.float64))
    whole, final = mlstm_chunk(q, k, v, i_pre, f_pre, start)
    for size in (1, 5):
        state, parts = start, []
        for s in range(0, 12, size):
            cut = slice(s, s + size)
            h, state = mlstm_chunk(q[:, :, cut], k[:, :, cut], v[:, :, cut], i_pre[..., cut], f_pre[..., cut], state)
            parts.append(h)
        torch.testing.assert_close(torch.cat(parts, 2), whole)
        for a, b in zip(true_scale(state), true_scale(final), strict=True):
            torch.testing.assert_close(a, b)


def test_large_input_gates_stay_finite_and_exact_in_float32():
    """ĩ near 100 overflows e^ĩ in float32 (above e^88.7); stored divided by e^m, the float32 state stays finite and the output equals
    the float64 equations."""
    q, k, v, i_pre, f_pre = random_inputs(T=20)
    i_pre = i_pre + 100
    zeros = (torch.zeros(2, 3, 4, 4, dtype=torch.float64), torch.zeros(2, 3, 4, dtype=torch.float64))
    assert not torch.isfinite(torch.exp(i_pre.float())).all()
    state = tuple(s.float() for s in (*zeros, torch.zeros(2, 3)))
    h, (C, n, m) = mlstm_chunk(q.float(), k.float(), v.float(), i_pre.float(), f_pre.float(), state)
    assert all(torch.isfinite(t).all() for t in (h, C, n, m))
    torch.testing.assert_close(h.double(), naive(q, k, v, i_pre, f_pre, *zeros)[0], rtol=1e-3, atol=1e-3)


def test_block_runs_a_sequence_in_chunks_as_one_pass():
    torch.manual_seed(0)
    cell = MLSTMCell(5, 8, heads=2).double()
    with torch.no_grad():
        cell.gates.weight.normal_()  # gates that depend on the input
    x = torch.randn(3, 2 * CHUNK + 7, 5, dtype=torch.float64)
    whole, final = cell(x)
    first, state = cell(x[:, :50])
    second, state = cell(x[:, 50:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    for a, b in zip(state, final, strict=True):
        torch.testing.assert_close(a, b)


def test_state_is_constant_size_and_stacks_across_layers():
    stack = Recurrent("mlstm", 5, 8, num_layers=3)
    _, state = stack(torch.randn(2, 11, 5))
    _, longer = stack(torch.randn(2, 40, 5))
    assert [s.shape for s in state] == [s.shape for s in longer]
    assert [tuple(s.shape[:2]) for s in state] == [(3, 2)] * 4


def test_heads_divide_the_inner_width():
    """Four heads by default, fewer where 2H is not a multiple of 4; an explicit count that does not divide is an error."""
    assert MLSTMCell(4, 6).heads == 4 and MLSTMCell(4, 5).heads == 2
    with pytest.raises(ValueError, match="multiple of heads"):
        MLSTMCell(4, 5, heads=3)
