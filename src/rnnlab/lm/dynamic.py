"""Dynamic evaluation (Krause, Kahembwe, Murray & Renals 2017, "Dynamic Evaluation of Neural Sequence
Models"): the model keeps learning from the text it is scoring.

The text is read in segments of T tokens, in order, with the hidden state carried. Each segment is
scored with the current weights *first*, and only then used for a gradient step, so every token is
predicted by a model that has never trained on it (the score is a fair compression rate). The update
is RMS-normalised SGD with a decay that pulls the weights back toward the trained ones θ₀:

    MS ← β·MS + (1 − β)·g²                          (running mean square of the gradient)
    θ  ← θ − η · g / (√MS + ε) + λ · (θ₀ − θ)

which is the paper's "RMS with decay" rule with the mean squares estimated online.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab.errors import RnnlabError
from rnnlab.nn.recurrent import State, detach_state


@dataclass(frozen=True)
class DynamicConfig:
    """Step size η, decay λ toward the trained weights, segment length T, and the RMS constants."""

    lr: float = 3e-5
    decay: float = 1e-3
    segment: int = 50
    beta: float = 0.99
    eps: float = 1e-8

    def validate(self) -> None:
        """Every setting in its range; NaN and infinity are refused (they would turn every score into NaN)."""
        if not 0 < self.lr < math.inf:
            raise RnnlabError(f"--dynamic-lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.decay < 1:
            raise RnnlabError(f"--dynamic-decay must be in [0, 1), got {self.decay}")
        if self.segment < 1:
            raise RnnlabError(f"--dynamic-segment must be >= 1, got {self.segment}")
        if not 0 <= self.beta < 1:
            raise RnnlabError(f"dynamic evaluation beta must be in [0, 1), got {self.beta}")
        if not 0 < self.eps < math.inf:
            raise RnnlabError(f"dynamic evaluation eps must be a finite number > 0, got {self.eps}")


def dynamic_nats(
    module: torch.nn.Module,
    tokens: np.ndarray,
    config: DynamicConfig,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """-ln p of each of tokens[1:] under dynamic evaluation (float64); `progress` is told how many tokens are done
    after each segment. `module` is not modified."""
    if len(tokens) < 2:
        config.validate()
        return np.zeros(0)
    targets = torch.as_tensor(np.asarray(tokens[1:], dtype=np.int64))
    nats, done = np.empty(len(targets)), 0
    for logits in dynamic_logits(module, tokens, config):
        n = len(logits)
        y = targets[done : done + n].to(logits.device)
        nats[done : done + n] = F.cross_entropy(logits, y, reduction="none").double().cpu().numpy()
        done += n
        if progress is not None:
            progress(done)
    return nats


def dynamic_logits(module: torch.nn.Module, tokens: np.ndarray, config: DynamicConfig) -> Iterator[torch.Tensor]:
    """The logits [n, V] of tokens[1:], segment by segment, each yielded before the model takes its step on that
    segment, so every prediction comes from weights that have not trained on its token. `module` is not modified."""
    config.validate()
    if len(tokens) < 2:
        return
    model = copy.deepcopy(module).eval()  # dropout off: adaptation, not regularised training
    params = [p for p in model.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    mean_square = [torch.zeros_like(p) for p in params]
    device = params[0].device
    ids = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=device)
    state: State | None = None
    for start in range(0, len(ids) - 1, config.segment):
        x = ids[start : start + config.segment][None]
        y = ids[start + 1 : start + config.segment + 1][None]
        x = x[:, : y.shape[1]]
        logits, state, _ = model(x, state)
        yield logits[0].detach()
        loss = F.cross_entropy(logits[0], y[0])
        model.zero_grad(set_to_none=True)
        loss.backward()
        rms_step(params, trained, mean_square, config)
        state = detach_state(state)


@torch.no_grad()
def rms_step(
    params: list[torch.Tensor], trained: list[torch.Tensor], mean_square: list[torch.Tensor], config: DynamicConfig
) -> None:
    """One update in place from each parameter's .grad (the rule above); shared with the compressor."""
    for p, p0, ms in zip(params, trained, mean_square, strict=True):
        ms.mul_(config.beta).addcmul_(p.grad, p.grad, value=1 - config.beta)
        p.sub_(config.lr * p.grad / (ms.sqrt() + config.eps))
        p.add_(config.decay * (p0 - p))
