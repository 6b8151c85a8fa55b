"""Loss curves: bits per character against training step, from the metrics.jsonl of one or more runs.

Training draws its own run's curves into `RUN/loss.png` as it goes (at validations, at most every
`REFRESH_S` seconds, and at the end); `rnnlab plot RUN [RUN ...] --output FILE` draws several runs on one
figure. Training bits per character is the mean over each logging window (bits per token over the training
split's characters per token, see rnnlab.train.progress); validation is the held-out split's.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from rnnlab.errors import RnnlabError
from rnnlab.rundir import METRICS, atomic_write_bytes, read_run

CURVES = "loss.png"  # in the run directory
REFRESH_S = 30.0  # training redraws the figure at a validation at most this often


def read_metrics(run_dir: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, train bits per char) and (step, validation bits per char) rows of a run; a damaged line is an
    RnnlabError naming the file, a run without rows gives empty lists."""
    path = Path(run_dir) / METRICS
    train, val = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    except OSError as exc:
        raise RnnlabError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            if "train_bpc" in row:
                train.append((int(row["step"]), float(row["train_bpc"])))
            if "val_bpc" in row:
                val.append((int(row["step"]), float(row["val_bpc"])))
        except (ValueError, TypeError, KeyError):
            raise RnnlabError(f"{path}, line {number}: not a metrics row") from None
    return train, val


def render(run_dirs: list[Path]) -> bytes:
    """A PNG of every run's training (thin) and validation (thick, dots) curves, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        for i, run_dir in enumerate(run_dirs):
            train, val = read_metrics(run_dir)
            colour, name = f"C{i % 10}", Path(run_dir).name
            if train:
                ax.plot(*zip(*train, strict=True), color=colour, linewidth=0.8, alpha=0.6, label=f"{name} train")
            if val:
                ax.plot(*zip(*val, strict=True), color=colour, linewidth=2, marker="o", label=f"{name} validation")
        ax.set_xlabel("step")
        ax.set_ylabel("bits per character")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no metrics yet", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def write_curves(run_dir: Path) -> None:
    """Redraw `run_dir/loss.png` (atomically: a viewer never sees half a file)."""
    atomic_write_bytes(Path(run_dir) / CURVES, render([Path(run_dir)]))


def check_runs(run_dirs: list[Path]) -> None:
    """Every path is a language-model run, rnnlab's or the NumPy reference's (`rnnlab plot` reads their metrics)."""
    if not run_dirs:
        raise RnnlabError("give at least one run directory")
    for run_dir in run_dirs:
        read_run(run_dir, ("lm", "reference"))
