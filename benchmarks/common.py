"""Helpers shared by the benchmark scripts: where the data is, what machine ran them, writing results."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from rnnlab.train.precision import resolve_precision

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RNNLAB_SHARED", ROOT.parent / "shared")) / "data"
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> str:
    """One line: CPU model (with family/model and vector level, since one model name covers several
    generations), cores, PyTorch version, threads."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = fields.get("model name") or platform.processor() or "unknown CPU"
    details = [f"family {fields['cpu family']} model {fields['model']}"] if "cpu family" in fields else []
    details.append(torch.backends.cpu.get_cpu_capability())
    details.append("native bf16" if resolve_precision("auto", torch.device("cpu")) == "bf16" else "no native bf16")
    return (
        f"{cpu} ({', '.join(details)}), {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )


def corpus(name: str, split: str) -> Path | None:
    """Path of ../shared/data/<name>/<split>.* or None when the shared data is absent."""
    folder = SHARED / name
    matches = sorted(folder.glob(f"{split}.*")) if folder.is_dir() else []
    return matches[0] if matches else None


def write_result(filename: str, title: str, body: str, command: str | None = None) -> Path:
    """Write benchmarks/results/<filename> with the command that produced it (this process's, unless a page
    collected from several runs names its own) and the machine."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = command or " ".join([Path(sys.executable).name, *[str(a) for a in sys.argv]])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    text = (
        f"# {title}\n\n"
        f"- command: `{command}`\n"
        f"- machine: {machine()}\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M')} (commit {commit.stdout.strip() or 'unknown'})\n\n"
        f"{body.strip()}\n"
    )
    path = RESULTS / filename
    path.write_text(text)
    return path
