"""Checkpoints for exact resume, in one safetensors file (no pickles anywhere).

`checkpoint/state.safetensors` holds tensors named
    model.<param>          the current (not best) weights
    optim.<i>.<key>        optimiser state tensors (Adam moments, step counts, ...)
    state.<i>              the carried hidden state of the N training streams
    rng.cpu / rng.cuda.<i> random-number-generator states
    rng.dist.cpu / .cuda   under torchrun: every rank's generator state, one row per rank
and, as JSON in the file's metadata, the optimiser's non-tensor state and `Progress` (step, epoch,
chunk cursor, best score, learning-rate scale, elapsed time). One file written atomically means a
crash can never leave a checkpoint whose parts disagree.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from rnnlab.errors import RnnlabError
from rnnlab.nn.recurrent import State, state_from_tensors, state_tensors, upgrade_state_dict
from rnnlab.rundir import CHECKPOINT, atomic_save_tensors, load_state_dict, load_tensors, read_metadata

FILE = "state.safetensors"


@dataclass
class Progress:
    """Where training is: everything besides tensors that exact resume needs."""

    step: int = 0  # optimiser steps taken
    epoch: int = 0
    chunk: int = 0  # next chunk of the epoch to read (the data cursor)
    best_val: float = math.inf  # best validation nats/token so far
    best_step: int = -1
    bad_evals: int = 0  # evaluations since the best one (early stopping)
    lr_scale: float = 1.0  # halved on each divergence rollback
    elapsed: float = 0.0  # seconds of training, summed over resumes
    tokens: int = 0  # training tokens consumed

    def to_json(self) -> str:
        data = asdict(self)
        data["best_val"] = None if math.isinf(self.best_val) else self.best_val
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Progress:
        """Parse `to_json`'s output; anything else (an edited or foreign file) raises ValueError."""
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(cls)}:
            raise ValueError("unexpected progress fields")
        data["best_val"] = math.inf if data.get("best_val") is None else data["best_val"]
        progress = cls(**data)
        for f in fields(cls):
            value = getattr(progress, f.name)
            kind = int if f.type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
                raise ValueError(f"progress.{f.name} is {value!r}")
            if value < (-1 if f.name == "best_step" else 0) or (kind is float and math.isnan(value)):
                raise ValueError(f"progress.{f.name} is {value!r}")
        if not (math.isfinite(progress.elapsed) and 0 < progress.lr_scale <= 1):
            raise ValueError("progress has an impossible elapsed time or learning-rate scale")
        return progress


def save_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    carried: State | None,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write checkpoint/state.safetensors atomically; `extra` tensors (per-rank RNG states) ride along."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim_state = optimizer.state_dict()
    plain: dict[str, Any] = {"param_groups": optim_state["param_groups"], "state": {}}
    for index, entries in optim_state["state"].items():
        plain["state"][str(index)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                plain["state"][str(index)][key] = value
    for i, t in enumerate(state_tensors(carried)):
        tensors[f"state.{i}"] = t
    tensors["rng.cpu"] = torch.get_rng_state()
    tensors.update(extra or {})
    if torch.cuda.is_available():
        for i, t in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = t
    folder = run_dir / CHECKPOINT
    folder.mkdir(exist_ok=True)
    metadata = {"progress": progress.to_json(), "optimizer": json.dumps(plain)}
    atomic_save_tensors(folder / FILE, tensors, metadata)


def load_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    batch_size: int | None = None,
) -> tuple[Progress, State | None]:
    """Restore model, optimiser and RNG states in place; return the progress and carried state.

    A checkpoint that does not fit (another optimiser, a carried state for other than `batch_size`
    streams, missing parts) is an RnnlabError, raised before the global RNG is touched.
    """
    path = run_dir / CHECKPOINT / FILE
    if not path.is_file():
        raise RnnlabError(f"{run_dir} has no checkpoint to resume from ({CHECKPOINT}/{FILE} is missing)")
    tensors = load_tensors(path)
    metadata = read_metadata(path)
    try:
        progress = Progress.from_json(metadata["progress"])
        plain = json.loads(metadata["optimizer"])
        optim_state: dict[str, Any] = {"param_groups": plain["param_groups"], "state": {}}
        for index, entries in plain["state"].items():
            optim_state["state"][int(index)] = dict(entries)
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                optim_state["state"].setdefault(int(index), {})[name] = value.to(device)
        rng = tensors["rng.cpu"]
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise RnnlabError(f"{path} has no readable training state ({exc})") from None

    weights = upgrade_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    load_state_dict(model, weights, path)
    _load_optimizer(optimizer, optim_state, path)
    count = sum(1 for k in tensors if k.startswith("state."))
    carried = state_from_tensors([tensors[f"state.{i}"].to(device) for i in range(count)])
    if batch_size is not None:
        for t in state_tensors(carried):
            if t.dim() < 2 or t.shape[1] != batch_size:
                raise RnnlabError(
                    f"{path} carries the state of {t.shape[1] if t.dim() >= 2 else '?'} streams, "
                    f"not --batch-size {batch_size}; --batch-size cannot change on --resume"
                )
    try:
        torch.set_rng_state(rng)
    except (RuntimeError, TypeError) as exc:
        raise RnnlabError(f"{path} has an unreadable random-number state ({exc})") from None
    cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    return progress, carried


def _load_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any], path: Path) -> None:
    """optimizer.load_state_dict, with a mismatch (another optimiser's state) as one clear error."""
    expected = optimizer.state_dict()
    try:
        groups = state["param_groups"]
        same = len(groups) == len(expected["param_groups"]) and all(
            set(saved) == set(mine) and len(saved["params"]) == len(mine["params"])
            for saved, mine in zip(groups, expected["param_groups"], strict=True)
        )
        if not same:
            raise ValueError("its parameter groups differ")
        optimizer.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise RnnlabError(
            f"{path} holds the state of another optimiser or model ({str(exc).splitlines()[0][:120]}); "
            "--optimizer cannot change on --resume"
        ) from None
