"""The language model's commands: train, sample, eval, info, compress, decompress, export.

Each command parses its arguments and calls the Python API (rnnlab.lm); nothing more. They register on the
root `rnnlab` app (rnnlab.cli.app), which mounts this module.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from rnnlab.cli.app import Opt, app
from rnnlab.cli.options import PanelCommand, config_options
from rnnlab.config import PRESETS, ModelConfig, TrainConfig
from rnnlab.data.corpus import open_regular, resolve_inputs
from rnnlab.errors import RnnlabError
from rnnlab.lm.dynamic import DynamicConfig
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.ngram import NgramConfig
from rnnlab.lm.train import run_training
from rnnlab.rundir import CONFIG, check_output, read_run, write_output
from rnnlab.ui import console, notice


@app.command(cls=PanelCommand)
@config_options(ModelConfig, TrainConfig, presets=PRESETS)
def train(
    out: Annotated[Path | None, Opt(help="Run directory to create (default: runs/<time>).")] = None,
    preset: Annotated[
        Literal[tuple(PRESETS)] | None,  # type: ignore[valid-type]
        Opt(help="Sizes for a 2-core CPU (tiny, small, medium) or a GPU (large); explicit flags override it."),
    ] = None,
    resume: Annotated[bool, Opt(help="Continue the run in --out exactly where its last checkpoint left off.")] = False,
    overwrite: Annotated[bool, Opt(help="Replace the run in --out (once the new one is ready).")] = False,
    config: Annotated[
        Path | None, Opt(help="Start from a run's config.json: its settings, overridden by the flags given.")
    ] = None,
    *,
    options: dict[str, Any],
) -> None:
    """Train a language model on text files (or, with no INPUT, on Python's own standard library)."""
    if out is None:
        if resume:
            raise RnnlabError("--resume needs --out DIR, the run to continue")
        import time

        out = Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
    result = run_training(out=out, preset=preset, resume=resume, overwrite=overwrite, config=config, **options)
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
    from rnnlab.lm.generate import decode_escapes

    if num_samples < 1:
        raise RnnlabError(f"--num-samples must be >= 1, got {num_samples}")
    if seed is not None and not 0 <= seed <= 2**63 - num_samples:  # every sample's seed + i is a valid seed
        within = f"[0, 2**63 - {num_samples}]" + (f" with --num-samples {num_samples}" if num_samples > 1 else "")
        raise RnnlabError(f"--seed must be in {within} (sample i uses seed + i), got {seed}")
    stop = [decode_escapes(s) for s in stop or []]
    lm = LanguageModel.load(run_dir, device=device)
    if greedy and num_samples > 1:
        notice(f"--greedy gives the same text every time; printing it once, not {num_samples} times")
        num_samples = 1
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


# The settings of dynamic evaluation and of n-gram mixing, the same for `eval` and `compress` (whose file keeps them).
Dynamic = Annotated[bool, Opt(help="Dynamic evaluation: adapt the model to the text as it reads it (Krause et al.).")]
Mix = Annotated[bool, Opt(help="Mix the network with an n-gram model of the training split and the text read so far.")]
DynamicLr = Annotated[float, Opt(help="Dynamic evaluation step size.")]
DynamicDecay = Annotated[float, Opt(help="Dynamic evaluation decay toward the trained weights.")]
DynamicSegment = Annotated[int, Opt(help="Dynamic evaluation segment length (tokens) between updates.")]
MixLr = Annotated[float, Opt(help="Step size of the online mixer.")]
MixDiscount = Annotated[float, Opt(help="Absolute discount of the n-gram model (0, 1].")]


def _settings(
    dynamic: bool, lr: float, decay: float, segment: int, mix: bool, mix_lr: float, mix_discount: float
) -> tuple[DynamicConfig | None, NgramConfig | None]:
    """The dynamic-evaluation and mixer settings of `eval` and `compress` (None: not asked for), every given value
    checked even when unused: a bad value on the command line is a mistake worth reporting."""
    adapt = DynamicConfig(lr=lr, decay=decay, segment=segment)
    ngram = NgramConfig(lr=mix_lr, discount=mix_discount)
    adapt.validate()
    ngram.validate()
    return adapt if dynamic else None, ngram if mix else None


@app.command("eval")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (a network's, or an n-gram model's).")],
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Files, directories or globs to score. Folders holding a config.json given before them are more "
            "runs: the runs' next-token probabilities are averaged (an ensemble; one tokenizer for all)."
        ),
    ],
    as_json: Annotated[bool, Opt("--json", help="Print the scores as JSON.")] = False,
    device: Annotated[str, Opt(help="auto | cpu | cuda")] = "cpu",
    streams: Annotated[
        int, Opt(help="1: exact, one stream. N > 1: N segments at once, each warmed up on the text before it (faster).")
    ] = 1,
    dynamic: Dynamic = False,
    dynamic_lr: DynamicLr = DynamicConfig.lr,
    dynamic_decay: DynamicDecay = DynamicConfig.decay,
    dynamic_segment: DynamicSegment = DynamicConfig.segment,
    mix: Mix = False,
    mix_lr: MixLr = NgramConfig.lr,
    mix_discount: MixDiscount = NgramConfig.discount,
) -> None:
    """Score held-out text: bits per character, nats per token, perplexity (each file from a fresh state,
    every token with its full history). `rnnlab eval RUN1 RUN2 ... INPUT...` scores the average of the runs'
    probabilities (--dynamic, --mix and --streams apply to the networks among them)."""
    adapt, ngram = _settings(dynamic, dynamic_lr, dynamic_decay, dynamic_segment, mix, mix_lr, mix_discount)
    runs = [run_dir]
    while inputs and (Path(inputs[0]) / CONFIG).is_file():
        runs.append(Path(inputs.pop(0)))
    if not inputs:
        raise RnnlabError("give the files to score after the run directories: rnnlab eval RUN [RUN...] INPUT...")
    if len(runs) > 1 or read_run(run_dir)["kind"] == "ngram":
        from rnnlab.lm.ensemble import load_ensemble, score_files

        members = load_ensemble(runs, device, adapt, ngram, streams)
        files = resolve_inputs(inputs, allow_binary=members[0].tokenizer.kind == "byte")
        with console.status(f"scoring {len(files)} file{'s' if len(files) > 1 else ''} ..."):
            score = score_files(members, files)
    else:
        lm = LanguageModel.load(run_dir, device=device)
        files = resolve_inputs(inputs, allow_binary=lm.tokenizer.kind == "byte")
        with _scoring_progress(len(files)) as progress:
            score = lm.score_files(files, adapt, ngram, streams=streams, progress=progress)
    score.print(as_json)
    if not as_json and len(runs) > 1:
        print(f"models          {len(runs)}, next-token probabilities averaged")


