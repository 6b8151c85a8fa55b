"""Hessian-free optimisation (Martens 2010; Martens & Sutskever 2011) for any `torch.nn.Module`.

Each step minimises a damped local quadratic model of the objective f around the parameters θ,

    q(p) = f(θ) + gᵀp + ½ pᵀ (G + λI + μλ J_hᵀJ_h) p,        g = ∇f(θ),

by (preconditioned) conjugate gradient, which only needs curvature-vector products, never the matrix:

    Gv = Jᵀ H_L J v          J = ∂outputs/∂θ, H_L = ∂²f/∂outputs² (Gauss-Newton: positive semi-definite)

J v comes from the double-backward trick (J v = ∂(Jᵀu)ᵀv/∂u), Jᵀu from a backward pass, both through
graphs built once per step. H_L is analytic: for the mean squared error 2/n · u, for softmax
cross-entropy with p = softmax(z), (p ⊙ u − p (pᵀu)) / n per position (n = scored positions).

- Damping (Levenberg–Marquardt): λ × 3/2 when the reduction ratio ρ = (f(θ+p) − f(θ)) / (q(p) − q(0)) < 1/4,
  × 2/3 when ρ > 3/4 (q here is the undamped model, the one that should predict f).
- Structural damping (Martens & Sutskever 2011), for recurrent models whose forward returns
  `(outputs, hidden)`: the penalty ½ μλ ‖J_h p‖² / N on changes of the hidden states keeps a step from
  moving the hidden dynamics much further than the outputs' curvature can see.
- Preconditioner (Martens 2010): M = (D + λ)^0.75 with D = N Σ_i (∇c_i)², the per-example gradients of the
  example shares c_i of the objective (Σ_i c_i = f): the empirical Fisher diagonal on f's scale.
- CG starts from the previous step's solution times 0.95, stops on Martens' relative-progress test, keeps
  the iterates at i = ⌈1.3^k⌉ and the last, and CG-backtracking picks the best of them by the true objective
  on the gradient batch; a backtracking (Armijo) line search on the step size follows.
- Mini-batches: the gradient on the whole batch, the curvature on its first `curvature_fraction`. A batch is
  one tensor or a tuple of tensors, all batch-first (a language model's tokens and its carried state rows):
  every objective, gradient and curvature product of a step sees the same fixed examples.

Second derivatives and per-example gradients (`vmap`) need the plain autograd loop of rnnlab's cells, so
they run on `plain_copy(model)`, a copy whose cells and stacks run their step loops, called with the model's own
weights; the objective runs on the model itself. When every recurrent stack runs PyTorch's fused op on the CPU
(twice differentiable, though not vmappable), curvature products run on the model too: they are faster.
`ChunkHessianFree` applies HF to the language-model trainer's truncated-BPTT chunks.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from rnnlab.config import TrainConfig
from rnnlab.errors import RnnlabError
from rnnlab.nn.cells import step_loops
from rnnlab.nn.recurrent import Recurrent, State, state_from_tensors, state_tensors

if TYPE_CHECKING:
    from rnnlab.lm.model import RNNLM

LOSSES = ("cross_entropy", "mse")
Inputs = Tensor | tuple[Tensor, ...]  # batch-first: row i of every tensor belongs to example i


def position_losses(kind: str, outputs: Tensor, targets: Tensor) -> Tensor:
    """Loss at every position: outputs (..., O); targets class ids (...) or values (..., O) -> (...)."""
    if kind == "cross_entropy":
        return F.cross_entropy(outputs.flatten(0, -2), targets.flatten(), reduction="none").view(targets.shape)
    if kind == "mse":
        return ((outputs - targets) ** 2).sum(-1)
    raise ValueError(f"unknown loss {kind!r}; choose one of {LOSSES}")


def masked_loss(kind: str, outputs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Mean loss over the positions where `mask` (same shape as the positions) is 1."""
    return (position_losses(kind, outputs, targets) * mask).sum() / mask.sum()


def loss_hessian_vector(kind: str, outputs: Tensor, mask: Tensor, u: Tensor) -> Tensor:
    """H_L u, H_L the Hessian of `masked_loss` with respect to the outputs (block-diagonal per position)."""
    scale = (mask / mask.sum()).unsqueeze(-1)
    if kind == "mse":
        return 2 * scale * u
    p = torch.softmax(outputs, -1)
    return scale * (p * u - p * (p * u).sum(-1, keepdim=True))


