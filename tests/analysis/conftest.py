"""A tiny trained LSTM on Python-like text, shared by the analysis tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import rnnlab


def python_like(n_lines: int = 400, seed: int = 0) -> str:
    """Python-like text with strings, comments, brackets and if conditions."""
    rng = random.Random(seed)
    names = ["value", "items", "count", "node", "key"]
    lines = []
    for _ in range(n_lines // 4):
        a, b = rng.choice(names), rng.choice(names)
        lines += [
            f"def {a}_{rng.randint(0, 9)}({b}):",
            f'    if {b} is None:  # "{a}" missing',
            f'        return "{b}"',
            f"    return [{b}[i] + {rng.randint(1, 9)} for i in range(len({b}))]",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("probe-corpus") / "code.py"
    path.write_text(python_like())
    return path


@pytest.fixture(scope="session")
def probe_run(tmp_path_factory: pytest.TempPathFactory, text_file: Path) -> Path:
    out = tmp_path_factory.mktemp("probe-runs") / "run"
    rnnlab.train(
        [str(text_file)],
        out=out,
        preset="tiny",
        hidden=32,
        embed=8,
        batch_size=8,
        seq_len=32,
        max_steps=30,
        progress=False,
    )
    return out
