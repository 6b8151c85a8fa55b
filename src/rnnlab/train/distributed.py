"""Data-parallel training across processes (`torchrun`), with the hidden state carried per stream.

Launch: `torchrun --nproc-per-node W -m rnnlab train ...`. torchrun sets WORLD_SIZE, RANK and LOCAL_RANK;
`Distributed.from_env()` reads them, and with W = 1 (plain `rnnlab train`) every method here is a no-op.

Why not a DistributedSampler: TBPTT carries each stream's hidden state from chunk k to chunk k + 1, so a
rank must see the *same* streams every step. Rank r owns rows [r·N/W, (r+1)·N/W) of the (N, S) stream
grid, i.e. a disjoint, fixed slice of the N parallel streams. Every rank's loss is a mean over the same
number of tokens (N/W · T), so DistributedDataParallel's gradient average is the gradient of the mean
over all N · T tokens: the same global batch and seed give the same loss curve as one process.

Checkpoints keep the single-process format: rank 0 gathers the full (L, N, H) carried state and writes
it; on load each rank takes its rows, so a run can even resume with a different W (N divisible by it).

Random numbers (dropout masks): a dropout mask is drawn per rank for its own rows, so masks cannot equal
single-process ones. Each rank therefore has its own generator stream: at a fresh start (or when the
world size changed) rank r seeds with `seed + r + W * step`; every checkpoint stores all ranks' generator
states (`rng.dist.cpu`, `rng.dist.cuda`, one row per rank) and a resume with the same W restores row r on
rank r, so a resumed run draws exactly the masks an uninterrupted one would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from rnnlab.errors import RnnlabError
from rnnlab.nn.recurrent import State, state_from_tensors, state_tensors
from rnnlab.rundir import CHECKPOINT


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job: rank r of W (W = 1: a single process, nothing distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Distributed:
        """Read torchrun's WORLD_SIZE / RANK / LOCAL_RANK (absent: a single process)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run directory: checkpoints, weights, metrics, progress."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """On CUDA each rank drives the GPU of its LOCAL_RANK."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def rows(self, batch_size: int) -> slice:
        """This rank's rows of the N parallel streams."""
        if batch_size % self.world:
            raise RnnlabError(
                f"--batch-size {batch_size} must be divisible by the number of processes {self.world} "
                "(each process owns an equal slice of the parallel streams)"
            )
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """DistributedDataParallel around `model` (the model itself when single-process)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # A learned initial state is used only at the start of an epoch: unused on the other steps.
        unused = bool(getattr(getattr(model, "config", None), "learn_init", False))
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> float:
        """The mean of a scalar over ranks (the global loss: every rank scores the same token count)."""
        if not self.enabled:
            return value.item()
        total = value.detach().float().clone()
        dist.all_reduce(total)
        return total.item() / self.world

    def agree(self, stop: bool, elapsed: float, device: torch.device) -> tuple[bool, float]:
        """One decision for all ranks: stop if any rank was asked to; the mean elapsed time (--max-time)."""
        if not self.enabled:
            return stop, elapsed
        values = torch.tensor([float(stop), elapsed], dtype=torch.float64, device=device)
        dist.all_reduce(values)
        return bool(values[0] > 0), values[1].item() / self.world

    def gather_state(self, carried: State | None) -> State | None:
        """The full (L, N, H) carried state from every rank's (L, N/W, H) slice (all ranks receive it)."""
        if not self.enabled or carried is None:
            return carried
        return state_from_tensors([torch.cat(self._all_gather(t), dim=1) for t in state_tensors(carried)])

    def slice_state(self, carried: State | None, batch_size: int) -> State | None:
        """This rank's rows of a full (L, N, H) carried state."""
        if not self.enabled or carried is None:
            return carried
        rows = self.rows(batch_size)
        return state_from_tensors([t[:, rows].contiguous() for t in state_tensors(carried)])

    def rng_tensors(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Every rank's generator states, one row per rank, for the checkpoint (collective)."""
        if not self.enabled:
            return {}
        out = {"rng.dist.cpu": torch.stack(self._all_gather(torch.get_rng_state(), device))}
        if device.type == "cuda":
            out["rng.dist.cuda"] = torch.stack(self._all_gather(torch.cuda.get_rng_state(device), device))
        return out

    def restore_rng(self, run_dir: Path, seed: int, step: int, device: torch.device) -> None:
        """Rank r's generator: its saved row when the checkpoint has W rows, else seeded per rank."""
        if not self.enabled:
            return
        from safetensors import safe_open

        with safe_open(run_dir / CHECKPOINT / "state.safetensors", framework="pt") as f:
            saved = {k: f.get_tensor(k) for k in f.keys() if k.startswith("rng.dist.")}  # noqa: SIM118
        if "rng.dist.cpu" in saved and len(saved["rng.dist.cpu"]) == self.world:
            # clone(): a generator reads a state tensor's storage from its start, whatever the row's offset
            torch.set_rng_state(saved["rng.dist.cpu"][self.rank].clone())
            if device.type == "cuda" and "rng.dist.cuda" in saved:
                torch.cuda.set_rng_state(saved["rng.dist.cuda"][self.rank].clone(), device)
        else:
            torch.manual_seed(seed + self.rank + self.world * step)

    def _all_gather(self, tensor: torch.Tensor, device: torch.device | None = None) -> list[torch.Tensor]:
        """all_gather on `device` (NCCL moves only GPU tensors); results come back where `tensor` lives."""
        moved = tensor.contiguous().to(device or tensor.device)
        parts = [torch.empty_like(moved) for _ in range(self.world)]
        dist.all_gather(parts, moved)
        return [p.to(tensor.device) for p in parts]


@contextmanager
def session(device_setting: str) -> Iterator[Distributed]:
    """Join the process group for the length of a training call (gloo on CPU, NCCL on CUDA).

    A process group created by the caller is used as it is and left open.
    """
    info = Distributed.from_env()
    if not info.enabled or not dist.is_available() or dist.is_initialized():
        if info.enabled and not dist.is_available():
            raise RnnlabError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
        yield info
        return
    cuda = device_setting != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield info
    finally:
        dist.destroy_process_group()


class SilentReporter:
    """What ranks other than 0 report: nothing (rank 0 writes metrics and shows progress)."""

    def __enter__(self) -> SilentReporter:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None