def plain_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose cells run their plain autograd step loop (twice differentiable, works under
    `vmap`): `step_loops`, which also keeps every recurrent stack from running PyTorch's fused op for all its layers
    at once. The copy has `model`'s parameter names (one parameter layout), so it is called with the model's own."""
    return step_loops(copy.deepcopy(model))


@dataclass
class HFStep:
    """What one Hessian-free step did."""

    loss_before: float
    loss_after: float
    rho: float  # reduction ratio of the chosen CG iterate
    damping: float  # λ used for this step (before its update)
    cg_iters: int
    alpha: float  # line-search step size (0: no step taken)


class HessianFree:
    """Hessian-free optimiser for `model`, whose forward returns outputs or `(outputs, hidden)`.

    `step(inputs, targets, mask)` takes one mini-batch: inputs a tensor or a tuple of them (the forward's
    arguments, batch-first), outputs (N, T, O), targets (N, T) class ids for "cross_entropy" or (N, T, O)
    for "mse", mask (N, T) of the positions that count. Per-example gradients are computed `per_example_chunk`
    examples at a time (memory: chunk × parameters).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: str,
        *,
        damping: float = 1.0,
        structural_damping: float = 0.0,
        curvature_fraction: float = 0.25,
        max_cg_iters: int = 100,
        min_cg_iters: int = 10,
        cg_tolerance: float = 5e-4,
        warm_start_decay: float = 0.95,
        preconditioner_exponent: float = 0.75,
        per_example_chunk: int = 64,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
        self.model, self.loss = model, loss
        self.damping, self.mu = damping, structural_damping
        self.curvature_fraction, self.max_cg_iters, self.min_cg_iters = curvature_fraction, max_cg_iters, min_cg_iters
        self.cg_tolerance, self.decay, self.exponent = cg_tolerance, warm_start_decay, preconditioner_exponent
        self.chunk = per_example_chunk
        self.named = {name: p for name, p in model.named_parameters() if p.requires_grad}
        self.previous: Tensor | None = None  # the last CG solution, for the warm start
        self.twin = plain_copy(model)
        recurrent = [m for m in model.modules() if isinstance(m, Recurrent)]
        on_cpu = all(p.device.type == "cpu" for p in self.named.values())  # cuDNN RNNs have no double backward
        self.curvature_on_twin = not (on_cpu and all(m.fused_op for m in recurrent))

    # --- helpers -------------------------------------------------------------------------------------------
    def _forward(self, params: dict[str, Tensor], inputs: Inputs, plain: bool = False) -> tuple[Tensor, Tensor | None]:
        """The model's (outputs, hidden or None) with these parameters; `plain`: through the plain copy."""
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        result = functional_call(self.twin if plain else self.model, params, inputs)
        return result if isinstance(result, tuple) else (result, None)

    def _flat(self, tensors: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def _unflat(self, vector: Tensor) -> dict[str, Tensor]:
        out, i = {}, 0
        for name, p in self.named.items():
            out[name] = vector[i : i + p.numel()].view_as(p)
            i += p.numel()
        return out

    def _params(self) -> dict[str, Tensor]:
        return {name: p.detach() for name, p in self.named.items()}

    @torch.no_grad()
    def objective(self, inputs: Inputs, targets: Tensor, mask: Tensor, delta: Tensor | None = None) -> float:
        """f(θ + delta) on a batch (delta None: f(θ))."""
        params = self._params()
        if delta is not None:
            params = {name: p + d for (name, p), d in zip(params.items(), self._unflat(delta).values(), strict=True)}
        outputs, _ = self._forward(params, inputs)
        return float(masked_loss(self.loss, outputs, targets, mask))

    def gradient_and_diagonal(self, inputs: Inputs, targets: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """g = Σ_i ∇c_i and D = N Σ_i (∇c_i)² from per-example gradients (vmap over the batch, in chunks)."""
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        total, N = mask.sum(), mask.shape[0]

        def share(params: dict[str, Tensor], *example: Tensor) -> Tensor:  # one row of each input, y, mask
            *x, y, m = example
            outputs, _ = self._forward(params, tuple(t.unsqueeze(0) for t in x), plain=True)
            return (position_losses(self.loss, outputs[0], y) * m).sum() / total

        per_example = vmap(grad(share), in_dims=(None,) + (0,) * (len(inputs) + 2))
        params, g, D = self._params(), 0.0, 0.0
        for start in range(0, N, self.chunk):
            rows = [t[start : start + self.chunk] for t in (*inputs, targets, mask)]
            flat = torch.cat([p.reshape(p.shape[0], -1) for p in per_example(params, *rows).values()], 1)
            g, D = g + flat.sum(0), D + (flat**2).sum(0)
        return g, N * D

    def curvature_product(self, inputs: Inputs, mask: Tensor) -> Callable[..., Tensor]:
        """v ↦ (G + μλ J_hᵀJ_h / N) v on this (curvature) batch: Jᵀ H_L J v plus structural damping (unless
        `with_structural=False`), without λI.

        J v by the double-backward trick: w(u) = Jᵀu is linear in a dummy u, so ∂(w(u)ᵀv)/∂u = J v. Both
        graphs are built once per step and reused by every CG iteration (two backward passes per product).
        """
        params = list(self.named.values())
        outputs, hidden = self._forward(self.named, inputs, plain=self.curvature_on_twin)
        roots = [outputs] if hidden is None else [outputs, hidden]
        dummies = [torch.ones_like(r, requires_grad=True) for r in roots]  # any u: Jᵀu is linear in it
        transposed = torch.autograd.grad(roots, params, dummies, create_graph=True)  # Jᵀu, a function of u
        outputs_d = outputs.detach()
        structural = self.mu * self.damping / mask.shape[0]

        def product(v: Tensor, with_structural: bool = True) -> Tensor:
            tangents = list(self._unflat(v).values())
            jv = torch.autograd.grad(transposed, dummies, tangents, retain_graph=True)
            cotangents = [loss_hessian_vector(self.loss, outputs_d, mask, jv[0])]
            if len(roots) == 2:
                cotangents.append(structural * jv[1] if with_structural else torch.zeros_like(jv[1]))
            return self._flat(torch.autograd.grad(roots, params, cotangents, retain_graph=True))

        return product

    def conjugate_gradient(
        self, A: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor, M: Tensor, deadline: float | None = None
    ) -> tuple[list[Tensor], int]:
        """Preconditioned CG on A x = b (minimising φ(x) = ½xᵀAx − bᵀx) from x0, preconditioner M (diagonal).

        Stops at i > k = max(10, 0.1 i) when φ_i < 0 and (φ_i − φ_{i−k}) / φ_i < k ε (Martens 2010, sec. 4.4),
        or when `time.process_time()` (CPU seconds) passes `deadline`.
        Returns the iterates kept for backtracking (at i = ⌈1.3^j⌉ and the last) and the iterations run.
        """
        x = x0.clone()
        r = A(x) - b
        y = r / M
        d = -y
        ry = r @ y
        phis, kept, save_at, i = [], [], 1, 0
        for i in range(1, self.max_cg_iters + 1):
            Ad = A(d)
            curvature = d @ Ad
            if curvature <= 0:  # cannot happen with λ > 0 except through rounding
                break
            step = ry / curvature
            x = x + step * d
            r = r + step * Ad
            y = r / M
            ry_new = r @ y
            d = -y + (ry_new / ry) * d
            ry = ry_new
            phis.append(float(0.5 * x @ (r - b)))
            if i >= save_at:
                kept.append(x.clone())
                save_at = max(save_at + 1, math.ceil(save_at * 1.3))
            k = max(self.min_cg_iters, int(0.1 * i))
            if i > k and phis[-1] < 0 and (phis[-1] - phis[-1 - k]) / phis[-1] < k * self.cg_tolerance:
                break
            if deadline is not None and time.process_time() > deadline:
                break
        if not kept or not torch.equal(kept[-1], x):
            kept.append(x)
        return kept, i

    # --- the step ----------------------------------------------------------------------------------------------
    def step(self, inputs: Inputs, targets: Tensor, mask: Tensor, deadline: float | None = None) -> HFStep:
        """One HF update on this mini-batch (curvature on its first `curvature_fraction`); CG stops early at
        `deadline` (a `time.process_time()` value), so that a CPU-time budget is kept even when a step is long."""
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        lam = self.damping
        f0 = self.objective(inputs, targets, mask)
        g, D = self.gradient_and_diagonal(inputs, targets, mask)
        M = (D + lam) ** self.exponent
        n_curv = max(1, round(mask.shape[0] * self.curvature_fraction))
        Gv = self.curvature_product(tuple(t[:n_curv] for t in inputs), mask[:n_curv])
        x0 = self.decay * self.previous if self.previous is not None else torch.zeros_like(g)
        kept, iters = self.conjugate_gradient(lambda v: Gv(v) + lam * v, -g, x0, M, deadline)
        self.previous = kept[-1] if torch.isfinite(kept[-1]).all() else None  # no NaN warm start
        # CG-backtracking: walk back from the last iterate while the true objective keeps improving.
        best, f_best = kept[-1], self.objective(inputs, targets, mask, kept[-1])
        for candidate in reversed(kept[:-1]):
            f_candidate = self.objective(inputs, targets, mask, candidate)
            if f_candidate >= f_best:
                break
            best, f_best = candidate, f_candidate
        predicted = float(g @ best + 0.5 * best @ Gv(best, with_structural=False))  # q(p) − q(0), undamped
        rho = (f_best - f0) / predicted if predicted < 0 else -math.inf
        if not rho >= 0.25:  # also when a loss came out NaN
            self.damping *= 1.5
        elif rho > 0.75:
            self.damping *= 2 / 3
        # Backtracking line search (Armijo, c = 0.01) on the chosen direction.
        alpha, f_new, slope = 1.0, f_best, float(g @ best)
        while not f_new <= f0 + 0.01 * alpha * slope:  # a NaN loss is no decrease
            alpha *= 0.8
            if alpha < 1e-3:
                alpha, f_new = 0.0, f0
                break
            f_new = self.objective(inputs, targets, mask, alpha * best)
        if alpha > 0:
            with torch.no_grad():
                for p, d in zip(self.named.values(), self._unflat(alpha * best).values(), strict=True):
                    p.add_(d)
        return HFStep(f0, f_new, rho, lam, iters, alpha)

    # --- exact resume ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """λ and the warm start, in torch.optim's layout (so checkpoints store them like any optimiser's)."""
        state = {} if self.previous is None else {0: {"previous": self.previous}}
        return {"state": state, "param_groups": [{"hessian_free": True, "damping": self.damping, "params": []}]}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore what `state_dict` saved; another optimiser's state is an error."""
        groups = saved.get("param_groups", [])
        if len(groups) != 1 or not groups[0].get("hessian_free"):
            raise RnnlabError("the checkpoint holds a first-order optimiser's state, which --optimizer hf cannot use")
        self.damping = float(groups[0]["damping"])
        previous = saved.get("state", {}).get(0, {}).get("previous")
        self.previous = None if previous is None else previous.clone()


# --- in the language-model trainer -------------------------------------------------------------------------------
class _TokensAndRows(nn.Module):
    """An RNNLM as HF sees it: tokens (N, T) and the carried state's tensors with the stream axis first
    -> (logits (N, T, V), the top layer's outputs (N, T, H) for structural damping)."""

    def __init__(self, lm: RNNLM) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, tokens: Tensor, *rows: Tensor) -> tuple[Tensor, Tensor]:
        state = state_from_tensors([r.transpose(0, 1) for r in rows])
        top: list[Tensor] = []  # the recurrent stack's outputs, caught on the way through RNNLM.forward
        hook = self.lm.rnn.register_forward_hook(lambda module, args, out: top.append(out[0]))
        try:
            logits, _, _ = self.lm(tokens, state)
        finally:
            hook.remove()
        return logits, top[0]


class ChunkHessianFree:
    """`--optimizer hf` in the truncated-BPTT trainer: each update minimises the loss of one chunk from the
    chunk's incoming carried state, detached, so that the mini-batch HF's quadratic model describes is fixed;
    the gradient uses all N streams, the curvature the first `hf_curvature_fraction` of them."""

    def __init__(self, lm: RNNLM, config: TrainConfig) -> None:
        if lm.config.dropout > 0:
            raise RnnlabError("--optimizer hf needs --dropout 0 (CG and its line search compare deterministic losses)")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            raise RnnlabError("--optimizer hf runs in one process (it does not share curvature products across ranks)")
        self.lm = lm
        self.hf = HessianFree(
            _TokensAndRows(lm),
            "cross_entropy",
            structural_damping=config.hf_structural_damping,
            curvature_fraction=config.hf_curvature_fraction,
            max_cg_iters=config.hf_cg_iters,
        )

    def step(self, x: Tensor, y: Tensor, state: State | None) -> tuple[float, State]:
        """One update on tokens x, targets y (N, T) from `state`; returns the loss before it and the chunk's
        final state at the weights before it (what the first-order step carries on, too)."""
        with torch.no_grad():
            _, final, loss = self.lm(x, state, y)
        if math.isfinite(float(loss)):
            rows = tuple(s.transpose(0, 1) for s in state_tensors(state))
            self.hf.step((x, *rows), y, (y >= 0).to(loss.dtype))  # negative ids: unscored padding
        return float(loss), final

    def state_dict(self) -> dict[str, Any]:
        return self.hf.state_dict()

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.hf.load_state_dict(saved)
