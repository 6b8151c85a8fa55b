"""The parallel-scan cells (minGRU, minLSTM, ssm): the scans against the sequential recurrence, the cells
against their published equations, their own step functions, chunked processing, autograd; they learn,
and train/resume through the real trainer bit for bit."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import rnnlab
from rnnlab.config import ModelConfig
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import RNNLM, LanguageModel
from rnnlab.nn import registry, scan
from rnnlab.nn.cells import make_cell
from rnnlab.nn.recurrent import Recurrent
from rnnlab.nn.scan import SSMCell, gated_scan, linear_scan, recurrence

SCAN_CELLS = [spec.name for spec in registry.cells() if spec.cls.__module__ == scan.__name__]  # mingru, minlstm, ssm
D, H, N = 3, 4, 2


def sequential(a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """h_t = a_t h_{t-1} + b_t, one step at a time."""
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("T", [1, 2, 3, 17, 128, 2000])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("blocked", [False, True])
def test_recurrence_equals_the_sequential_recurrence(T, with_h0, blocked):
    """Both ways of running h_t = a_t h_{t-1} + b_t (the CPU's time loop, the GPU's blocked parallel form), and
    the adjoint recurrence Q_t = a_{t+1} Q_{t+1} + b_t that backward runs, against the plain loop."""
    torch.manual_seed(T)
    a = torch.sigmoid(torch.randn(N, T, H, dtype=torch.float64) + 2)  # mostly near 1: long memory
    b = torch.randn(N, T, H, dtype=torch.float64)
    h0 = torch.randn(N, H, dtype=torch.float64) if with_h0 else None
    start = h0 if with_h0 else torch.zeros(N, H, dtype=torch.float64)
    torch.testing.assert_close(recurrence(a, b, h0, blocked=blocked), sequential(a, b, start), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(linear_scan(a, b, h0, blocked=blocked), sequential(a, b, start), rtol=1e-10, atol=1e-10)
    a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], 1)
    adjoint = sequential(a_next.flip(1), b.flip(1), torch.zeros(N, H, dtype=torch.float64)).flip(1)
    torch.testing.assert_close(recurrence(a, b, adjoint=True, blocked=blocked), adjoint, rtol=1e-10, atol=1e-10)


def test_recurrence_in_place_writes_over_b():
    a, b = torch.rand(N, 9, H, dtype=torch.float64), torch.randn(N, 9, H, dtype=torch.float64)
    expected = sequential(a, b, torch.zeros(N, H, dtype=torch.float64))
    h = recurrence(a, b, in_place=True)
    assert h.data_ptr() == b.data_ptr()
    torch.testing.assert_close(h, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("blocked", [False, True])
def test_scan_gradcheck(with_h0, blocked):
    """The written-out backward passes of `linear_scan` and `gated_scan` against finite differences."""
    torch.manual_seed(0)
    a = torch.randn(N, 7, H, 2, dtype=torch.float64).sigmoid().requires_grad_()
    b = torch.randn(N, 7, H, 2, dtype=torch.float64, requires_grad=True)
    cv = (torch.randn(N, 7, 2 * H, dtype=torch.float64) * 2).requires_grad_()  # v on both sides of g's kink
    h0 = torch.randn(N, H, 2, dtype=torch.float64, requires_grad=True) if with_h0 else None
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, blocked=blocked), (a, b, h0))
    assert torch.autograd.gradcheck(gated_scan, (cv, None if h0 is None else h0[..., 0]))


def test_gated_scan_equals_its_equations_under_autograd():
    """Value and gradient of the one-node `gated_scan` against the same recurrence written with autograd ops
    (Feng et al.'s g as its two branches), at a length where a wrong shift in the backward would show."""
    torch.manual_seed(3)
    cv = (torch.randn(N, 300, 2 * H, dtype=torch.float64) * 3).requires_grad_()
    h0 = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    c, v = cv.chunk(2, -1)
    z = torch.sigmoid(c)
    expected = sequential(1 - z, z * torch.where(v >= 0, v + 0.5, torch.sigmoid(v)), h0)
    ours = gated_scan(cv, h0)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(ours)
    for mine, theirs in zip(
        torch.autograd.grad(ours, (cv, h0), w), torch.autograd.grad(expected, (cv, h0), w), strict=True
    ):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-10)


