"""The playground's limits over real HTTP: admission to model work, hostile parameters, body size, Host names."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import rnnlab.analysis.cells
from rnnlab.serve.app import MAX_BODY, allowed_hosts, create_app

from .conftest import serving


@pytest.fixture(scope="module")
def base(serve_runs: list[Path]) -> Iterator[str]:
    with serving(create_app(serve_runs, max_concurrent=2)) as url:
        yield url


class Blocked:
    """Makes `record` (the activations endpoint's model work) wait until released, counting who entered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        real = rnnlab.analysis.cells.record

        def record(lm: Any, text: str) -> Any:
            self.entered.release()
            self.release.wait(10)
            return real(lm, text)

        monkeypatch.setattr(rnnlab.analysis.cells, "record", record)


def post_in_thread(url: str, body: dict, results: list[httpx.Response]) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(httpx.post(url, json=body, timeout=15)), daemon=True)
    thread.start()
    return thread


def test_activations_are_admitted_up_to_the_limit_then_refused_with_429(
    serve_runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With max_concurrent=1 and max_waiting=1, of three activation requests one computes, one waits and one is
    refused at once with a reason; while full, a generation is refused too; then the two admitted ones finish
    and their places are given back."""
    blocked = Blocked(monkeypatch)
    body = {"model": "tiny-lstm", "text": "def value", "layer": "h0", "unit": 1}
    with serving(create_app(serve_runs, max_concurrent=1, max_waiting=1)) as url:
        results: list[httpx.Response] = []
        threads = [post_in_thread(f"{url}/api/activations", body, results) for _ in range(3)]
        assert blocked.entered.acquire(timeout=10)  # one is computing
        deadline = time.monotonic() + 10
        while not results and time.monotonic() < deadline:  # the refused one answers at once
            time.sleep(0.01)
        assert [r.status_code for r in results] == [429], [r.text for r in results]
        assert "server busy: 2 model requests" in results[0].json()["detail"]
        assert results[0].headers["retry-after"] == "1"
        generation = httpx.post(f"{url}/api/generate", json={"model": "tiny-gru", "length": 3}, timeout=5)
        assert generation.status_code == 429 and "server busy" in generation.json()["detail"]
        assert not blocked.entered.acquire(timeout=0.2)  # the waiting one did not start computing
        blocked.release.set()
        for thread in threads:
            thread.join(15)
        assert sorted(r.status_code for r in results) == [200, 200, 429]
        assert results[1].json() == results[2].json()
        assert httpx.post(f"{url}/api/activations", json=body, timeout=5).status_code == 200


def test_requests_refused_before_computing_give_their_place_back(serve_runs: list[Path]) -> None:
    with serving(create_app(serve_runs, max_concurrent=1, max_waiting=0)) as url:
        for _ in range(3):
            bad_prime = httpx.post(f"{url}/api/generate", json={"model": "tiny-lstm", "prime": "\u00e9", "length": 2})
            assert bad_prime.status_code == 400
            assert httpx.post(f"{url}/api/generate", json={"model": "nope", "length": 2}).status_code == 404
            no_layer = {"model": "tiny-gru", "text": "def", "layer": "c0"}
            assert httpx.post(f"{url}/api/activations", json=no_layer).status_code == 400
        ok = httpx.post(f"{url}/api/generate", json={"model": "tiny-lstm", "length": 2})
        assert ok.status_code == 200 and ok.text.endswith("event: done\ndata: {}\n\n")


@pytest.mark.parametrize(
    ("path", "raw", "status", "match"),
    [
        ("generate", b'{"model": "tiny-lstm", "temperature": NaN}', 422, "temperature: Input should be a finite"),
        ("generate", b'{"model": "tiny-lstm", "temperature": Infinity}', 422, "temperature: Input should be a finite"),
        ("generate", b'{"model": "tiny-lstm", "top_p": -Infinity}', 422, "top_p: Input should be a finite number"),
        ("generate", b'{"model": "tiny-lstm", "top_p": 1e999}', 422, "top_p: Input should be a finite number"),
        ("generate", b'{"model": "tiny-lstm", "length": 1000000000000}', 422, "length: Input should be less than"),
        ("generate", b'{"model": "tiny-lstm", "length": 0}', 422, "length: Input should be greater than"),
        ("generate", b'{"model": "tiny-lstm", "top_k": 1000000000000000000000000000000}', 422, "top_k"),
        ("generate", b'{"model": "tiny-lstm", "seed": 1000000000000000000000000000000}', 422, "seed"),
        ("generate", b'{"model": "tiny-lstm", "seed": -1}', 422, "seed: Input should be greater than or equal"),
        ("generate", b'{"model": "tiny-lstm", "prime": "\\ud800"}', 422, "prime: Input should be a valid string"),
        ("generate", b'{"model": "tiny-lstm", "length": "many"}', 422, "length: Input should be a valid integer"),
        ("generate", b"[1, 2]", 422, "body"),
        ("activations", b'{"model": "tiny-lstm", "text": "def", "unit": 1000000000000}', 400, "unit 1000000000000 out"),
        ("activations", b'{"model": "tiny-lstm", "text": "def", "unit": -1}', 422, "unit: Input should be greater"),
        ("activations", b'{"model": "tiny-lstm", "text": "def", "layer": "h99999"}', 422, "layer: String should match"),
        ("activations", b'{"model": "tiny-lstm", "text": "def", "layer": "h7"}', 400, "layer 'h7' does not exist"),
        ("activations", b'{"model": "tiny-lstm", "text": "\\udfff"}', 422, "text: Input should be a valid string"),
        ("activations", b'{"model": "tiny-lstm", "text": ""}', 422, "text: String should have at least 1"),
    ],
)
def test_hostile_parameters_get_a_one_line_4xx(base: str, path: str, raw: bytes, status: int, match: str) -> None:
    res = httpx.post(f"{base}/api/{path}", content=raw, headers={"Content-Type": "application/json"})
    assert res.status_code == status, res.text
    detail = res.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and match in detail, detail


def test_bodies_over_the_limit_get_413(base: str) -> None:
    big = b'{"model": "tiny-lstm", "prime": "' + b"x" * MAX_BODY + b'"}'
    res = httpx.post(f"{base}/api/generate", content=big, headers={"Content-Type": "application/json"})
    assert res.status_code == 413 and f"over {MAX_BODY} bytes" in res.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked, counted as it arrives
        yield b'{"model": "tiny-lstm", "prime": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    res = httpx.post(f"{base}/api/generate", content=chunks(), headers={"Content-Type": "application/json"})
    assert res.status_code == 413 and f"over {MAX_BODY} bytes" in res.json()["detail"]
    fits = {"model": "tiny-lstm", "prime": "\u00e9" * 4000, "length": 1}  # under the limit: reaches the model
    res = httpx.post(f"{base}/api/generate", json=fits)
    assert res.status_code == 400 and "vocabulary" in res.json()["detail"]


def test_host_header_must_name_this_machine(base: str) -> None:
    port = base.rsplit(":", 1)[1]
    for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "LocalHost", f"[::1]:{port}", "[::1]"):
        res = httpx.get(f"{base}/api/models", headers={"Host": host})
        assert res.status_code == 200, (host, res.text)
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example:80", ""):
        for method, path in (("GET", "/"), ("GET", "/api/models"), ("POST", "/api/generate")):
            res = httpx.request(method, f"{base}{path}", json={"model": "tiny-lstm"}, headers={"Host": host})
            assert res.status_code == 400, (host, path, res.text)
            assert res.json()["detail"].startswith(f"Host {host!r} is not allowed"), res.text
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as sock:  # HTTP/1.0 without Host
        sock.sendall(b"GET /api/models HTTP/1.0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")


def test_host_names_follow_the_bound_host(serve_runs: list[Path]) -> None:
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("::") is None
    assert allowed_hosts("::1") == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts("Box.Test") == {"127.0.0.1", "localhost", "[::1]", "box.test"}
    named = create_app(serve_runs, host="box.test")
    with TestClient(named, base_url="http://box.test:8000") as client:
        assert client.get("/api/models").status_code == 200
        evil = client.get("/api/models", headers={"Host": "evil.example"})
        assert evil.status_code == 400 and "box.test" in evil.json()["detail"]
    with TestClient(create_app(serve_runs, host="0.0.0.0"), base_url="http://evil.example") as client:
        assert client.get("/api/models").status_code == 200  # every interface: any name
    with TestClient(create_app(serve_runs), base_url="http://evil.example") as client:
        assert client.get("/api/models").status_code == 400
