"""The playground server: FastAPI, one static page, samples streamed as server-sent events.

Safety by construction: models are the run directories named at start-up, addressed by an id from
`GET /api/models`, never by a path from the client. Generation runs in worker threads (the event loop
stays responsive); at most `max_concurrent` run at once, up to `max_waiting` more wait their turn, and
anything beyond that is refused with 429 at once rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from rnnlab.errors import RnnlabError
from rnnlab.models.language_model import LanguageModel
from rnnlab.rundir import read_config

MAX_LENGTH = 2000  # tokens per sample
MAX_TEXT = 5000  # characters for primes and activation texts


class GenerateRequest(BaseModel):
    """Body of POST /api/generate."""

    model_config = ConfigDict(extra="forbid")
    model: str
    prime: str = Field("", max_length=MAX_TEXT)
    length: int = Field(200, ge=1, le=MAX_LENGTH)
    temperature: float = Field(1.0, ge=0.0, le=10.0)
    top_k: int = Field(0, ge=0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None


class ActivationsRequest(BaseModel):
    """Body of POST /api/activations: one unit's activation after each character of `text`."""

    model_config = ConfigDict(extra="forbid")
    model: str
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    layer: str = Field("h0", pattern=r"^[hc]\d+$")
    unit: int = Field(0, ge=0)


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


def _model_ids(run_dirs: list[Path]) -> dict[str, Path]:
    """Each run directory's name as its id (name-2, name-3 ... for repeated names); each must be a run."""
    ids: dict[str, Path] = {}
    for run_dir in run_dirs:
        read_config(run_dir)  # a clear error at start-up, not at the first request
        base, i = run_dir.resolve().name, 1
        while (key := base if i == 1 else f"{base}-{i}") in ids:
            i += 1
        ids[key] = run_dir.resolve()
    return ids


def create_app(run_dirs: list[Path], max_concurrent: int = 4, max_waiting: int = 32) -> FastAPI:
    """The playground for the models in `run_dirs` (the only directories it will ever load)."""
    if not run_dirs:
        raise RnnlabError("serve needs at least one run directory")
    allowed = _model_ids([Path(d) for d in run_dirs])
    loaded: dict[str, LanguageModel] = {}
    load_lock = threading.Lock()
    gate = asyncio.Semaphore(max_concurrent)
    admitted = 0  # running + waiting generations
    app = FastAPI(title="rnnlab playground", docs_url=None, redoc_url=None)

    def model(model_id: str) -> LanguageModel:
        if model_id not in allowed:
            raise HTTPException(404, f"unknown model {model_id!r}; GET /api/models lists the ones served")
        with load_lock:
            if model_id not in loaded:
                loaded[model_id] = LanguageModel.load(allowed[model_id])
            return loaded[model_id]

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
    async def models() -> list[dict[str, Any]]:
        out = []
        for model_id, run_dir in allowed.items():
            cfg = read_config(run_dir)["model"]
            kinds = ["h", "c"] if cfg["cell"] == "lstm" else ["h"]
            layers = [f"{k}{i}" for i in range(cfg["layers"]) for k in kinds]
            out.append({"id": model_id, "cell": cfg["cell"], "hidden": cfg["hidden"], "layers": layers})
        return out

    @app.post("/api/generate")
    async def generate(req: GenerateRequest) -> StreamingResponse:
        nonlocal admitted
        lm = await run_in_threadpool(model, req.model)
        if req.prime:
            lm.tokenizer.encode(req.prime)  # unknown characters: 400 before the stream starts
        if admitted >= max_concurrent + max_waiting:
            raise HTTPException(429, f"too many generations in progress (limit {max_concurrent + max_waiting}); retry")
        admitted += 1

        def release() -> None:
            nonlocal admitted
            admitted -= 1

        pieces = lm.stream(
            req.prime, req.length, temperature=req.temperature, top_k=req.top_k, top_p=req.top_p, seed=req.seed
        )

        async def events() -> AsyncIterator[str]:
            async with gate:
                async for piece in iterate_in_threadpool(pieces):
                    yield f"data: {json.dumps({'text': piece})}\n\n"
                yield "event: done\ndata: {}\n\n"

        return _Stream(events(), release)

    @app.post("/api/activations")
    async def activations(req: ActivationsRequest) -> dict[str, Any]:
        from rnnlab.analysis.cells import record

        lm = await run_in_threadpool(model, req.model)
        recording = await run_in_threadpool(record, lm, req.text)
        acts = recording.activations.get(req.layer)
        if acts is None:
            raise HTTPException(400, f"layer {req.layer!r} does not exist; choose one of {list(recording.activations)}")
        if req.unit >= acts.shape[1]:
            raise HTTPException(400, f"unit {req.unit} out of range: {req.layer} has {acts.shape[1]} units")
        values = acts[:, req.unit]
        if req.layer.startswith("c"):
            values = torch.tanh(torch.from_numpy(values)).numpy()
        return {"chars": list(recording.text), "values": [round(float(v), 4) for v in values]}

    return app
