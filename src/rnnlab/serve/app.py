"""The playground server: FastAPI, one static page, samples streamed as server-sent events.

Safety by construction: models are the run directories named at start-up (each loaded then, so a bad run is
an error before the server starts), addressed by an id from `GET /api/models`, never by a path from the
client. Model work (sampling, activations) runs in worker threads so the event loop stays responsive; at
most `max_concurrent` requests compute at once, up to `max_waiting` more wait their turn, and anything beyond
that is refused with 429 at once rather than queued without bound. Requests must name this machine in their
Host header (no DNS rebinding), bodies are capped, and `make_server` adds deadlines on slow or idle clients.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import h11
import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from rnnlab.errors import RnnlabError
from rnnlab.lm.card import best_validation
from rnnlab.lm.model import LanguageModel
from rnnlab.nn import registry
from rnnlab.rundir import CONFIG, TOKENIZER, WEIGHTS, read_run

MAX_LENGTH = 2000  # tokens per sample
MAX_TEXT = 5000  # characters for primes and activation texts
MAX_BODY = 64 * 1024  # bytes of a request body: MAX_TEXT characters fit even as JSON \u escapes
MAX_HEADERS = 16 * 1024  # bytes of a request line and headers
MAX_CONNECTIONS = 100  # open connections and running requests; beyond this uvicorn answers 503
REQUEST_TIMEOUT = 10.0  # seconds for a request (line, headers, body) to arrive from its first byte or connecting
KEEP_ALIVE = 5  # seconds an idle keep-alive connection stays open
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")  # the names a local server is always reachable by
ANY_ADDRESS = ("0.0.0.0", "::", "")  # --host values that bind every interface


class GenerateRequest(BaseModel):
    """Body of POST /api/generate."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    model: str
    prime: str = Field("", max_length=MAX_TEXT)
    length: int = Field(200, ge=1, le=MAX_LENGTH)
    temperature: float = Field(1.0, ge=0.0, le=10.0)
    top_k: int = Field(0, ge=0, le=2**31 - 1)  # beyond the vocabulary size it filters nothing
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)


class ActivationsRequest(BaseModel):
    """Body of POST /api/activations: one unit's activation after each character of `text`."""

    model_config = ConfigDict(extra="forbid")
    model: str
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    layer: str = Field("h0", pattern=r"^[hc]\d{1,3}$")
    unit: int = Field(0, ge=0)


class UnitsRequest(BaseModel):
    """Body of POST /api/units: rank the units by how well they track per-character features of `text`."""

    model_config = ConfigDict(extra="forbid")
    model: str
    text: str = Field(min_length=2, max_length=MAX_TEXT)
    top: int = Field(3, ge=1, le=20)


