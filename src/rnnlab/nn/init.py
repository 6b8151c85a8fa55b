"""Echo-state-network initialisation of trainable recurrent layers (Sutskever, Martens, Dahl & Hinton 2013).

Setting the recurrent matrix's spectral radius ρ(W_hh) slightly above 1 (1.1 for tanh) puts the network at
the edge of chaos: activity and gradients neither die out nor explode over long delays, so that SGD with
Nesterov momentum can learn long-range dependencies that a small uniform initialisation cannot.
"""

from __future__ import annotations

import re

import torch
from torch import nn

_RECURRENT = re.compile(r"(^|\.)weight_hh(_l\d+)?$")  # rnnlab cells and torch.nn.RNN/LSTM/GRU
_INPUT = re.compile(r"(^|\.)weight_ih(_l\d+)?$")
_BIAS = re.compile(r"(^|\.)bias_(ih|hh)(_l\d+)?$")


def spectral_radius(W: torch.Tensor) -> float:
    """max |eigenvalue| of a square matrix, computed in float64."""
    return float(torch.linalg.eigvals(W.detach().double()).abs().max())


@torch.no_grad()
def esn_init_(
    module: nn.Module,
    spectral_radius_target: float = 1.1,
    *,
    sparsity: float = 0.0,
    input_scaling: float = 1.0,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """ESN-style initialisation, in place, of every recurrent layer in `module`; returns `module`.

    Each (H, H) gate block of every `weight_hh` / `weight_hh_l{k}` gets Gaussian entries, a fraction
    `sparsity` of them set to zero, and is then scaled so that its spectral radius is exactly the target.
    Input weights `weight_ih*` are drawn from N(0, input_scaling² / D); the `bias_ih`/`bias_hh` biases start at 0
    (an LSTM's forget-gate bias is then 0, not the usual 1: use this for the plain RNNs the paper trains).
    """
    if not 0 <= sparsity < 1 or spectral_radius_target <= 0:
        raise ValueError("esn_init_ needs 0 <= sparsity < 1 and a positive spectral radius")
    found = False
    for name, p in module.named_parameters():
        if _RECURRENT.search(name):
            found = True
            H = p.shape[1]
            for block in p.view(-1, H, H):
                W = torch.randn(H, H, generator=generator, dtype=torch.float64)
                if sparsity > 0:
                    W *= torch.rand(H, H, generator=generator, dtype=torch.float64) >= sparsity
                block.copy_(W * (spectral_radius_target / spectral_radius(W)))
        elif _INPUT.search(name):
            p.copy_(torch.randn(p.shape, generator=generator) * (input_scaling / p.shape[1] ** 0.5))
        elif _BIAS.search(name):
            p.zero_()
    if not found:
        raise ValueError("esn_init_ found no recurrent weight (weight_hh or weight_hh_l<k>) in the module")
    return module
