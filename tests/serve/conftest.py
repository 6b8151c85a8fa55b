"""A tiny trained run and a helper that serves an app on a free local port (uvicorn in a thread)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

import rnnlab

TEXT = "def value(items):\n    if items is None:\n        return [items[i] + 1 for i in range(len(items))]\n" * 60


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny runs (lstm, gru): the served models."""
    root = tmp_path_factory.mktemp("serve")
    (root / "code.py").write_text(TEXT)
    runs = []
    for cell in ("lstm", "gru"):
        out = root / f"tiny-{cell}"
        rnnlab.train(
            [str(root / "code.py")], out=out, preset="tiny", cell=cell, hidden=32, embed=8,
            batch_size=8, seq_len=32, max_steps=30, progress=False,
        )  # fmt: skip
        runs.append(out)
    return runs


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run `app` on 127.0.0.1 and a free port for the duration of the block; yields the base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