class _Stream(StreamingResponse):
    """A StreamingResponse that runs `on_close` however the response ends (finished, failed, client gone)."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class _Limiter:
    """Admission for model work: `running` at once, `waiting` more queued, the rest refused with 429 at once."""

    def __init__(self, running: int, waiting: int) -> None:
        self.gate = asyncio.Semaphore(running)  # held while computing
        self._capacity = running + waiting
        self._admitted = 0  # computing + waiting for the gate

    def admit(self) -> Callable[[], None]:
        """Take a place or raise 429; returns the function that gives the place back."""
        if self._admitted >= self._capacity:
            raise HTTPException(
                429,
                f"server busy: {self._capacity} model requests already running or waiting; retry shortly",
                headers={"Retry-After": "1"},
            )
        self._admitted += 1

        def release() -> None:
            self._admitted -= 1

        return release


def _signature(run_dir: Path) -> tuple[tuple[int, int] | None, ...]:
    """(mtime, size) of the files a model is loaded from: a change means the run must be loaded again."""
    out = []
    for name in (CONFIG, TOKENIZER, WEIGHTS):
        try:
            stat = (run_dir / name).stat()
            out.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


class _Models:
    """The served runs by id, each loaded at start-up and loaded again when its files change on disk."""

    def __init__(self, run_dirs: list[Path]) -> None:
        self.dirs: dict[str, Path] = {}
        for run_dir in run_dirs:  # the directory name as id; name-2, name-3 ... for repeated names
            base, i = run_dir.resolve().name, 1
            while (key := base if i == 1 else f"{base}-{i}") in self.dirs:
                i += 1
            self.dirs[key] = run_dir.resolve()
        self._lock = threading.Lock()
        self._loaded = {key: (_signature(d), LanguageModel.load(d)) for key, d in self.dirs.items()}

    def describe(self) -> list[dict[str, Any]]:
        """Each model as last loaded: id, cell, width and layer names, and what a user picks a model by: its size
        (parameters), tokenizer, training data and best validation score (None without validation)."""
        out = []
        for model_id, (_, lm) in self._loaded.items():
            cfg = lm.module.config
            spec = registry.get(cfg.cell)
            kinds = spec.state if spec.per_unit else ()  # the parts of the state with one value per unit
            layers = [f"{k}{i}" for i in range(cfg.layers) for k in kinds]
            train = read_run(self.dirs[model_id]).get("train", {})
            out.append({
                "id": model_id,
                "cell": cfg.cell,
                "hidden": cfg.hidden,
                "layers": layers,
                "parameters": lm.module.num_parameters(),
                "tokenizer": lm.tokenizer.kind,
                "data": [Path(str(f)).name for f in train.get("inputs") or []] or ["Python standard library"],
                "val_bpc": best_validation(self.dirs[model_id]),
            })  # fmt: skip
        return out

    def get(self, model_id: str) -> LanguageModel:
        """The model with this id (404 if none is served), reloaded if its files changed (409 if they are bad)."""
        if model_id not in self.dirs:
            raise HTTPException(404, f"unknown model {model_id!r}; GET /api/models lists the ones served")
        with self._lock:
            loaded_from, lm = self._loaded[model_id]
            signature = _signature(self.dirs[model_id])
            if signature != loaded_from:
                try:
                    lm = LanguageModel.load(self.dirs[model_id])
                except RnnlabError as exc:
                    raise HTTPException(409, f"model {model_id!r} changed on disk and no longer loads: {exc}") from None
                self._loaded[model_id] = (signature, lm)
            return lm


def allowed_hosts(host: str) -> set[str] | None:
    """The Host header names a server bound to `host` answers to (None: any); see `_HostCheck`."""
    if host in ANY_ADDRESS:
        return None
    return {*LOOPBACK, (f"[{host}]" if ":" in host else host).lower()}


_HOST = re.compile(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(:\d{1,5})?")


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


class _HostCheck:
    """Refuse requests whose Host header names another site (400).

    A web page elsewhere can make its own host name resolve to 127.0.0.1 (DNS rebinding) and then call this
    server as if same-origin; its requests still carry its name in Host, so only this machine's names pass.
    """

    def __init__(self, app: ASGIApp, allowed: set[str] | None) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            value = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            match = _HOST.fullmatch(value)
            if match is None or match.group(1).lower() not in self.allowed:
                allowed = ", ".join(sorted(self.allowed))
                detail = f"Host {value!r} is not allowed (allowed: {allowed}; start with --host NAME to add one)"
                return await _refuse(scope, receive, send, 400, detail)
        return await self.app(scope, receive, send)


class _BodyLimit:
    """Read each request body in full before the app does, refusing one over MAX_BODY bytes (413)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = (413, f"request body over {MAX_BODY} bytes")
        if int(dict(scope["headers"]).get(b"content-length", b"0")) > MAX_BODY:  # h11 checked it is a number
            return await _refuse(scope, receive, send, *too_big)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                return await _refuse(scope, receive, send, *too_big)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