@app.command("example-data")
def example_data(
    folder: Annotated[Path, typer.Argument(help="Folder to write prose.txt and held_out.txt into.")],
    size: Annotated[int, Opt(help="Characters in all.")] = 1_000_000,
) -> None:
    """Write example text to train on: English prose (the docstrings of Python's standard library), 90% into
    prose.txt and the rest into held_out.txt, to score the model on text it has not seen."""
    from rnnlab.tasks.prose import write_example_data

    if folder.exists() and not folder.is_dir():
        raise RnnlabError(f"cannot write into {folder}: it is not a folder")
    for path in write_example_data(folder, size):
        console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


@app.command()
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (several: one figure).")],
    output: Annotated[Path, Opt(help="PNG file to write.")] = Path("loss.png"),
) -> None:
    """Draw the loss curves (bits per character against step, training and validation) of one or more runs;
    training keeps RUN/loss.png up to date on its own."""
    from rnnlab.lm.curves import check_runs, render

    check_runs(run_dirs)
    check_output(output)
    write_output(output, render(run_dirs))
    console.print(f"wrote {output}")


@app.command()
def info(run_dir: Annotated[Path, typer.Argument(help="Run directory.")]) -> None:
    """Summarise a run: model, parameter count, data, and training history."""
    from rnnlab.info import describe

    print(describe(run_dir))


_DETERMINISM = (
    "Decompress with the same model on the same kind of CPU with the same rnnlab, PyTorch and NumPy versions: "
    "the model runs on CPU, single-threaded, and both sides must compute bit-identical predictions "
    "(a mismatch is detected by a checksum, never returned as wrong data)."
)
_SHOW_PROGRESS = 20_000  # tokens; shorter inputs finish in a few seconds


