"""The `rnnlab` command line and its core commands.

Each command parses its arguments and calls the Python API; nothing more.

Errors in the user's input print one line, `error: ...`, on stderr and exit with status 2.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from rnnlab._version import __version__
from rnnlab.cli.options import PanelCommand, config_options
from rnnlab.cli.tasks import task_app
from rnnlab.config import PRESETS, ModelConfig, TrainConfig
from rnnlab.data.corpus import resolve_inputs
from rnnlab.dynamic import DynamicConfig
from rnnlab.errors import RnnlabError
from rnnlab.models.language_model import LanguageModel
from rnnlab.ngram import NgramConfig
from rnnlab.train.trainer import train as run_training
from rnnlab.ui import console

app = typer.Typer(
    name="rnnlab",
    help="Train, sample, evaluate and understand recurrent neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Opt = typer.Option


@app.command(cls=PanelCommand)
@config_options(ModelConfig, TrainConfig, presets=PRESETS)
def train(
    out: Annotated[Path | None, Opt(help="Run directory to create (default: runs/<time>).")] = None,
    preset: Annotated[
        Literal[tuple(PRESETS)] | None,  # type: ignore[valid-type]
        Opt(help="Sizes for a 2-core CPU (tiny, small, medium) or a GPU (large); explicit flags override it."),
    ] = None,
    resume: Annotated[bool, Opt(help="Continue the run in --out exactly where its last checkpoint left off.")] = False,
    *,
    options: dict[str, Any],
) -> None:
    """Train a language model on text files (or, with no INPUT, on Python's own standard library)."""
    if out is None:
        if resume:
            raise RnnlabError("--resume needs --out DIR, the run to continue")
        import time

        out = Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
    result = run_training(out=out, preset=preset, resume=resume, **options)
    best = f", best validation {result.best_val_bpc:.4f} bits/char" if result.best_val_bpc is not None else ""
    console.print(f"{result.steps} steps in {result.elapsed:.0f}s{best}; run saved in {result.run_dir}")
    if result.interrupted:
        raise typer.Exit(130)


@app.command()
def sample(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    prime: Annotated[str, Opt(help="Text fed through the network before sampling.")] = "",
    length: Annotated[int, Opt(help="Tokens to generate.")] = 500,
    temperature: Annotated[float, Opt(help="Softmax temperature; lower is more conservative.")] = 1.0,
    top_k: Annotated[int, Opt(help="Sample among the k most likely tokens (0: all).")] = 0,
    top_p: Annotated[float, Opt(help="Sample within the smallest set of mass p (1: all).")] = 1.0,
    greedy: Annotated[bool, Opt(help="Always take the most likely token.")] = False,
    num_samples: Annotated[int, Opt(help="How many samples to draw.")] = 1,
    stop: Annotated[
        list[str] | None,
        Opt(help=r"Stop when this text is generated (repeatable); \n, \t and \\ are newline, tab, backslash."),
    ] = None,
    seed: Annotated[int | None, Opt(help="Seed for reproducible samples, [0, 2**63); sample i uses seed + i.")] = None,
    device: Annotated[str, Opt(help="auto | cpu | cuda")] = "cpu",
) -> None:
    """Generate text from a trained model; output streams to stdout as it is sampled."""
    from rnnlab.generate import decode_escapes

    if num_samples < 1:
        raise RnnlabError(f"--num-samples must be >= 1, got {num_samples}")
    if seed is not None and not 0 <= seed <= 2**63 - num_samples:  # every sample's seed + i is a valid seed
        within = f"[0, 2**63 - {num_samples}]" + (f" with --num-samples {num_samples}" if num_samples > 1 else "")
        raise RnnlabError(f"--seed must be in {within} (sample i uses seed + i), got {seed}")
    stop = [decode_escapes(s) for s in stop or []]
    lm = LanguageModel.load(run_dir, device=device)
    for i in range(num_samples):
        pieces = lm.stream(  # checks the settings and the prime's characters before anything is printed
            prime,
            length,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            greedy=greedy,
            stop=stop,
            seed=None if seed is None else seed + i,
        )
        if i:
            sys.stdout.write("\n---\n")
        sys.stdout.write(prime)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")


@app.command("eval")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    inputs: Annotated[list[str], typer.Argument(help="Files, directories or globs to score.")],
    as_json: Annotated[bool, Opt("--json", help="Print the scores as JSON.")] = False,
    device: Annotated[str, Opt(help="auto | cpu | cuda")] = "cpu",
    streams: Annotated[
        int, Opt(help="1: exact, one stream. N > 1: N segments at once, each warmed up on the text before it (faster).")
    ] = 1,
    dynamic: Annotated[
        bool, Opt(help="Dynamic evaluation: adapt to the text while scoring it (Krause et al.).")
    ] = False,
    dynamic_lr: Annotated[float, Opt(help="Dynamic evaluation step size.")] = DynamicConfig.lr,
    dynamic_decay: Annotated[
        float, Opt(help="Dynamic evaluation decay toward the trained weights.")
    ] = DynamicConfig.decay,
    dynamic_segment: Annotated[int, Opt(help="Dynamic evaluation segment length (tokens).")] = DynamicConfig.segment,
    mix: Annotated[
        bool, Opt(help="Mix the network with an n-gram model of the training split and the text already scored.")
    ] = False,
    mix_lr: Annotated[float, Opt(help="Step size of the online mixer.")] = NgramConfig.lr,
    mix_discount: Annotated[float, Opt(help="Absolute discount of the n-gram model (0, 1].")] = NgramConfig.discount,
) -> None:
    """Score held-out text: bits per character, nats per token, perplexity (each file from a fresh state,
    every token with its full history)."""
    adapt = DynamicConfig(lr=dynamic_lr, decay=dynamic_decay, segment=dynamic_segment)
    ngram = NgramConfig(lr=mix_lr, discount=mix_discount)
    adapt.validate()  # even when unused: a bad value on the command line is a mistake worth reporting
    ngram.validate()
    lm = LanguageModel.load(run_dir, device=device)
    files = resolve_inputs(inputs, allow_binary=lm.tokenizer.kind == "byte")
    score = lm.score_files(files, adapt if dynamic else None, ngram if mix else None, streams=streams)
    if as_json:
        print(json.dumps(score.to_dict(), allow_nan=False))
        return
    print(f"bits per char   {score.bits_per_char:.4f}")
    print(f"nats per token  {score.nats_per_token:.4f}")
    print(f"perplexity      {score.perplexity:.3f}")
    print(f"tokens          {score.tokens}")
    print(f"chars           {score.chars}")


