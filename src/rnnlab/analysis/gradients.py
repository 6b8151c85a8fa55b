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
from rnnlab.lm.model import RNNLM
from rnnlab.nn.recurrent import state_from_tensors, state_tensors

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
    if not module.rnn.spec.per_unit:
        raise RnnlabError(f"the gradient probe follows h through time; --cell {module.config.cell} keeps no h state")
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
    """Fraction of saturated sigmoid gates and tanh units over a text, all layers and steps together; {} for a
    model whose stack is not its cells' `equations` (`Recurrent.layer_weights`).

    Gate values are recomputed by the cell's own `equations`, which hand them to a `record` hook, from each
    layer's input and previous state read from the states returned one step at a time (time as the batch).
    """
    module.eval()
    rnn = module.rnn
    weights = rnn.layer_weights()
    if weights is None:
        return {}
    x = _inputs(module, tokens.unsqueeze(0))
    state = rnn.initial_state(1)
    if state is None:  # zeros, in the state's layout
        zeros = torch.zeros(rnn.num_layers, 1, rnn.hidden_size, dtype=x.dtype, device=x.device)
        state = state_from_tensors([zeros] * len(rnn.spec.state))
    states = [state_tensors(state)]
    for t in range(x.shape[1]):
        _, state = rnn(x[:, t : t + 1], state)
        states.append(state_tensors(state))
    parts = [torch.cat(part, dim=1) for part in zip(*states, strict=True)]  # each (L, T + 1, H), from the start
    activations: dict[str, list[torch.Tensor]] = {"sigmoid": [], "tanh": []}

    def record(**outputs: tuple[torch.Tensor, ...]) -> None:
        for function, values in outputs.items():
            if function in activations:  # not relu's: it does not saturate
                activations[function].extend(values)

    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        inputs = x[0] if layer == 0 else parts[0][layer - 1, 1:]
        previous = state_from_tensors([part[layer, :-1] for part in parts])
        xw, hw = F.linear(inputs, w_ih, b_ih), F.linear(parts[0][layer, :-1], w_hh, b_hh)
        rnn.spec.equations(xw, hw, previous, record=record)
    out = {}
    if activations["sigmoid"]:
        s = torch.cat([v.flatten() for v in activations["sigmoid"]])
        out["sigmoid_saturated"] = float(((s <= SIGMOID_BAND[0]) | (s >= SIGMOID_BAND[1])).float().mean())
    if activations["tanh"]:
        values = torch.cat([v.flatten() for v in activations["tanh"]])
        out["tanh_saturated"] = float((values.abs() > TANH_LIMIT).float().mean())
    return out


def untrained(config: ModelConfig, cell: str, seed: int = 0) -> RNNLM:
    """A freshly initialised model of `cell` with the sizes of `config` (PyTorch's default initialisation)."""
    torch.manual_seed(seed)
    return RNNLM(dataclasses.replace(config, cell=cell))


@torch.no_grad()
def set_spectral_radius(module: RNNLM, rho: float) -> None:
    """Scale every layer's W_hh so that its largest |eigenvalue| is `rho` (rnn cells: W_hh is the whole map)."""
    for _, W, _, _ in module.rnn.layer_weights():
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
