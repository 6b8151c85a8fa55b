"""Record every hidden unit at every character, and rank units by how well they track a feature.

The model is run one token at a time; after each step the returned state holds every part of every layer's
state (h, and the LSTM's cell state c), so the recording is exact and needs no access to the fused kernels'
internals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnlab.errors import RnnlabError
from rnnlab.lm.model import LanguageModel
from rnnlab.nn import registry


@dataclass
class Recording:
    """Activations after each character of `text`: {"h0": (T, H), "c0": (T, H), "h1": ...}."""

    text: str
    activations: dict[str, np.ndarray]

    def matrix(self) -> tuple[np.ndarray, list[tuple[str, int]]]:
        """All units side by side (T, U) and, for each column, its (layer name, unit index)."""
        names = [(name, unit) for name, acts in self.activations.items() for unit in range(acts.shape[1])]
        return np.concatenate(list(self.activations.values()), axis=1), names


@dataclass
class UnitScore:
    """One unit's Pearson correlation with one feature."""

    layer: str
    unit: int
    r: float


@torch.no_grad()
def record(lm: LanguageModel, text: str, max_chars: int | None = None) -> Recording:
    """Run `lm` over `text` (its first `max_chars` characters) one token at a time, keeping every state.

    A token that completes no character (the leading bytes of a multi-byte UTF-8 character under a byte
    tokenizer) is not a position of its own: the character is credited with the state after its last byte.
    """
    if max_chars is not None:
        text = text[:max_chars]
    if not text:
        raise RnnlabError("nothing to probe: the input text is empty")
    module = lm.module.eval()
    spec = registry.get(module.config.cell)
    if not spec.per_unit:
        raise RnnlabError(f"--cell {spec.name} has no state of one value per unit to record ({', '.join(spec.state)})")
    ids = lm.tokenizer.encode(text)
    decode = lm.tokenizer.decoder()
    state = None
    chars: list[str] = []
    # h0, c0, h1, c1, ...: layer by layer, the state's parts in their order
    rows: dict[str, list[np.ndarray]] = {f"{part}{i}": [] for i in range(module.config.layers) for part in spec.state}
    for token in ids.tolist():
        step = torch.tensor([[token]], device=lm.device)
        _, state, _ = module(step, state)
        piece = decode(token)
        if not piece:
            continue
        parts = state if isinstance(state, tuple) else (state,)
        for part, tensor in zip(spec.state, parts, strict=True):
            for layer in range(tensor.shape[0]):
                rows[f"{part}{layer}"].extend([tensor[layer, 0].float().cpu().numpy()] * len(piece))
        chars.append(piece)
    activations = {name: np.stack(values) for name, values in rows.items() if values}
    return Recording("".join(chars), activations)


def pearson(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each column of X (T, U) with y (T,); 0 where either side is constant."""
    Xc = X - X.mean(axis=0)
    yc = y - y.mean()
    denom = np.sqrt((Xc**2).sum(axis=0) * (yc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (Xc * yc[:, None]).sum(axis=0) / denom
    return np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)


def rank_units(recording: Recording, feature: np.ndarray, top: int = 5) -> list[UnitScore]:
    """The `top` units with the largest |Pearson r| with `feature` (one value per character)."""
    X, names = recording.matrix()
    if len(feature) != X.shape[0]:
        raise ValueError(f"feature has {len(feature)} values for {X.shape[0]} characters")
    r = pearson(X.astype(np.float64), feature.astype(np.float64))
    order = np.argsort(-np.abs(r), kind="stable")[:top]
    return [UnitScore(names[i][0], names[i][1], float(r[i])) for i in order]


def rank_all(recording: Recording, features: dict[str, np.ndarray], top: int = 5) -> dict[str, list[UnitScore]]:
    """`rank_units` for every feature; constant features (all 0 in this text) get an empty list."""
    return {name: rank_units(recording, values, top) if np.ptp(values) > 0 else [] for name, values in features.items()}
