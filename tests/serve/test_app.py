"""The playground API over real HTTP: streaming, concurrency limits, validation, and which models can be loaded."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.lm.model import LanguageModel
from rnnlab.serve.app import create_app

from .conftest import serving


def events(body: str) -> list[str]:
    """The text pieces of an SSE body, checking it ends with the `done` event."""
    blocks = [b for b in body.split("\n\n") if b]
    assert blocks[-1].startswith("event: done")
    return [json.loads(b.removeprefix("data: "))["text"] for b in blocks[:-1]]


@pytest.fixture(scope="module")
def base(serve_runs: list[Path]) -> Iterator[str]:
    with serving(create_app(serve_runs, max_concurrent=4)) as url:
        yield url


def test_models_are_listed_by_id(base: str) -> None:
    models = httpx.get(f"{base}/api/models").json()
    assert [(m["id"], m["cell"]) for m in models] == [("tiny-lstm", "lstm"), ("tiny-gru", "gru")]
    assert models[0]["layers"] == ["h0", "c0"] and models[1]["layers"] == ["h0"]
    for m in models:  # what the page shows beside each model
        assert m["parameters"] > 0 and m["tokenizer"] == "char" and m["data"] and m["val_bpc"] > 0
    page = httpx.get(base)
    assert page.status_code == 200 and "rnnlab playground" in page.text


def test_units_are_ranked_by_how_well_they_track_features(base: str) -> None:
    text = "def value(items):\n    if items is None:\n        return [items[i] + 1 for i in range(len(items))]\n"
    res = httpx.post(f"{base}/api/units", json={"model": "tiny-lstm", "text": text, "top": 2})
    assert res.status_code == 200, res.text
    features = res.json()["features"]
    assert {"bracket_depth", "position_in_line", "indentation", "chars_to_eol"} <= set(features)
    for scores in features.values():
        assert len(scores) == 2 and abs(scores[0]["r"]) >= abs(scores[1]["r"])
        assert all(s["layer"] in ("h0", "c0") and 0 <= s["unit"] < 32 for s in scores)
    bad = httpx.post(f"{base}/api/units", json={"model": "tiny-lstm", "text": text, "top": 0})
    assert bad.status_code == 422 and "top" in bad.text  # out of range, as every other request field


def test_generation_streams_one_event_per_token(base: str, serve_runs: list[Path]) -> None:
    body = {"model": "tiny-gru", "prime": "def ", "length": 40, "temperature": 0.8, "seed": 3}
    with httpx.stream("POST", f"{base}/api/generate", json=body) as res:
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/event-stream")
        text = res.read().decode()
    pieces = events(text)
    expected = LanguageModel.load(serve_runs[1]).generate("def ", 40, temperature=0.8, seed=3)
    assert len(pieces) == 40 and "".join(pieces) == expected


def test_sixteen_concurrent_streams_all_complete(base: str) -> None:
    async def one(client: httpx.AsyncClient, i: int) -> list[str]:
        body = {"model": ["tiny-lstm", "tiny-gru"][i % 2], "length": 150, "seed": i}
        async with client.stream("POST", f"{base}/api/generate", json=body) as res:
            assert res.status_code == 200
            return events((await res.aread()).decode())

    async def all_of_them() -> list[list[str]]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(one(client, i) for i in range(16)))

    results = asyncio.run(all_of_them())
    assert [len(r) for r in results] == [150] * 16


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ({"model": "tiny-lstm", "length": 5000}, 422, "length: Input should be less than or equal to 2000"),
        ({"model": "tiny-lstm", "temperature": -1}, 422, "temperature: Input should be greater than or equal to 0"),
        ({"model": "tiny-lstm", "top_p": 0}, 422, "top_p"),
        ({"length": 5}, 422, "model: Field required"),
        ({"model": "tiny-lstm", "lenght": 5}, 422, "lenght: Extra inputs are not permitted"),
        ({"model": "tiny-lstm", "prime": "\u00e9\u00e9"}, 400, "not in the model's vocabulary"),
        ({"model": "tiny-lstm", "prime": "x" * 6000}, 422, "prime: String should have at most 5000"),
    ],
)
def test_bad_generation_requests_get_a_one_line_4xx(base: str, body: dict, status: int, match: str) -> None:
    res = httpx.post(f"{base}/api/generate", json=body)
    assert res.status_code == status, res.text
    detail = res.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and match in detail, detail


def test_malformed_json_is_422(base: str) -> None:
    res = httpx.post(f"{base}/api/generate", content=b"{not json", headers={"Content-Type": "application/json"})
    assert res.status_code == 422 and "JSON" in res.json()["detail"]


def test_only_models_named_at_start_up_can_be_loaded(base: str, tmp_path: Path, serve_runs: list[Path]) -> None:
    outside = tmp_path / "other"
    outside.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):  # a loadable run, but not a served one
        (outside / name).write_bytes((serve_runs[0] / name).read_bytes())
    LanguageModel.load(outside)
    for model in (str(serve_runs[0]), str(outside), "../tiny-lstm", "tiny-lstm/../tiny-gru", "", "TINY-LSTM"):
        for path, extra in (("/api/generate", {"length": 5}), ("/api/activations", {"text": "def"})):
            res = httpx.post(f"{base}{path}", json={"model": model, **extra})
            assert res.status_code == 404, (model, res.text)
            assert "unknown model" in res.json()["detail"]


def test_activations_endpoint(base: str, serve_runs: list[Path]) -> None:
    text = "def value(items):\n"
    res = httpx.post(f"{base}/api/activations", json={"model": "tiny-lstm", "text": text, "layer": "c0", "unit": 3})
    assert res.status_code == 200, res.text
    data = res.json()
    assert "".join(data["chars"]) == text and len(data["values"]) == len(text)
    assert all(-1 <= v <= 1 for v in data["values"])
    for body, match in (({"layer": "h1"}, "does not exist"), ({"unit": 32}, "out of range"), ({"layer": "x"}, "layer")):
        res = httpx.post(f"{base}/api/activations", json={"model": "tiny-lstm", "text": text, **body})
        assert res.status_code in (400, 422) and match in res.json()["detail"], res.text


def test_excess_generations_get_429_and_the_loop_stays_responsive(
    serve_runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One generation blocks in its worker thread; with no waiting room a second is refused at once, and other
    endpoints still answer (the blocked generation does not hold the event loop)."""
    release = threading.Event()

    def blocking_stream(self: LanguageModel, prime: str, length: int, **options: object) -> Iterator[str]:
        yield "a"
        release.wait(10)
        yield "b"

    monkeypatch.setattr(LanguageModel, "stream", blocking_stream)
    with serving(create_app(serve_runs, max_concurrent=1, max_waiting=0)) as url:
        body = {"model": "tiny-lstm", "length": 2}
        with httpx.stream("POST", f"{url}/api/generate", json=body, timeout=15) as first:
            lines = first.iter_lines()
            assert next(lines) == 'data: {"text": "a"}'
            second = httpx.post(f"{url}/api/generate", json=body, timeout=5)
            assert second.status_code == 429 and "server busy" in second.json()["detail"]
            assert httpx.get(f"{url}/api/models", timeout=5).status_code == 200
            release.set()
            assert "".join(events("\n".join(['data: {"text": "a"}', *lines]) + "\n")) == "ab"
        again = httpx.post(f"{url}/api/generate", json=body, timeout=5)  # the slot was given back
        assert again.status_code == 200


def test_serving_requires_run_directories(tmp_path: Path) -> None:
    with pytest.raises(RnnlabError, match="not an rnnlab run directory"):
        create_app([tmp_path])


@pytest.mark.parametrize(
    ("args", "match"),
    [(["{tmp}"], "not an rnnlab run directory"), (["{run}", "--max-concurrent", "0"], "--max-concurrent")],
)
def test_serve_command_rejects_bad_arguments_in_one_line(
    serve_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], match: str
) -> None:
    from rnnlab.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", *[a.format(tmp=tmp_path, run=serve_runs[0]) for a in args]])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and match in err, err
