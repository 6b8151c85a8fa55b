"""`rnnlab hmm train|eval|sample`: the hidden Markov model language model (rnnlab.baselines.hmm).

`train` reads its input as `rnnlab train` does (the same data options: tokenizer, vocabulary, validation split),
`eval` prints the same scores as `rnnlab eval` (and the same JSON keys with --json).
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from rnnlab.baselines.hmm import DATA_OPTIONS, HMMConfig, HMMRun, train_run
from rnnlab.cli.app import Opt, app
from rnnlab.cli.options import PanelCommand, config_options
from rnnlab.config import TrainConfig
from rnnlab.data.corpus import resolve_inputs
from rnnlab.ui import console

hmm_app = typer.Typer(
    help="Hidden Markov model language model: Baum-Welch training, exact scoring, sampling.", no_args_is_help=True
)
app.add_typer(hmm_app, name="hmm")


def _data_config() -> type:
    """TrainConfig's data options as a dataclass of their own, so that the HMM's options (its own --seed and
    --max-time) stand beside them without a clash; each option keeps its one description in rnnlab.config."""
    hints = typing.get_type_hints(TrainConfig)
    specs = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in DATA_OPTIONS:
            default = {"default": f.default} if f.default is not dataclasses.MISSING else {}
            factory = {"default_factory": f.default_factory} if f.default_factory is not dataclasses.MISSING else {}
            specs.append((f.name, hints[f.name], dataclasses.field(metadata=f.metadata, **default, **factory)))
    return dataclasses.make_dataclass("HMMData", specs)


@hmm_app.command("train", cls=PanelCommand)
@config_options(_data_config(), HMMConfig, presets={})
def train(
    out: Annotated[Path, Opt(help="Run directory to create.")],
    overwrite: Annotated[bool, Opt(help="Replace the run in --out (once the new one is ready).")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Train an HMM language model on text files by Baum-Welch (EM); the best model on the held-out split is kept.
    Ctrl-C stops and saves the best model so far."""
    run = train_run(out, overwrite=overwrite, show=True, **options)
    result = run.result
    scores = [f"training {run.train_bpc:.4f} bits/char"] if run.train_bpc is not None else []
    if run.val_bpc is not None:
        scores.append(f"held-out {run.val_bpc:.4f} bits/char (iteration {result.best_iteration})")
    iterations = len(result.history) - 1
    console.print(
        f"{iterations} EM iteration{'s' * (iterations != 1)} ({result.stop}); "
        + ", ".join(scores)
        + f"; run saved in {run.run_dir}",
        soft_wrap=True,
    )
    if result.interrupted:
        raise typer.Exit(130)


@hmm_app.command("eval")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of an HMM.")],
    inputs: Annotated[list[str], typer.Argument(help="Files, directories or globs to score.")],
    as_json: Annotated[bool, Opt("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score held-out text exactly (the state carried across each file, every token once): bits per character,
    nats per token, perplexity, as `rnnlab eval` scores a network."""
    run = HMMRun.load(run_dir)
    files = resolve_inputs(inputs, allow_binary=run.tokenizer.kind == "byte")
    with console.status(f"scoring {len(files)} file{'s' if len(files) > 1 else ''} ..."):
        score = run.score_files(files)
    score.print(as_json)


@hmm_app.command("sample")
def sample(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of an HMM.")],
    prime: Annotated[str, Opt(help="Text the state is conditioned on before sampling.")] = "",
    length: Annotated[int, Opt(help="Tokens to generate.")] = 500,
    seed: Annotated[int | None, Opt(help="Seed for a reproducible sample, [0, 2**63).")] = None,
) -> None:
    """Generate text from a trained HMM: a state path and the tokens its states emit."""
    run = HMMRun.load(run_dir)
    text = run.generate(length, prime, seed)
    sys.stdout.write(prime + text + "\n")