def test_g_is_the_papers_two_branches():
    x = torch.linspace(-30, 30, 10001, dtype=torch.float64)
    assert torch.equal(scan.g(x), torch.where(x >= 0, x + 0.5, torch.sigmoid(x)))


@pytest.mark.parametrize("name", SCAN_CELLS)
def test_one_node_scan_equals_the_step_loop_in_value_and_gradient(name):
    """`fused_op = False` (what Hessian-free sets: twice differentiable, vmappable) runs `step` through time;
    it gives the scan's outputs, final state and gradients."""
    cell = random_cell(name)
    x = torch.randn(N, 11, D, dtype=torch.float64, requires_grad=True)
    state = random_state(cell, name)
    results = []
    for fused in (True, False):
        cell.fused_op = fused
        out, final = cell(x, state)
        finals = final if name == "ssm" else (final,)
        loss = (out * torch.arange(11, dtype=torch.float64)[:, None]).sum() + sum(f.sum() for f in finals)
        results.append((out, *finals, *torch.autograd.grad(loss, (x, *cell.parameters()))))
    for ours, loop in zip(*results, strict=True):
        torch.testing.assert_close(ours, loop, rtol=1e-10, atol=1e-10)


def random_cell(name: str, input_size: int = D):
    torch.manual_seed(len(name))
    cell = (SSMCell(input_size, H, expand=1, d_state=3) if name == "ssm" else make_cell(name, input_size, H)).double()
    with torch.no_grad():
        for param in cell.parameters():
            param.add_(torch.randn_like(param) * 0.3)  # away from the initialisation, so every term matters
    return cell


def random_state(cell, name: str):
    state = cell.initial_state(N, torch.device("cpu"), torch.float64)
    return tuple(torch.randn_like(s) for s in state) if name == "ssm" else torch.rand_like(state)


def sig(x):
    return 1 / (1 + np.exp(-x))


def g(x):
    return np.where(x >= 0, x + 0.5, sig(x))


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_min_cells_match_the_papers_equations(name):
    """Feng et al. (2024), written independently in NumPy (sequential form)."""
    cell = random_cell(name)
    x = torch.randn(N, 9, D, dtype=torch.float64)
    h = np.random.default_rng(0).random((N, H))
    out, _ = cell(x, torch.from_numpy(h))
    W, bias = cell.weight_ih.detach().numpy(), cell.bias_ih.detach().numpy()
    for t in range(x.shape[1]):
        k = x[:, t].numpy() @ W.T + bias
        if name == "mingru":
            z = sig(k[:, :H])
            h = (1 - z) * h + z * g(k[:, H:])
        else:
            i, f = sig(k[:, :H]), sig(k[:, H : 2 * H])
            h = f / (f + i) * h + i / (f + i) * g(k[:, 2 * H :])
        np.testing.assert_allclose(out[:, t].detach().numpy(), h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", SCAN_CELLS)
@pytest.mark.parametrize("with_state", [False, True])
def test_parallel_forward_equals_forward_step(name, with_state):
    """Generation (sequential `forward_step`) gives what training computed (parallel `forward`)."""
    cell = random_cell(name)
    x = torch.randn(N, 13, D, dtype=torch.float64)
    state = random_state(cell, name) if with_state else None
    out, final = cell(x, state)
    for t in range(x.shape[1]):
        h, state = cell.forward_step(x[:, t], state)
        torch.testing.assert_close(h, out[:, t], rtol=1e-10, atol=1e-10)
    for u, v in zip(final if name == "ssm" else (final,), state if name == "ssm" else (state,), strict=True):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", SCAN_CELLS)
def test_chunks_with_carried_state_equal_one_pass(name):
    """Stateful truncated BPTT: chunk k's final state starts chunk k+1, and the outputs are those of one pass."""
    torch.manual_seed(1)
    stack = Recurrent(name, D, H, num_layers=2).double()
    x = torch.randn(N, 40, D, dtype=torch.float64)
    whole, whole_state = stack(x)
    outs, state = [], None
    for start, stop in [(0, 1), (1, 3), (3, 20), (20, 40)]:  # chunks shorter and longer than the conv kernel
        out, state = stack(x[:, start:stop], state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), whole, rtol=1e-10, atol=1e-10)
    for u, v in zip(*((s if isinstance(s, tuple) else (s,)) for s in (state, whole_state)), strict=True):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-10)


