"""Two tiny trained runs and a helper that serves an app on a free local port (uvicorn in a thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI

import rnnlab
from rnnlab.serve.app import REQUEST_TIMEOUT, bind, make_server, url

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
def serving(app: FastAPI, request_timeout: float = REQUEST_TIMEOUT) -> Iterator[str]:
    """Run `app` as `rnnlab serve` does (same socket and server limits) on 127.0.0.1 and a free port for the
    duration of the block; yields the base URL."""
    sock = bind("127.0.0.1", 0)
    server = make_server(app, request_timeout=request_timeout)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield url("127.0.0.1", sock)
    finally:
        server.should_exit = True
        thread.join(10)
