"""Slow and incomplete clients against a real server on a raw socket: each request must arrive within the
request timeout, or the connection is closed; requests that do arrive in time, and long answers, are unaffected."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rnnlab.lm.model import LanguageModel
from rnnlab.serve.app import MAX_CONNECTIONS, MAX_HEADERS, create_app

from .conftest import serving

TIMEOUT = 0.5  # the request timeout these servers run with
REQUEST = b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def port(serve_runs: list[Path]) -> Iterator[int]:
    with serving(create_app(serve_runs), request_timeout=TIMEOUT) as url:
        yield int(url.rsplit(":", 1)[1])


def closed_after(sock: socket.socket, start: float) -> float:
    """Seconds from `start` until the server closes `sock` (asserting it sends nothing first), at most 5."""
    sock.settimeout(5)
    assert sock.recv(4096) == b""
    return time.monotonic() - start


def read_response(sock: socket.socket) -> bytes:
    """One complete response with a Content-Length body."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
    while len(body) < length:
        body += sock.recv(4096)
    return head


@pytest.mark.parametrize(
    "partial",
    [
        b"",  # connects and says nothing
        b"GET /api/models HT",  # part of the request line
        b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",  # part of the headers
        b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50\r\n\r\n{",  # part of the body
    ],
)
def test_an_incomplete_request_is_disconnected_after_the_timeout(port: int, partial: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.monotonic()
        sock.sendall(partial)
        assert TIMEOUT * 0.8 < closed_after(sock, start) < TIMEOUT + 2


def test_a_trickle_of_header_bytes_does_not_extend_the_deadline(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(0.05)
        closed = False
        while not closed and time.monotonic() - start < 5:
            try:
                sock.sendall(b"X-Pad: 1\r\n")
                closed = sock.recv(4096) == b""
            except TimeoutError:
                continue
            except OSError:  # reset: the server had closed it
                closed = True
        assert closed and time.monotonic() - start < TIMEOUT + 2


def test_a_request_split_across_packets_within_the_timeout_is_answered(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for piece in (REQUEST[:10], REQUEST[10:30], REQUEST[30:]):
            sock.sendall(piece)
            time.sleep(TIMEOUT / 5)
        assert read_response(sock).startswith(b"HTTP/1.1 200")


def test_each_request_on_a_kept_alive_connection_gets_its_own_deadline(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(3):  # spaced out over more than one timeout in all
            time.sleep(TIMEOUT / 2)
            sock.sendall(REQUEST)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        sock.sendall(REQUEST[:20])  # then a next request that stalls
        assert closed_after(sock, start) < TIMEOUT + 2


def test_headers_still_incomplete_past_the_size_limit_are_refused_at_once(port: int) -> None:
    """The server buffers at most MAX_HEADERS bytes of an unfinished head, then answers 400, before the deadline."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * MAX_HEADERS)
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
        assert time.monotonic() - start < TIMEOUT * 0.8


def test_a_stream_longer_than_the_request_timeout_is_not_cut(
    serve_runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_stream(self: LanguageModel, prime: str, length: int, **options: object) -> Iterator[str]:
        for _ in range(length):
            time.sleep(TIMEOUT / 4)
            yield "x"

    monkeypatch.setattr(LanguageModel, "stream", slow_stream)
    with serving(create_app(serve_runs), request_timeout=TIMEOUT) as url:
        res = httpx.post(f"{url}/api/generate", json={"model": "tiny-lstm", "length": 8}, timeout=10)
    assert res.status_code == 200 and res.elapsed.total_seconds() > TIMEOUT * 1.5
    assert res.text.count('data: {"text": "x"}') == 8 and res.text.endswith("event: done\ndata: {}\n\n")


def test_connections_beyond_the_limit_get_503(serve_runs: list[Path]) -> None:
    with serving(create_app(serve_runs), request_timeout=10) as url:
        port = int(url.rsplit(":", 1)[1])
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(MAX_CONNECTIONS)]
        try:
            res = httpx.get(f"{url}/api/models", timeout=5)
            assert res.status_code == 503
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 5
        while (res := httpx.get(f"{url}/api/models", timeout=5)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)  # the server notices the closed connections
        assert res.status_code == 200