@app.command()
def info(run_dir: Annotated[Path, typer.Argument(help="Run directory.")]) -> None:
    """Summarise a run: model, parameter count, data, and training history."""
    from rnnlab.info import describe

    print(describe(run_dir))


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, Opt("--version", help="Show the version and exit.")] = False,
) -> None:
    if version:
        print(f"rnnlab {__version__}")
        raise typer.Exit(0)


# Other areas' commands. Each module registers on `app` or `task_app` when imported.
app.add_typer(task_app, name="task")
for _module in (
    "rnnlab.cli.compress",
    "rnnlab.cli.reference",
    "rnnlab.cli.esn",
    "rnnlab.cli.probe",
    "rnnlab.cli.serve",
    "rnnlab.cli.seq",
    "rnnlab.cli.long_range",
    "rnnlab.cli.export",
):
    importlib.import_module(_module)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI. Every failure is one line `error: ...` and exit status 2; Ctrl-C is 130.

    `--debug` anywhere before a `--` (or RNNLAB_DEBUG=1) shows the traceback of a failure instead.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end] or os.environ.get("RNNLAB_DEBUG", "") not in ("", "0")
    args = [a for i, a in enumerate(args) if not (a == "--debug" and i < end)]
    command = typer.main.get_command(app)
    try:
        status = command.main(args=args or ["--help"], prog_name="rnnlab", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `rnnlab sample DIR | head`
        _quiet_stdout()
        sys.exit(0)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument, bad value
        if type(exc).__name__ == "NoArgsIsHelpError":  # `rnnlab task` alone: show that group's help
            exc.show()
            sys.exit(0)
        message = exc.format_message().strip().splitlines()[0].replace("Value error, ", "")  # pydantic's prefix
        _fail(message + " (see --help)", debug)
    except RnnlabError as exc:
        _fail(str(exc), debug)
    except OSError as exc:  # unreadable input, read-only folder, disk full, ...
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", debug)
    except MemoryError:
        _fail("out of memory (use a smaller model, --batch-size or input)", debug)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        if "allocate" in str(exc) or "out of memory" in str(exc):
            _fail(f"out of memory ({text[0][:200]})", debug)
        _fail(f"unexpected {type(exc).__name__}: {text[0][:300] if text else ''} (run with --debug for details)", debug)
    if isinstance(status, int) and status:  # click returns an Exit's status instead of raising it
        sys.exit(status)


def _fail(message: str, debug: bool = False) -> None:
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush is silent."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
