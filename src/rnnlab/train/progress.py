"""Watching a run learn: a rich progress bar, metrics.jsonl, and TensorBoard when it is installed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rnnlab.config import TrainConfig
from rnnlab.metrics import LN2
from rnnlab.rundir import METRICS
from rnnlab.train.checkpoint import Progress as TrainProgress
from rnnlab.ui import console

PLAIN_EVERY_S = 10.0  # without a terminal, one progress line this often


class Reporter:
    """Receives step and evaluation results; shows them and appends them to metrics.jsonl.

    `run_dir`: where metrics.jsonl (and TensorBoard's events) go; None: nowhere, the bar only. `unit`: what
    the N x T items of a step are called, "tok" for a language model or e.g. "seq" for a sequence app (T = 1:
    N sequences). A language model's loss is also shown in bits per character, as validation is (bits per
    token over `chars_per_token`, the training split's; the same thing for a character model), and beside it
    in bits per token where a token is not one character.
    """

    def __init__(
        self,
        run_dir: Path | None,
        config: TrainConfig,
        total_steps: int,
        show: bool,
        unit: str = "tok",
        chars_per_token: float = 1.0,
    ) -> None:
        self.config, self.total_steps, self.unit, self.chars_per_token = config, total_steps, unit, chars_per_token
        # closed in close()
        self.metrics = open(run_dir / METRICS, "a", encoding="utf-8") if run_dir else None  # noqa: SIM115
        self.show, self.live = show, show and console.is_terminal
        self.bar: Progress | None = None
        self.window: list[float] = []
        self.window_start = time.perf_counter()
        self.window_tokens = 0
        self.last_plain = 0.0
        self.tokens_per_s = 0.0
        self.tensorboard = _tensorboard(run_dir) if run_dir else None

    def __enter__(self) -> Reporter:
        if self.live:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, p: TrainProgress) -> None:
        total, done = self._budget(p)
        if self.bar is not None:
            self.task = self.bar.add_task(f"step {p.step}", total=total, completed=done, stats="")
        if self.show and p.step:
            console.print(f"resuming at step {p.step} (epoch {p.epoch}, chunk {p.chunk})")

    def _budget(self, p: TrainProgress) -> tuple[float | None, float]:
        """Progress-bar units: steps when a step budget is set, else seconds of the time budget."""
        if self.total_steps:
            return self.total_steps, p.step
        if self.config.max_time:
            return self.config.max_time, p.elapsed
        return None, 0

    def step(self, p: TrainProgress, loss: float, lr: float) -> None:
        self.window.append(loss)
        self.window_tokens += self.config.batch_size * self.config.seq_len
        if p.step % self.config.log_every:
            return
        now = time.perf_counter()
        self.tokens_per_s = self.window_tokens / max(now - self.window_start, 1e-9)
        mean = sum(self.window) / len(self.window)
        row = {
            "step": p.step,
            "epoch": p.epoch,
            "lr": lr,
            "train_loss": mean,
            "train_bpc": mean / LN2 / self.chars_per_token,
            "tokens_per_s": self.tokens_per_s,
            "elapsed": p.elapsed,
        }
        self._write(row)
        self.window, self.window_start, self.window_tokens = [], now, 0
        bits = ""
        if self.unit == "tok":
            per_token = f" ({mean / LN2:.3f} bits/token)" if self.chars_per_token != 1.0 else ""
            bits = f"  bits/char {mean / LN2 / self.chars_per_token:.3f}{per_token}"
        stats = f"loss {mean:.3f}{bits}  {self.tokens_per_s:,.0f} {self.unit}/s"
        if self.bar is not None:
            total, done = self._budget(p)
            self.bar.update(self.task, description=f"step {p.step}", completed=done, total=total, stats=stats)
        elif self.show and now - self.last_plain >= PLAIN_EVERY_S:
            self.last_plain = now
            console.print(f"step {p.step}  {stats}  lr {lr:.2e}  {p.elapsed:.0f}s")

    def validating(self, p: TrainProgress) -> None:
        """Say on the bar that validation is under way (it can take a while on a large split)."""
        if self.bar is not None:
            self.bar.update(self.task, description=f"step {p.step}: validating")

    def evaluation(self, p: TrainProgress, val_loss: float, val_bpc: float, improved: bool) -> None:
        self._write({"step": p.step, "val_loss": val_loss, "val_bpc": val_bpc, "best": improved})
        if self.show:
            mark = " (best, saved)" if improved else ""
            console.print(f"step {p.step}: validation {val_bpc:.4f} bits/char{mark}")

    def _write(self, row: dict[str, Any]) -> None:
        if self.metrics is None:
            return
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()
        if self.tensorboard is not None:
            for key, value in row.items():
                if key not in ("step", "best"):  # grouped: val/loss, val/bpc; train/loss, train/lr, ...
                    tag = key.replace("_", "/", 1) if key.startswith(("train_", "val_")) else f"train/{key}"
                    self.tensorboard.add_scalar(tag, value, row["step"])

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def _tensorboard(run_dir: Path) -> Any:
    """A TensorBoard SummaryWriter in run_dir/tensorboard, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