def test_ssm_state_is_constant_size_and_stacks_across_layers():
    stack = Recurrent("ssm", 5, 8, num_layers=3)
    for T in (1, 50):
        _, (conv, h) = stack(torch.randn(2, T, 5))
        assert conv.shape == (3, 2, 16, 3) and h.shape == (3, 2, 16, 16)  # (L, N, E, k−1), (L, N, E, S)


@pytest.mark.parametrize("name", SCAN_CELLS)
def test_gradcheck(name):
    """Gradients of the parallel forward w.r.t. the input, the initial state and every weight."""
    cell = random_cell(name, input_size=3)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    state = random_state(cell, name)
    states = tuple(s.requires_grad_() for s in (state if name == "ssm" else (state,)))
    names = [n for n, _ in cell.named_parameters()]

    def run(x, *tensors):
        weights, given = dict(zip(names, tensors[len(states) :], strict=True)), tensors[: len(states)]
        out, final = torch.func.functional_call(cell, weights, (x, given if name == "ssm" else given[0]))
        return out, *(final if name == "ssm" else (final,))

    assert torch.autograd.gradcheck(run, (x, *states, *cell.parameters()), eps=1e-6, atol=1e-6)


def unigram_entropy_nats(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log(c / len(text)) for c in counts.values())


@pytest.mark.parametrize("name", SCAN_CELLS)
def test_learns_below_unigram_entropy(name):
    torch.manual_seed(0)
    text = "the cat sat on the mat. the dog sat on the log. " * 40
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(ch) for ch in text])
    model = RNNLM(ModelConfig(vocab_size=len(vocab), cell=name, layers=1, hidden=32, embed=16))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    usable = (len(ids) - 1) // 4 * 4
    x, y = ids[:usable].view(4, -1), ids[1 : usable + 1].view(4, -1)
    for _ in range(6):
        state = None
        for start in range(0, x.shape[1], 40):
            _, state, loss = model(x[:, start : start + 40], state, y[:, start : start + 40])
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    assert loss.item() < 0.5 * unigram_entropy_nats(text), (name, loss.item())


def test_ssm_rejects_a_learned_initial_state():
    with pytest.raises(RnnlabError, match="learn-init"):
        ModelConfig(vocab_size=5, cell="ssm", learn_init=True).validate()


@pytest.mark.parametrize("name", SCAN_CELLS)
def test_train_resume_continues_exactly_and_samples(name, tmp_path: Path, corpus_file: Path, tiny: dict):
    """As tests/train: N steps in one go == N/2 steps, then resume to N, byte for byte; then it samples."""
    args = dict(max_steps=20, eval_every=5, checkpoint_every=5, decay="none", dropout=0.1, cell=name, **tiny)
    rnnlab.train([str(corpus_file)], out=tmp_path / "whole", **args)
    rnnlab.train([str(corpus_file)], out=tmp_path / "split", **{**args, "max_steps": 10})
    rnnlab.train(out=tmp_path / "split", resume=True, **args)
    assert (tmp_path / "whole/model.safetensors").read_bytes() == (tmp_path / "split/model.safetensors").read_bytes()
    a, b = (load_file(tmp_path / run / "checkpoint/state.safetensors") for run in ("whole", "split"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lm = LanguageModel.load(tmp_path / "whole")
    assert len(lm.generate("def ", length=30, seed=0)) > 0
    assert math.isfinite(lm.score("def value(x):\n    return x\n").bits_per_char)


@pytest.mark.parametrize("name", SCAN_CELLS)
def test_the_recurrence_runs_in_float32_under_bf16_autocast(name):
    """Mixed precision computes the projections in bf16; the state summed over T steps stays float32 (in bf16
    the log-space scan this replaced drifted by 0.24 over 50 steps)."""
    torch.manual_seed(0)
    cell = make_cell(name, 16, 16)
    x = torch.randn(2, 50, 16)
    exact, _ = cell(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = cell(x)
    assert mixed.dtype == torch.float32
    assert (mixed - exact).abs().max() < 0.02