def _read(path: Path) -> bytes:
    """The whole input file (a regular file: a named pipe or device is refused, never waited on)."""
    with open_regular(path) as f:
        try:
            return f.read()
        except OSError as exc:
            raise RnnlabError(f"cannot read {path}: {exc.strerror or exc}") from None


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar (on stderr) for long inputs; None, i.e. no bar, for short ones."""
    if total < _SHOW_PROGRESS:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("tokens"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


@contextmanager
def _scoring_progress(files: int) -> Iterator[Callable[[Path, int, int], None]]:
    """A terminal's spinner while scoring, which becomes a progress bar (file, tokens done, of how many) once a
    slow scoring (dynamic, mixed) reports how far it is."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TextColumn("tokens"), TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"scoring {files} file{'s' if files > 1 else ''}", total=None)

        def report(path: Path, done: int, total: int) -> None:
            bar.update(task, description=f"scoring {path.name}", completed=done, total=total)

        yield report


def _summary(original: bytes, compressed: int, seconds: float) -> str:
    chars = len(original.decode("utf-8", errors="replace"))
    bits = 8 * compressed
    bpc = f"{bits / chars:.4f} bits per char" if chars else "empty input"
    rate = len(original) / 1024 / max(seconds, 1e-9)
    return f"{len(original)} bytes <-> {compressed} bytes, {bpc} ({rate:.1f} KB/s)"


@app.command(help=f"Compress INPUT into OUTPUT with the model in RUN_DIR (arithmetic coding). {_DETERMINISM}")
def compress(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of the model.")],
    input: Annotated[Path, typer.Argument(help="File to compress (any file for byte models, text for char models).")],
    output: Annotated[Path, typer.Argument(help="Compressed file to write.")],
    dynamic: Dynamic = False,
    dynamic_lr: DynamicLr = DynamicConfig.lr,
    dynamic_decay: DynamicDecay = DynamicConfig.decay,
    dynamic_segment: DynamicSegment = DynamicConfig.segment,
    mix: Mix = False,
    mix_lr: MixLr = NgramConfig.lr,
    mix_discount: MixDiscount = NgramConfig.discount,
) -> None:
    from rnnlab.lm.compress import compress as compress_bytes
    from rnnlab.lm.compress import tokenize

    adapt, ngram = _settings(dynamic, dynamic_lr, dynamic_decay, dynamic_segment, mix, mix_lr, mix_discount)
    data = _read(input)
    check_output(output)
    lm = LanguageModel.load(run_dir, device="cpu")
    if ngram is not None:
        lm.training_tokens()  # a run without its training text fails here, before any work
    start = time.perf_counter()
    with _progress("compressing", len(tokenize(lm, data))) as progress:
        blob = compress_bytes(lm, data, progress, adapt, ngram)
    write_output(output, blob)
    console.print(f"{output}: {_summary(data, len(blob), time.perf_counter() - start)}", soft_wrap=True)


@app.command(
    help=f"Decompress INPUT (from `rnnlab compress`; --dynamic and --mix: the file says) into OUTPUT with the "
    f"same model. {_DETERMINISM}"
)
def decompress(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of the model used to compress.")],
    input: Annotated[Path, typer.Argument(help="Compressed file.")],
    output: Annotated[Path, typer.Argument(help="File to write the original to.")],
) -> None:
    from rnnlab.lm.compress import check_model, read_header
    from rnnlab.lm.compress import decompress as decompress_bytes

    blob = _read(input)
    header = read_header(blob)  # a damaged or foreign file fails before the model is loaded
    check_output(output)
    lm = LanguageModel.load(run_dir, device="cpu")
    check_model(header, lm)
    start = time.perf_counter()
    with _progress("decompressing", header.tokens) as progress:
        data = decompress_bytes(lm, blob, progress)
    write_output(output, data)
    console.print(f"{output}: {_summary(data, len(blob), time.perf_counter() - start)}", soft_wrap=True)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    onnx: Annotated[Path | None, typer.Option(help="Write the per-step function to this .onnx file.")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
) -> None:
    """Export a trained model: one step (tokens (N, 1), state) -> (logits (N, V), new state)."""
    if onnx is None:
        raise RnnlabError("choose an export format: --onnx FILE")
    from rnnlab.lm.export import export_onnx

    console.print(f"wrote {export_onnx(run_dir, onnx, opset)}")
