"""The playground page in a real browser (system Chromium via Playwright): sample, watch tokens stream, view a unit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnnlab.lm.model import LanguageModel
from rnnlab.serve.app import create_app

from .conftest import serving

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def test_sample_and_cell_view_in_chromium(
    serve_runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (install the Debian package `chromium`; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    real_stream = LanguageModel.stream

    def paced_stream(self: LanguageModel, *args: object, **kwargs: object) -> Iterator[str]:
        """The real sampler, slowed to 100 tokens/s so the page can be seen part-way through a sample."""
        for piece in real_stream(self, *args, **kwargs):
            time.sleep(0.01)
            yield piece

    monkeypatch.setattr(LanguageModel, "stream", paced_stream)
    with serving(create_app(serve_runs)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#model option').length === 2")
            page.select_option("#model", "tiny-lstm")
            info = page.text_content("#info")
            assert "lstm, 1 × " in info and "parameters, char tokens, validation " in info and "bits/char" in info
            page.fill("#prime", "def ")
            page.fill("#length", "150")
            page.click("#generate")
            # tokens appear while the generation is still running ...
            page.wait_for_function(
                "document.getElementById('output').textContent.length > 10 && document.getElementById('generate').disabled"
            )
            # ... and it finishes with every token shown after the prime
            page.wait_for_function("document.getElementById('status').textContent === 'done: 150 tokens'")
            assert page.text_content("#output").startswith("def ") and len(page.text_content("#output")) == 154
            page.screenshot(path=str(tmp_path / "sample.png"))

            page.click("#tab-cells")
            assert page.is_visible("#cells") and not page.is_visible("#sample")
            page.select_option("#layer", "c0")
            page.fill("#unit", "5")
            page.click("#show")
            page.wait_for_selector("#cellview span")
            text = page.input_value("#ctext")
            assert page.locator("#cellview span").count() == len(text)
            assert "c0[5]" in page.text_content("#cstatus")
            # the units worth looking at, ranked per feature of the text; a click shows one
            page.click("#rank")
            page.wait_for_selector("#ranking button.unit")
            first = page.locator("#ranking button.unit").first
            label = first.text_content()
            first.click()
            page.wait_for_function(f"document.getElementById('cstatus').textContent.startsWith('{label.split()[0]}')")
            assert page.locator("#cellview span").count() == len(text)
            page.screenshot(path=str(tmp_path / "cells.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "cells.png").stat().st_size > 10_000
