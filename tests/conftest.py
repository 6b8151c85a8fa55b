"""Shared fixtures: small deterministic corpora and one tiny trained run reused by many tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import rnnlab

torch.set_num_threads(1)  # deterministic and fair on the 2-core CI machine


def make_text(n_chars: int = 30_000, seed: int = 0) -> str:
    """Python-like text with real structure (indentation, keywords, brackets) for models to learn."""
    rng = random.Random(seed)
    names = ["value", "items", "count", "result", "node", "left", "right", "key", "data", "index"]
    lines: list[str] = []
    while sum(len(line) + 1 for line in lines) < n_chars:
        fn, arg = rng.choice(names), rng.choice(names)
        lines += [
            f"def {fn}_{rng.randint(0, 99)}({arg}):",
            f'    """Return the {fn} of {arg}."""',
            f"    if {arg} is None:",
            f"        return {rng.randint(0, 9)}",
            f"    return [{arg}[i] + {rng.randint(1, 9)} for i in range(len({arg}))]",
            "",
        ]
    return "\n".join(lines)[:n_chars]


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "code.py"
    path.write_text(make_text())
    return path


TINY = {"preset": "tiny", "hidden": 48, "embed": 16, "batch_size": 8, "seq_len": 32, "progress": False}


@pytest.fixture
def tiny() -> dict:
    """Options for a tiny, fast model (a fresh copy per test)."""
    return dict(TINY)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """A tiny LSTM trained for a few seconds: enough to beat chance clearly, fast enough to share."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    rnnlab.train([str(corpus_file)], out=out, max_steps=150, eval_every=50, lr=1e-2, **TINY)
    return out


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str, str]]:
    """Run `rnnlab ARGS` in-process: cli(*args) returns (exit status, stdout, stderr)."""
    from rnnlab.cli.app import main

    def invoke(*args: object) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
