"""The sequence models' side of vector sequences (video frames, sensor readings): the input layer that stands
where a token model has its embedding (`FeatureInput`), padding, what a run records about its inputs, and
`rnnlab info`'s lines for such a run. The data and its files (NPZ, NPY, CSV) are `rnnlab.data.vectors`,
re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnlab.data.vectors import VectorSequences, is_vector_file, read_vector_sequences, write_vector_sequences
from rnnlab.errors import RnnlabError
from rnnlab.rundir import WEIGHTS, tensor_shapes

__all__ = [
    "FeatureInput",
    "VectorSequences",
    "describe",
    "inputs_record",
    "is_vector_file",
    "pad_vectors",
    "read_vector_sequences",
    "recorded_features",
    "write_vector_sequences",
]


def pad_vectors(sequences: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Right-pad (T_i, F) arrays with zeros into (N, T, F) plus their lengths (N,)."""
    tensors = [torch.from_numpy(np.asarray(s, dtype=np.float32)) for s in sequences]
    return nn.utils.rnn.pad_sequence(tensors, batch_first=True), torch.as_tensor([len(s) for s in sequences])


def inputs_record(features: int) -> dict[str, Any]:
    """What config.json records of a model that reads vector sequences of `features` features per frame."""
    return {"inputs": "vectors", "features": features}


def recorded_features(config: dict[str, Any], run_dir: Path) -> int:
    """F from a run's config.json for a model of vector sequences, 0 for one of tokens (also a run that
    predates `inputs`); anything else is one RnnlabError."""
    inputs, features = config.get("inputs", "tokens"), config.get("features")
    if inputs == "tokens":
        return 0
    if inputs != "vectors" or not isinstance(features, int) or isinstance(features, bool) or features < 1:
        raise RnnlabError(f"{Path(run_dir) / 'config.json'}: `inputs` must be tokens, or vectors with `features` >= 1")
    return features


class FeatureInput(nn.Module):
    """(N, T, F) raw frames -> (N, T, D), where a token model has its embedding: each feature standardised with
    the training set's mean and standard deviation (buffers, so they are saved with the weights), then a linear
    projection to D."""

    def __init__(self, features: int, size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.project = nn.Linear(features, size)

    def fit(self, sequences: Sequence[np.ndarray]) -> None:
        """Set the standardisation from every frame of the training sequences (a constant feature keeps std 1)."""
        frames = np.concatenate(sequences).astype(np.float64)
        std = frames.std(0)
        self.mean.copy_(torch.from_numpy(frames.mean(0)))
        self.std.copy_(torch.from_numpy(np.where(std > 1e-8, std, 1.0)))

    def forward(self, x: Tensor) -> Tensor:
        return self.project((x - self.mean) / self.std)


def describe(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """`rnnlab info` lines for a classify or tag run that reads vector sequences (config.json's `inputs` is
    `vectors`): the model, its trained parameters, what it reads and how it was trained."""
    m = config.get("model") if isinstance(config.get("model"), dict) else {}
    names = config.get("labels") if config.get("kind") == "classify" else config.get("tags")
    names = names if isinstance(names, list) else []
    head = f"{len(names)} classes" if config.get("kind") == "classify" else f"one of {len(names)} tags per frame"
    stack = f"{m.get('layers', '?')} x {m.get('cell', '?')} {m.get('hidden', '?')}"
    weights = Path(run_dir) / WEIGHTS
    buffers = ("embed.mean", "embed.std")  # the standardisation: recorded, not trained
    shapes = tensor_shapes(weights) if weights.exists() else None
    params = "?" if shapes is None else f"{sum(math.prod(s) for n, s in shapes.items() if n not in buffers):,}"
    shown = ", ".join(str(name) for name in names[:8]) + (f" ... ({len(names)} in all)" if len(names) > 8 else "")
    return [
        f"model        {config.get('features', '?')} features -> linear {m.get('embed', '?')} -> {stack} -> {head}, "
        f"dropout {m.get('dropout', '?')}",
        f"parameters   {params}",
        f"data         vector sequences, each feature standardised with the training frames' mean and std; "
        f"{'labels' if config.get('kind') == 'classify' else 'tags'} {shown}",
        f"training     Adam lr {m.get('lr', '?')}, batch {m.get('batch_size', '?')}, "
        f"{m.get('steps', '?')} steps at most, seed {m.get('seed', '?')}",
    ]
