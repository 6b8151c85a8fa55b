"""`rnnlab window train|eval|sample`: the feed-forward window language model (rnnlab.baselines.window).

`train` reads its input as `rnnlab train` does (files, directories, globs; --tokenizer char|byte|word|bpe; no
INPUT: the default corpus); `eval` prints `rnnlab eval`'s figures under the same names (and JSON keys).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rnnlab.baselines.window import WindowConfig
from rnnlab.cli.app import Opt, app
from rnnlab.cli.options import PanelCommand, config_options
from rnnlab.config import TrainConfig
from rnnlab.errors import RnnlabError
from rnnlab.ui import console, notice

window_app = typer.Typer(
    help="Feed-forward window language model (Bengio et al. 2003): the last n - 1 tokens -> the next.",
    no_args_is_help=True,
)
app.add_typer(window_app, name="window")


# The training settings of `rnnlab train` that apply to a window model (the data's, and the optimiser's basics);
# streams, chunks, cells, devices and the like do not.
_FROM_TRAIN = {"inputs", "val_files", "val_fraction", "tokenizer", "unknown", "vocab_size_limit", "min_count",
               "lowercase", "word_pattern", "weight_decay", "clip_norm", "warmup", "max_time", "eval_every",
               "eval_tokens", "seed"}  # fmt: skip
_DEFAULTS = {"eval_every": 1000, "eval_tokens": 20_000}  # validation costs a softmax over V per token


@window_app.command("train", cls=PanelCommand)
@config_options(
    WindowConfig,
    TrainConfig,
    presets={},
    defaults=_DEFAULTS,
    exclude={f.name for f in dataclasses.fields(TrainConfig)} - _FROM_TRAIN,
)
def window_train(
    *,
    out: Annotated[Path, Opt(help="Run directory to create.")],
    batch_size: Annotated[int, Opt(help="Windows per training step N.", rich_help_panel="Data")] = 128,
    lr: Annotated[
        float,
        Opt(
            help="Peak Adam learning rate: warmup, then a cosine decay over the budget.", rich_help_panel="Optimisation"
        ),
    ] = 2e-3,
    max_steps: Annotated[
        int | None,
        Opt(
            help="Stop after this many steps (default: 3000, or no limit when --max-time is given).",
            rich_help_panel="Budget",
        ),
    ] = None,
    overwrite: Annotated[bool, Opt(help="Replace the window run in --out.")] = False,
    options: dict[str, Any],
) -> None:
    """Train a feed-forward window language model on text files (or, with no INPUT, on Python's standard library);
    prints the best validation bits per character (the held-out tail of each file, --val-fraction)."""
    from rnnlab.baselines.window import train

    if max_steps is not None and max_steps < 1:
        raise RnnlabError(f"--max-steps must be >= 1, got {max_steps}")
    model_names = {f.name for f in dataclasses.fields(WindowConfig)}
    model = WindowConfig(**{k: v for k, v in options.items() if k in model_names})
    settings = {k: v for k, v in options.items() if k not in model_names}
    config = TrainConfig(**settings, batch_size=batch_size, lr=lr, seq_len=1, max_steps=max_steps or 0)
    result = train(out, model, config, overwrite=overwrite)
    best = f", best validation {result.val_bpc:.4f} bits/char" if result.val_bpc is not None else ""
    console.print(f"{result.fit.steps} steps in {result.fit.elapsed:.0f}s{best}; run saved in {result.run_dir}")
    if result.fit.interrupted:
        notice(f"interrupted at step {result.fit.steps}; the run is saved (best validated weights, if validated)")
        raise typer.Exit(130)


@window_app.command("eval")
def window_eval(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab window train`.")],
    inputs: Annotated[list[str], typer.Argument(help="Files, directories or globs to score.")],
    as_json: Annotated[bool, Opt("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score held-out text exactly, as `rnnlab eval` does: bits per character, nats per token, perplexity (each file
    from its start, every token but the first seeing its window)."""
    from rnnlab.baselines.window import WindowModel
    from rnnlab.data.corpus import resolve_inputs

    model = WindowModel.load(run_dir)
    files = resolve_inputs(inputs, allow_binary=model.tokenizer.kind == "byte")
    score = model.score_files(files)
    score.print(as_json)


@window_app.command("sample")
def window_sample(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab window train`.")],
    prime: Annotated[str, Opt(help="Text the window starts from (its last n - 1 tokens count).")] = "",
    length: Annotated[int, Opt(help="Tokens to generate.")] = 200,
    temperature: Annotated[float, Opt(help="Softmax temperature; 0: always the most likely token.")] = 1.0,
    seed: Annotated[int | None, Opt(help="Seed for a reproducible sample, [0, 2**63).")] = None,
) -> None:
    """Generate text from a window model; output streams to stdout as it is sampled."""
    from rnnlab.baselines.window import WindowModel

    pieces = WindowModel.load(run_dir).stream(prime, length, temperature, seed)  # checks settings and prime first
    sys.stdout.write(prime)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
