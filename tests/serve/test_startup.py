"""`rnnlab serve` start-up: bad run directories and ports are one `error:` line and exit status 2 before any
server runs; a good start prints its URL; a run damaged after start-up gets a 409 with the reason, never a 500."""

from __future__ import annotations

import errno
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from rnnlab.serve.app import create_app

from .conftest import serving

CLI = Callable[..., tuple[int, str, str]]


def one_error_line(result: tuple[int, str, str], match: str) -> None:
    code, out, err = result
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1 and match in err, err


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def change_hidden(path: Path) -> None:
    path.write_text(path.read_text().replace('"hidden": 32', '"hidden": 33'))


@pytest.fixture
def run_copy(serve_runs: list[Path], tmp_path: Path) -> Path:
    """A private copy of the tiny LSTM run, free to damage."""
    return Path(shutil.copytree(serve_runs[0], tmp_path / "run"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("name", "damage", "match"),
    [
        ("config.json", lambda p: p.write_text("{not json"), "config.json is not valid JSON"),
        ("config.json", change_hidden, "model.safetensors"),
        ("tokenizer.json", lambda p: p.write_text("[1, 2"), "tokenizer.json"),
        ("model.safetensors", truncate, "model.safetensors is corrupt or truncated"),
        ("model.safetensors", Path.unlink, "model.safetensors is missing"),
    ],
)
def test_a_bad_run_directory_is_refused_before_serving(
    cli: CLI, run_copy: Path, serve_runs: list[Path], name: str, damage: Callable[[Path], object], match: str
) -> None:
    damage(run_copy / name)
    one_error_line(cli("serve", serve_runs[1], run_copy, "--port", "0"), match)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_a_port_out_of_range_is_refused(cli: CLI, serve_runs: list[Path], port: str) -> None:
    one_error_line(cli("serve", serve_runs[0], "--port", port), f"--port must be between 0 and 65535, got {port}")


@pytest.mark.timeout(60)
def test_a_port_in_use_is_refused(cli: CLI, serve_runs: list[Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_error_line(cli("serve", serve_runs[0], "--port", port), f"cannot listen on 127.0.0.1:{port}: Address")


@pytest.mark.timeout(60)
def test_an_address_that_cannot_be_bound_is_refused(
    cli: CLI, serve_runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 192.0.2.1 is reserved for documentation (RFC 5737): no interface of this machine has it
    one_error_line(cli("serve", serve_runs[0], "--host", "192.0.2.1", "--port", "0"), "cannot listen on 192.0.2.1:0")

    def denied(self: socket.socket, address: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket.socket, "bind", denied)  # as for a port under 1024 without the privilege
    one_error_line(cli("serve", serve_runs[0], "--port", "80"), "cannot listen on 127.0.0.1:80: Permission denied")


@pytest.mark.slow  # a fresh interpreter importing torch
@pytest.mark.timeout(60)
def test_the_command_prints_its_url_and_serves_there(serve_runs: list[Path]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnlab", "serve", str(serve_runs[0]), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
    try:
        line = lines.get(timeout=40)
        assert line.startswith("serving on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")  # type: ignore[union-attr]
        base = line.split()[-1]
        models = httpx.get(f"{base}/api/models", timeout=10)
        assert models.status_code == 200 and [m["id"] for m in models.json()] == ["tiny-lstm"]
        assert httpx.get(f"{base}/api/models", headers={"Host": "evil.example"}, timeout=10).status_code == 400
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]


def test_a_run_damaged_after_start_up_gets_409_with_the_reason(run_copy: Path) -> None:
    """Each request notices changed files and loads the run again: damaged, a 409 with the reason; repaired,
    the same samples as before."""
    generate = {"model": "run", "length": 20, "seed": 1}
    activations = {"model": "run", "text": "def"}
    weights, config = run_copy / "model.safetensors", run_copy / "config.json"
    good_weights, good_config = weights.read_bytes(), config.read_bytes()
    with serving(create_app([run_copy])) as url:
        before = httpx.post(f"{url}/api/generate", json=generate)
        assert before.status_code == 200
        truncate(weights)
        for path, body in (("generate", generate), ("activations", activations)):
            res = httpx.post(f"{url}/api/{path}", json=body)
            assert res.status_code == 409, res.text
            detail = res.json()["detail"]
            assert detail.startswith("model 'run' changed on disk and no longer loads: ") and "\n" not in detail
            assert "model.safetensors is corrupt or truncated" in detail
        assert httpx.get(f"{url}/api/models").status_code == 200  # the listing is still served
        config.write_text("{not json")
        weights.write_bytes(good_weights)  # repaired, but config.json is now bad
        res = httpx.post(f"{url}/api/activations", json=activations)
        assert res.status_code == 409 and "config.json is not valid JSON" in res.json()["detail"]
        config.write_bytes(good_config)
        after = httpx.post(f"{url}/api/generate", json=generate)
        assert after.status_code == 200 and after.text == before.text


def test_without_the_serve_extra_the_command_says_which_extra_to_install(tmp_path, cli, monkeypatch):
    """fastapi and uvicorn are the [serve] extra: without them `rnnlab serve` is one line naming it."""
    monkeypatch.setitem(sys.modules, "fastapi", None)  # an import of it fails as if it were not installed
    monkeypatch.delitem(sys.modules, "rnnlab.serve.app", raising=False)
    code, _, err = cli("serve", tmp_path)
    assert code == 2 and err == "error: rnnlab serve needs fastapi: pip install 'rnnlab[serve]'\n"
