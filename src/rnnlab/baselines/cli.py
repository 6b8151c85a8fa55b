"""`rnnlab ngram train|eval|sample`: the interpolated Kneser-Ney n-gram language model (rnnlab.baselines.ngram)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from rnnlab.baselines.ngram import NgramRun, NgramTrainConfig
from rnnlab.cli.app import app
from rnnlab.cli.options import PanelCommand, config_options
from rnnlab.data.corpus import resolve_inputs
from rnnlab.ui import console

Opt = typer.Option
ngram_app = typer.Typer(help="Interpolated Kneser-Ney n-gram language models.", no_args_is_help=True)
app.add_typer(ngram_app, name="ngram")


@ngram_app.command("train", cls=PanelCommand)
@config_options(NgramTrainConfig, presets={})
def ngram_train(
    out: Annotated[Path, Opt(help="Run directory to create.")],
    overwrite: Annotated[bool, Opt(help="Replace the run in --out (once the new one is ready).")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Count the n-grams of text files (tokenized as `rnnlab train` would) into a run directory."""
    from rnnlab.baselines.ngram import train

    start = time.perf_counter()
    run = train(NgramTrainConfig(**options), out, overwrite)
    model = run.config["model"]
    console.print(
        f"{model['order']}-gram model over {run.tokenizer.kind} tokens (V = {run.model.V}): "
        f"{run.model.num_counts():,} n-grams from {run.config['train']['tokens']:,} tokens "
        f"in {time.perf_counter() - start:.1f}s; run saved in {out}",
        soft_wrap=True,
    )


@ngram_app.command("eval")
def ngram_eval(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of an n-gram model.")],
    inputs: Annotated[list[str], typer.Argument(help="Files, directories or globs to score.")],
    as_json: Annotated[bool, Opt("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score held-out text in `rnnlab eval`'s units: bits per character, nats per token, perplexity (each file
    from the start symbols, its first token context only)."""
    run = NgramRun.load(run_dir)
    files = resolve_inputs(inputs, allow_binary=run.tokenizer.kind == "byte")
    score, unknown = run.score_files(files)
    score.print(as_json, unknown=unknown)
    if unknown and not as_json:
        share = 100 * unknown / max(score.tokens, 1)
        print(f"unknown         {unknown} tokens ({share:.2f}%) scored as <unk>, one class holding every unseen piece")


@ngram_app.command("sample")
def ngram_sample(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of an n-gram model.")],
    prime: Annotated[str, Opt(help="Text the sample continues (default: the start of a text).")] = "",
    length: Annotated[int, Opt(help="Tokens to generate.")] = 200,
    temperature: Annotated[float, Opt(help="Sharpen (< 1) or flatten (> 1) the distribution.")] = 1.0,
    seed: Annotated[int | None, Opt(help="Seed for a reproducible sample, [0, 2**63).")] = None,
) -> None:
    """Generate text from an n-gram model, token by token from p(next | the n - 1 tokens before)."""
    run = NgramRun.load(run_dir)
    text = run.sample(prime, length, temperature, seed)
    sys.stdout.write(prime + text + "\n")
