"""Gradient flow through time and gate saturation, measured on real text (Bengio et al. 1994; Pascanu et al. 2013).

`grad_norms` runs the model one step at a time so that every h_t (all layers, shape (L, 1, H)) is a
tensor of the autograd graph; after backpropagating the loss of the last prediction, L_T, each h_t
holds ‖∂L_T/∂h_t‖ (the gradient through the recurrence, with the LSTM cell state c_t as a separate path).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab.config import ModelConfig
from rnnlab.errors import RnnlabError
from rnnlab.models.language_model import RNNLM

SIGMOID_BAND = (0.05, 0.95)  # a sigmoid gate outside this band is saturated (its derivative is < 0.048)
TANH_LIMIT = 0.95  # a tanh unit with |value| above this is saturated (its derivative is < 0.098)


def _inputs(module: RNNLM, tokens: torch.Tensor) -> torch.Tensor:
    """tokens (1, T) -> the recurrent stack's input (1, T, D): embeddings, or one-hot vectors when embed=0."""
    if module.embed is not None:
        return module.embed(tokens)
    return F.one_hot(tokens, module.config.vocab_size).to(module.head.weight.dtype)


def grad_norms(module: RNNLM, tokens: torch.Tensor) -> np.ndarray:
    """‖∂L_T/∂h_t‖ for t = T-1, T-2, ..., 0 (entry k is k steps back from the last), where the T+1 tokens
    give T inputs and L_T is the cross-entropy of predicting the last token from h_{T-1}."""
    if tokens.dim() != 1 or len(tokens) < 2:
        raise RnnlabError("the gradient probe needs at least 2 tokens")
    module.eval()
    x = _inputs(module, tokens[:-1].unsqueeze(0))
    state, hs = None, []
    for t in range(x.shape[1]):
        _, state = module.rnn(x[:, t : t + 1], state)
        h = state[0] if isinstance(state, tuple) else state
        h.retain_grad()
        hs.append(h)
    logits = module.head(hs[-1][-1])  # the top layer's h_T is the output at the last step
    loss = F.cross_entropy(logits, tokens[-1:])
    loss.backward()
    return np.array([float(h.grad.norm()) for h in reversed(hs)])


@torch.no_grad()
def saturation(module: RNNLM, tokens: torch.Tensor) -> dict[str, float]:
    """Fraction of saturated sigmoid gates and tanh units over a text, all layers and steps together.

    Gate values are recomputed from the weights with the cell's equations (torch gate order), using each
    layer's input and previous h read from the states returned one step at a time.
    """
    module.eval()
    cell, L = module.config.cell, module.config.layers
    x = _inputs(module, tokens.unsqueeze(0))
    state, h_seq, c_seq = None, [], []
    for t in range(x.shape[1]):
        _, state = module.rnn(x[:, t : t + 1], state)
        h_seq.append((state[0] if isinstance(state, tuple) else state)[:, 0])
        if isinstance(state, tuple):
            c_seq.append(state[1][:, 0])
    h = torch.stack(h_seq, dim=1)  # (L, T, H)
    h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
    sig, tanh = [], []
    rnn = module.rnn.rnn
    for layer in range(L):
        inp = x[0] if layer == 0 else h[layer - 1]
        gi = inp @ getattr(rnn, f"weight_ih_l{layer}").T + getattr(rnn, f"bias_ih_l{layer}")
        gh = h_prev[layer] @ getattr(rnn, f"weight_hh_l{layer}").T + getattr(rnn, f"bias_hh_l{layer}")
        if cell == "lstm":
            i, f, g, o = (gi + gh).chunk(4, dim=-1)
            sig += [torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)]
            tanh += [torch.tanh(g), torch.tanh(torch.stack(c_seq, dim=1)[layer])]
        elif cell == "gru":
            ir, iz, in_ = gi.chunk(3, dim=-1)
            hr, hz, hn = gh.chunk(3, dim=-1)
            r = torch.sigmoid(ir + hr)
            sig += [r, torch.sigmoid(iz + hz)]
            tanh.append(torch.tanh(in_ + r * hn))
        elif cell == "rnn-tanh":
            tanh.append(torch.tanh(gi + gh))
    out = {}
    if sig:
        s = torch.cat([v.flatten() for v in sig])
        out["sigmoid_saturated"] = float(((s <= SIGMOID_BAND[0]) | (s >= SIGMOID_BAND[1])).float().mean())
    if tanh:
        out["tanh_saturated"] = float((torch.cat([v.flatten() for v in tanh]).abs() > TANH_LIMIT).float().mean())
    return out


def untrained(config: ModelConfig, cell: str, seed: int = 0) -> RNNLM:
    """A freshly initialised model of `cell` with the sizes of `config` (PyTorch's default initialisation)."""
    torch.manual_seed(seed)
    return RNNLM(dataclasses.replace(config, cell=cell))


@torch.no_grad()
def set_spectral_radius(module: RNNLM, rho: float) -> None:
    """Scale every layer's W_hh so that its largest |eigenvalue| is `rho` (rnn cells: W_hh is the whole map)."""
    rnn = module.rnn.rnn
    for layer in range(module.config.layers):
        W = getattr(rnn, f"weight_hh_l{layer}")
        radius = float(torch.linalg.eigvals(W.double()).abs().max())
        W.mul_(rho / radius)


@dataclass
class GradientProbe:
    """Gradient norms (k = 0..T-1 steps back) and saturation for each model, plus the rnn-tanh ρ sweep."""

    norms: dict[str, np.ndarray]
    saturation: dict[str, dict[str, float]]
    sweep: dict[float, np.ndarray]


def probe_gradients(models: dict[str, RNNLM], tokens: torch.Tensor, rhos: tuple[float, ...]) -> GradientProbe:
    """Measure every model on `tokens`, then an untrained rnn-tanh of the first model's size for each ρ."""
    norms = {name: grad_norms(m, tokens) for name, m in models.items()}
    sat = {name: saturation(m, tokens[:-1]) for name, m in models.items()}
    config = next(iter(models.values())).config
    sweep = {}
    for rho in rhos:
        rnn = untrained(config, "rnn-tanh")
        set_spectral_radius(rnn, rho)
        sweep[rho] = grad_norms(rnn, tokens)
    return GradientProbe(norms, sat, sweep)


def gradient_table(probe: GradientProbe, ks: tuple[int, ...] = (10, 50)) -> str:
    """A plain-text table: ‖∂L_T/∂h_T‖, the ratio k steps back, and the saturated fractions."""

    def ratio(n: np.ndarray, k: int) -> str:
        return f"{n[k] / n[0]:.2e}" if k < len(n) and n[0] > 0 else "-"

    head = f"{'model':<22}{'|dL/dh_T|':>11}" + "".join(f"{f'ratio k={k}':>13}" for k in ks)
    lines = [head + f"{'sigmoid sat':>13}{'tanh sat':>10}"]
    for name, n in probe.norms.items():
        s = probe.saturation[name]
        sig = f"{s['sigmoid_saturated']:.3f}" if "sigmoid_saturated" in s else "-"
        th = f"{s['tanh_saturated']:.3f}" if "tanh_saturated" in s else "-"
        lines.append(f"{name:<22}{n[0]:>11.3e}" + "".join(f"{ratio(n, k):>13}" for k in ks) + f"{sig:>13}{th:>10}")
    for rho, n in probe.sweep.items():
        lines.append(f"{f'rnn-tanh rho={rho:g}':<22}{n[0]:>11.3e}" + "".join(f"{ratio(n, k):>13}" for k in ks))
    return "\n".join(lines)