def create_app(
    run_dirs: list[Path], max_concurrent: int = 4, max_waiting: int = 32, host: str = "127.0.0.1"
) -> FastAPI:
    """The playground for the models in `run_dirs` (the only directories it will ever load), each loaded now
    (a bad run is an RnnlabError here). `host` is the address it will be bound to, for the Host check."""
    if not run_dirs:
        raise RnnlabError("serve needs at least one run directory")
    if max_concurrent < 1 or max_waiting < 0:
        raise RnnlabError(f"max_concurrent must be >= 1 and max_waiting >= 0, got {max_concurrent}, {max_waiting}")
    models = _Models([Path(d) for d in run_dirs])
    limiter = _Limiter(max_concurrent, max_waiting)
    app = FastAPI(title="rnnlab playground", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_BodyLimit)
    app.add_middleware(_HostCheck, allowed=allowed_hosts(host))  # added last: runs first

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(RnnlabError)
    async def _bad_input(_: Request, exc: RnnlabError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return (files("rnnlab.serve") / "static" / "index.html").read_text(encoding="utf-8")

    @app.get("/api/models")
    async def list_models() -> list[dict[str, Any]]:
        return models.describe()

    @app.post("/api/generate")
    async def generate(req: GenerateRequest) -> StreamingResponse:
        release = limiter.admit()
        try:
            lm = await run_in_threadpool(models.get, req.model)
            if req.prime:
                lm.tokenizer.encode(req.prime)  # unknown characters: 400 before the stream starts
            pieces = lm.stream(
                req.prime, req.length, temperature=req.temperature, top_k=req.top_k, top_p=req.top_p, seed=req.seed
            )
        except BaseException:
            release()
            raise

        async def events() -> AsyncIterator[str]:
            async with limiter.gate:
                async for piece in iterate_in_threadpool(pieces):
                    yield f"data: {json.dumps({'text': piece})}\n\n"
                yield "event: done\ndata: {}\n\n"

        return _Stream(events(), release)

    @app.post("/api/activations")
    async def activations(req: ActivationsRequest) -> dict[str, Any]:
        from rnnlab.analysis.cells import record

        release = limiter.admit()
        try:
            lm = await run_in_threadpool(models.get, req.model)
            async with limiter.gate:
                recording = await run_in_threadpool(record, lm, req.text)
        finally:
            release()
        acts = recording.activations.get(req.layer)
        if acts is None:
            raise HTTPException(400, f"layer {req.layer!r} does not exist; choose one of {list(recording.activations)}")
        if req.unit >= acts.shape[1]:
            raise HTTPException(400, f"unit {req.unit} out of range: {req.layer} has {acts.shape[1]} units")
        values = acts[:, req.unit]
        if req.layer.startswith("c"):
            values = torch.tanh(torch.from_numpy(values)).numpy()
        return {"chars": list(recording.text), "values": [round(float(v), 4) for v in values]}

    @app.post("/api/units")
    async def units(req: UnitsRequest) -> dict[str, Any]:
        """The units worth looking at: for each feature of the text (inside quotes, position in the line,
        indentation, ...; see rnnlab.analysis.features), the `top` units by |Pearson r|, as `probe cells` ranks
        them. Constant features (nothing to track in this text) are left out."""
        from rnnlab.analysis.cells import rank_all, record
        from rnnlab.analysis.features import compute_features

        release = limiter.admit()
        try:
            lm = await run_in_threadpool(models.get, req.model)
            async with limiter.gate:
                recording = await run_in_threadpool(record, lm, req.text)
                ranking = await run_in_threadpool(rank_all, recording, compute_features(recording.text), req.top)
        finally:
            release()
        return {
            "features": {
                name: [{"layer": s.layer, "unit": s.unit, "r": round(s.r, 4)} for s in scores]
                for name, scores in ranking.items()
                if scores
            }
        }

    return app


class _DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on reading each request.

    uvicorn times out idle keep-alive connections only: a client that connects and sends nothing, or sends
    part of a request and then stalls, would hold its connection (and a file descriptor) forever. Here each
    request (line, headers, body) must have arrived in full `request_timeout` seconds after its first byte,
    or after the connection opened for the first request; otherwise the connection is closed.
    """

    request_timeout: float = REQUEST_TIMEOUT
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):  # request read in full (or connection done)
            self._cancel_deadline()
        elif self._deadline is None and not self.transport.is_closing():  # the first bytes of the next request
            self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        self.transport.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: a free port), made before the server starts so that a bad port,
    a port in use or an address that cannot be bound is a one-line RnnlabError rather than a server log."""
    if not 0 <= port <= 65535:
        raise RnnlabError(f"--port must be between 0 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise RnnlabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise RnnlabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url(host: str, sock: socket.socket) -> str:
    """The address a socket from `bind(host, ...)` serves, as a URL."""
    return f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"


def make_server(app: FastAPI, request_timeout: float = REQUEST_TIMEOUT) -> uvicorn.Server:
    """A uvicorn server for `app` that drops slow clients: each request must arrive within `request_timeout`
    seconds, idle keep-alive connections close after KEEP_ALIVE, headers are capped at MAX_HEADERS bytes and
    connections at MAX_CONNECTIONS. Start it with `.run(sockets=[bind(host, port)])`."""
    protocol = type("DeadlineH11Protocol", (_DeadlineH11Protocol,), {"request_timeout": request_timeout})
    config = uvicorn.Config(
        app,
        http=protocol,
        timeout_keep_alive=KEEP_ALIVE,
        h11_max_incomplete_event_size=MAX_HEADERS,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=5,
        log_level="warning",
    )
    return uvicorn.Server(config)
