"""Hessian-free: the curvature product against an explicit Gauss-Newton matrix, the gradient, CG, and descent;
fused and plain recurrent layers; a language model with a carried state."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import hessian, jacobian
from torch.func import functional_call

from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.lab.long_range import SequenceModel, adding_batch, copy_batch
from rnnlab.lm.model import RNNLM
from rnnlab.nn import registry
from rnnlab.nn.recurrent import state_tensors
from rnnlab.train.hessian_free import ChunkHessianFree, HessianFree, masked_loss


def tiny(kind: str, cell: str = "rnn-tanh", fused: bool = False) -> tuple[SequenceModel, torch.Tensor, ...]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    b = adding_batch(3, 4, g) if kind == "mse" else copy_batch(3, 2, g)
    model = SequenceModel(cell, b.x.shape[-1], 3, 1 if kind == "mse" else 8, fused=fused).double()
    mask = b.mask.double()
    mask[0, -1] = 0.5 if kind == "mse" else mask[0, -1]  # weights other than 0/1 are allowed
    return model, b.x.double(), b.y.double() if kind == "mse" else b.y, mask


@pytest.mark.parametrize(("cell", "fused"), [("rnn-tanh", False), ("rnn-tanh", True), ("lstm", True)])
@pytest.mark.parametrize("kind", ["cross_entropy", "mse"])
@pytest.mark.parametrize("mu", [0.0, 0.3])
def test_curvature_product_equals_explicit_gauss_newton(kind: str, mu: float, cell: str, fused: bool) -> None:
    """Fused torch layers compute it on the model itself, rnnlab's cells on the plain copy."""
    model, x, y, mask = tiny(kind, cell, fused)
    hf = HessianFree(model, kind, damping=2.0, structural_damping=mu)
    assert hf.curvature_on_twin != fused
    names = list(hf.named)
    flat = torch.cat([p.detach().reshape(-1) for p in hf.named.values()])

    def run(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params, i = {}, 0
        for name in names:
            p = hf.named[name]
            params[name] = theta[i : i + p.numel()].view_as(p)
            i += p.numel()
        return functional_call(model, params, (x,))

    outputs, _ = run(flat)
    J = jacobian(lambda t: run(t)[0], flat).reshape(-1, flat.numel())
    J_h = jacobian(lambda t: run(t)[1], flat).reshape(-1, flat.numel())
    H_L = hessian(lambda o: masked_loss(kind, o, y, mask), outputs.detach()).reshape(J.shape[0], J.shape[0])
    G = J.T @ H_L @ J + mu * 2.0 / x.shape[0] * J_h.T @ J_h
    v = torch.randn(flat.numel(), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(hf.curvature_product(x, mask)(v), G @ v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fused", [False, True])
def test_per_example_gradients_sum_to_the_gradient(fused: bool) -> None:
    """vmap runs on the plain copy, also for a fused model (whose parameters have other names)."""
    model, x, y, mask = tiny("cross_entropy", "lstm", fused)
    hf = HessianFree(model, "cross_entropy")
    g, D = hf.gradient_and_diagonal(x, y, mask)
    outputs, _ = model(x)
    expected = torch.autograd.grad(masked_loss("cross_entropy", outputs, y, mask), list(hf.named.values()))
    torch.testing.assert_close(g, torch.cat([e.reshape(-1) for e in expected]))
    assert (D >= 0).all() and D.sum() > 0


def test_conjugate_gradient_solves_a_positive_definite_system() -> None:
    model, *_ = tiny("mse")
    hf = HessianFree(model, "mse", max_cg_iters=50, cg_tolerance=1e-12)
    g = torch.Generator().manual_seed(0)
    Q = torch.randn(12, 12, generator=g, dtype=torch.float64)
    A = Q @ Q.T + torch.eye(12, dtype=torch.float64)
    b = torch.randn(12, generator=g, dtype=torch.float64)
    kept, _ = hf.conjugate_gradient(lambda v: A @ v, b, torch.zeros(12, dtype=torch.float64), A.diag())
    torch.testing.assert_close(kept[-1], torch.linalg.solve(A, b))


def test_hf_decreases_the_loss_on_the_adding_problem() -> None:
    torch.manual_seed(0)
    b = adding_batch(64, 6, torch.Generator().manual_seed(0))
    model = SequenceModel("rnn-tanh", 2, 8, 1, fused=False)
    hf = HessianFree(model, "mse", structural_damping=0.3)
    start = hf.objective(b.x, b.y, b.mask)
    steps = [hf.step(b.x, b.y, b.mask) for _ in range(5)]
    assert all(s.loss_after <= s.loss_before for s in steps)
    assert steps[-1].loss_after < 0.3 * start


@pytest.mark.parametrize("cell", registry.names())
def test_language_model_gradient_from_a_carried_state(cell: str) -> None:
    """HF's view of an RNNLM (tokens and the state's rows, batch-first) gives the model's own gradient, for every
    registered cell: HF runs each cell's step loop (vmap, double backward), so it applies to all of them."""
    torch.manual_seed(0)
    lm = RNNLM(ModelConfig(vocab_size=7, cell=cell, layers=2, hidden=6, embed=6)).double()
    x, y = torch.randint(0, 7, (4, 5)), torch.randint(0, 7, (4, 5))
    with torch.no_grad():
        _, state, _ = lm(torch.randint(0, 7, (4, 3)))  # a state carried from an earlier chunk
    chunk = ChunkHessianFree(lm, TrainConfig(optimizer="hf"))
    rows = tuple(s.transpose(0, 1) for s in state_tensors(state))
    g, _ = chunk.hf.gradient_and_diagonal((x, *rows), y, torch.ones(4, 5, dtype=torch.float64))
    _, _, loss = lm(x, state, y)
    expected = torch.autograd.grad(loss, list(chunk.hf.named.values()))
    torch.testing.assert_close(g, torch.cat([e.reshape(-1) for e in expected]))


def test_language_model_step_lowers_the_chunk_loss_and_saves_its_state() -> None:
    torch.manual_seed(0)
    lm = RNNLM(ModelConfig(vocab_size=5, cell="lstm", layers=1, hidden=8, embed=4))
    x = torch.randint(0, 5, (8, 12))
    y = (x + 1) % 5  # learnable from the current token
    chunk = ChunkHessianFree(lm, TrainConfig(optimizer="hf", hf_cg_iters=20))
    losses = [chunk.step(x, y, None)[0] for _ in range(6)]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] - 0.2, losses
    saved = chunk.state_dict()
    fresh = ChunkHessianFree(lm, TrainConfig(optimizer="hf"))
    fresh.load_state_dict(saved)
    assert fresh.hf.damping == chunk.hf.damping and torch.equal(fresh.hf.previous, chunk.hf.previous)
