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
from typing import Annotated

import typer

from rnnlab._version import __version__
from rnnlab.cli.tasks import task_app
from rnnlab.config import parse_duration
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


@app.command()
def train(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="Files, directories or globs (default: Python's stdlib source)."),
    ] = None,
    out: Annotated[Path | None, Opt(help="Run directory to create (default: runs/<time>).")] = None,
    preset: Annotated[str | None, Opt(help="tiny | small | medium | large; explicit flags override it.")] = None,
    resume: Annotated[bool, Opt(help="Continue the run in --out exactly where its last checkpoint left off.")] = False,
    cell: Annotated[
        str | None,
        Opt(help="rnn-tanh | rnn-relu | irnn | lstm | gru | gru-cho | mut1-3 | mrnn | mingru | minlstm | ssm"),
    ] = None,
    layers: Annotated[int | None, Opt(help="Recurrent layers L.")] = None,
    hidden: Annotated[int | None, Opt(help="Hidden units H per layer.")] = None,
    embed: Annotated[int | None, Opt(help="Embedding size D (0: one-hot input).")] = None,
    dropout: Annotated[float | None, Opt(help="Dropout between layers and before the output.")] = None,
    variational: Annotated[
        bool | None, Opt("--variational/--no-variational", help="Locked dropout: one mask per sequence.")
    ] = None,
    residual: Annotated[
        bool | None, Opt("--residual/--no-residual", help="Residual connections between layers.")
    ] = None,
    highway: Annotated[bool | None, Opt("--highway/--no-highway", help="Highway gates between layers.")] = None,
    layer_norm: Annotated[
        bool | None, Opt("--layer-norm/--no-layer-norm", help="LayerNorm on each layer's output.")
    ] = None,
    learn_init: Annotated[
        bool | None, Opt("--learn-init/--no-learn-init", help="Learn the initial hidden state.")
    ] = None,
    peephole: Annotated[bool | None, Opt("--peephole/--no-peephole", help="LSTM peephole connections.")] = None,
    factors: Annotated[int | None, Opt(help="mrnn: factors of the 3-way weights (0: = hidden).")] = None,
    tie_weights: Annotated[
        bool | None, Opt("--tie-weights/--no-tie-weights", help="Output layer reuses the embedding matrix.")
    ] = None,
    tokenizer: Annotated[str | None, Opt(help="char | byte | word | bpe")] = None,
    unknown: Annotated[str | None, Opt(help="Unseen characters: error | unk.")] = None,
    vocab_size: Annotated[
        int | None, Opt(help="word: keep the most frequent pieces, <unk> included (0: all); bpe: size (1000).")
    ] = None,
    min_count: Annotated[int | None, Opt(help="word: rarer pieces become <unk>.")] = None,
    lowercase: Annotated[bool | None, Opt("--lowercase/--no-lowercase", help="word, bpe: lower-case text.")] = None,
    word_pattern: Annotated[str | None, Opt(help="word: regex for the pieces (the rest are pieces too).")] = None,
    val_file: Annotated[list[str] | None, Opt(help="Validation file(s); repeat for more.")] = None,
    val_fraction: Annotated[float | None, Opt(help="Fraction held out from the end of each file (0.05).")] = None,
    batch_size: Annotated[int | None, Opt(help="Parallel streams N.")] = None,
    seq_len: Annotated[int | None, Opt(help="BPTT length T.")] = None,
    optimizer: Annotated[
        str | None, Opt(help="adam | adamw | adagrad | rmsprop | sgd | nesterov | hf (Hessian-free: no --lr)")
    ] = None,
    lr: Annotated[float | None, Opt(help="Peak learning rate (preset's; mrnn: at most 1e-3 unless given).")] = None,
    momentum: Annotated[float | None, Opt(help="Momentum for sgd, nesterov and rmsprop.")] = None,
    weight_decay: Annotated[float | None, Opt()] = None,
    init: Annotated[str | None, Opt(help="default | esn (W_hh at --spectral-radius, Sutskever et al. 2013).")] = None,
    spectral_radius: Annotated[float | None, Opt(help="--init esn: spectral radius of W_hh (1.1).")] = None,
    hf_cg_iters: Annotated[int | None, Opt(help="--optimizer hf: most CG iterations per update (50).")] = None,
    hf_curvature_fraction: Annotated[
        float | None, Opt(help="--optimizer hf: share of the streams for curvature products (0.25).")
    ] = None,
    hf_structural_damping: Annotated[float | None, Opt(help="--optimizer hf: structural damping mu (0.3).")] = None,
    reset_prob: Annotated[
        float | None, Opt(help="Chance per stream and chunk of restarting from a fresh state (0.02).")
    ] = None,
    clip_norm: Annotated[float | None, Opt(help="Clip the global gradient norm (0: off).")] = None,
    clip_value: Annotated[float | None, Opt(help="Clip each gradient element to ±value (0: off).")] = None,
    warmup: Annotated[int | None, Opt(help="Linear warmup steps.")] = None,
    decay: Annotated[str | None, Opt(help="cosine | linear | none, over the step or time budget.")] = None,
    min_lr_ratio: Annotated[float | None, Opt(help="Final learning rate as a fraction of --lr.")] = None,
    max_steps: Annotated[int | None, Opt(help="Stop after this many steps.")] = None,
    max_time: Annotated[str | None, Opt(help="Stop after this much training time, e.g. 90s, 20m.")] = None,
    epochs: Annotated[float | None, Opt(help="Stop after this many passes over the data.")] = None,
    eval_every: Annotated[int | None, Opt(help="Validate every N steps.")] = None,
    eval_tokens: Annotated[int | None, Opt(help="Validate on at most this many tokens (0: all).")] = None,
    checkpoint_every: Annotated[int | None, Opt(help="Checkpoint every N steps.")] = None,
    log_every: Annotated[int | None, Opt(help="Log metrics every N steps.")] = None,
    patience: Annotated[int | None, Opt(help="Stop after N evaluations without improvement (0: off).")] = None,
    seed: Annotated[int | None, Opt()] = None,
    device: Annotated[str | None, Opt(help="auto | cpu | cuda")] = None,
    precision: Annotated[
        str | None, Opt(help="fp32 | bf16 | fp16 | auto (bf16 where native, else fp32); fp16 scales the loss.")
    ] = None,
    compile_model: Annotated[
        bool | None, Opt("--compile/--no-compile", help="torch.compile the model (falls back if unavailable).")
    ] = None,
) -> None:
    """Train a language model on text files (or, with no INPUT, on Python's own standard library)."""
    if out is None:
        if resume:
            raise RnnlabError("--resume needs --out DIR, the run to continue")
        import time

        out = Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
    result = run_training(
        inputs or None,
        out=out,
        preset=preset,
        resume=resume,
        cell=cell,
        layers=layers,
        hidden=hidden,
        embed=embed,
        dropout=dropout,
        variational=variational,
        residual=residual,
        highway=highway,
        layer_norm=layer_norm,
        learn_init=learn_init,
        peephole=peephole,
        factors=factors,
        tie_weights=tie_weights,
        tokenizer=tokenizer,
        unknown=unknown,
        vocab_size_limit=vocab_size,
        min_count=min_count,
        lowercase=lowercase,
        word_pattern=word_pattern,
        val_files=val_file,
        val_fraction=val_fraction,
        batch_size=batch_size,
        seq_len=seq_len,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        init=init,
        spectral_radius=spectral_radius,
        hf_cg_iters=hf_cg_iters,
        hf_curvature_fraction=hf_curvature_fraction,
        hf_structural_damping=hf_structural_damping,
        reset_prob=reset_prob,
        clip_norm=clip_norm,
        clip_value=clip_value,
        warmup=warmup,
        decay=decay,
        min_lr_ratio=min_lr_ratio,
        max_steps=max_steps,
        max_time=parse_duration(max_time) if max_time is not None else None,
        epochs=epochs,
        eval_every=eval_every,
        eval_tokens=eval_tokens,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        patience=patience,
        seed=seed,
        device=device,
        precision=precision,
        compile=compile_model,
    )
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
        _fail(exc.format_message().strip().splitlines()[0] + " (see --help)", debug)
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
