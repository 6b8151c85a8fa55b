"""Hessian-free: the curvature product against an explicit Gauss-Newton matrix, the gradient, CG, and descent."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import hessian, jacobian
from torch.func import functional_call

from rnnlab.tasks.long_range import SequenceModel, adding_batch, copy_batch
from rnnlab.train.hessian_free import HessianFree, masked_loss


def tiny(kind: str) -> tuple[SequenceModel, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    b = adding_batch(3, 4, g) if kind == "mse" else copy_batch(3, 2, g)
    model = SequenceModel("rnn-tanh", b.x.shape[-1], 3, 1 if kind == "mse" else 8, fused=False).double()
    mask = b.mask.double()
    mask[0, -1] = 0.5 if kind == "mse" else mask[0, -1]  # weights other than 0/1 are allowed
    return model, b.x.double(), b.y.double() if kind == "mse" else b.y, mask


@pytest.mark.parametrize("kind", ["cross_entropy", "mse"])
@pytest.mark.parametrize("mu", [0.0, 0.3])
def test_curvature_product_equals_explicit_gauss_newton(kind: str, mu: float) -> None:
    model, x, y, mask = tiny(kind)
    hf = HessianFree(model, kind, damping=2.0, structural_damping=mu)
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


def test_per_example_gradients_sum_to_the_gradient() -> None:
    model, x, y, mask = tiny("cross_entropy")
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
