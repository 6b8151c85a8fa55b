"""Optimisers, the initialisation they are paired with, and the learning-rate schedule (linear warmup, then
cosine/linear decay or constant)."""

from __future__ import annotations

import math

import torch

from rnnlab.config import TrainConfig
from rnnlab.errors import RnnlabError
from rnnlab.nn.init import esn_init_
from rnnlab.train.hessian_free import ChunkHessianFree


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer | ChunkHessianFree:
    """The optimiser named by `config.optimizer`, with the config's learning rate and regularisation.

    "hf" is Hessian-free (`ChunkHessianFree`): it has no learning rate, schedule, momentum or clipping.
    """
    name, lr, wd, params = config.optimizer, config.lr, config.weight_decay, model.parameters()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=config.betas, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=config.betas, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=True, weight_decay=wd)
    if name == "hf":
        return ChunkHessianFree(model, config)  # type: ignore[arg-type]
    raise ValueError(f"unknown optimizer {name!r}")


def initialise(model: torch.nn.Module, config: TrainConfig) -> None:
    """`--init esn`: ESN-style recurrent weights at `--spectral-radius` (Sutskever et al. 2013), in place;
    "default" keeps each cell's own initialisation."""
    if config.init != "esn":
        return
    try:
        esn_init_(model, config.spectral_radius, generator=torch.Generator().manual_seed(config.seed))
    except ValueError:
        raise RnnlabError(
            "--init esn needs a recurrent matrix W_hh (mrnn, mingru, minlstm and ssm have none)"
        ) from None


def lr_factor(step: int, progress: float, config: TrainConfig) -> float:
    """Multiplier of the base learning rate at `step`, given the fraction of the budget used.

    `progress` is in [0, 1] (steps taken over the step budget, or time over the time budget); with no
    budget it stays 0 and the rate is constant after warmup.
    """
    warm = min(1.0, (step + 1) / config.warmup) if config.warmup else 1.0
    p = min(max(progress, 0.0), 1.0)
    floor = config.min_lr_ratio
    if config.decay == "cosine":
        decay = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))
    elif config.decay == "linear":
        decay = 1 - (1 - floor) * p
    else:
        decay = 1.0
    return warm * decay
