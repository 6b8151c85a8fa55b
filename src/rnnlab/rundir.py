"""The run directory: a self-describing folder that any rnnlab command can load on any device.

    config.json        model + training config and the rnnlab version
    tokenizer.json     the tokenizer
    model.safetensors  the weights to use (best validation score; last weights without validation)
    metrics.jsonl      one JSON object per log/eval step
    tokens/            the memory-mapped token store (train.bin, val.bin, meta.json)
    checkpoint/        state.safetensors: everything exact resume needs (see rnnlab.train.checkpoint)

Every write is atomic: a temporary file in the same folder, then `os.replace`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnlab.errors import RnnlabError

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors.save_file, made atomic."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or corrupted file is a one-line RnnlabError.

    Each tensor is copied into its own fresh allocation: safetensors hands out views at arbitrary byte
    offsets, and BLAS kernels pick code paths by alignment, so an unaligned weight can round differently
    from the same weight in memory (a loaded model must compute exactly what the saved one did).
    """
    if not path.is_file():
        raise RnnlabError(f"{path} is missing")
    try:
        return {name: tensor.clone() for name, tensor in load_file(path).items()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise RnnlabError(f"{path} is corrupt or truncated ({_first_line(exc)})") from None


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.json of a run directory, or a clear error if `run_dir` is not one."""
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise RnnlabError(f"{run_dir} is not a directory")
    if not path.is_file():
        raise RnnlabError(f"{run_dir} is not an rnnlab run directory (no {CONFIG})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RnnlabError(f"{path} is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(data, dict) or "model" not in data:
        raise RnnlabError(f"{path} is not an rnnlab config (no 'model' section)")
    return data


def load_state_dict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load weights strictly; names or shapes that do not match the config are a clear error."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise RnnlabError(f"{source} does not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, value in tensors.items():
        if value.shape != expected[name].shape:
            raise RnnlabError(
                f"{source}: {name} has shape {tuple(value.shape)}, config.json says {tuple(expected[name].shape)}"
            )
    module.load_state_dict(tensors)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
