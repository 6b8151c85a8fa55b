"""`rnnlab compress` and `rnnlab decompress`: lossless compression driven by a trained model."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from rnnlab.cli.app import Opt, app
from rnnlab.data.corpus import open_regular
from rnnlab.dynamic import DynamicConfig
from rnnlab.errors import RnnlabError
from rnnlab.models.language_model import LanguageModel
from rnnlab.rundir import atomic_write_bytes
from rnnlab.ui import console

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


def check_output(path: Path) -> Path:
    """Where OUTPUT will be written, checked before any work so that a command that cannot write fails
    at once: not a folder, a device or a pipe, in an existing writable folder, not a read-only file.
    A symbolic link is followed, so its target is replaced and the link kept."""
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise RnnlabError(f"cannot write {path}: it is a directory")
    if target.exists() and not target.is_file():
        raise RnnlabError(f"cannot write {path}: not a regular file")
    if not target.parent.is_dir():
        raise RnnlabError(f"cannot write {path}: its folder does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise RnnlabError(f"cannot write {path}: its folder is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise RnnlabError(f"cannot write {path}: the file is read-only")
    return target


def write_output(path: Path, data: bytes) -> None:
    """Write a file the user asked for, atomically (a reader, or a failure, never sees half of it; an
    existing file is replaced only by the complete new one) with the permissions of the user's umask."""
    try:
        atomic_write_bytes(check_output(path), data)
    except OSError as exc:
        raise RnnlabError(f"cannot write {path}: {exc.strerror or exc}") from None


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
    dynamic: Annotated[
        bool,
        Opt(help="Adapt the model to the text as it codes (dynamic evaluation); the settings go in the file."),
    ] = False,
    dynamic_lr: Annotated[float, Opt(help="Step size, as for `eval --dynamic`.")] = DynamicConfig.lr,
    dynamic_decay: Annotated[float, Opt(help="Decay toward the trained weights.")] = DynamicConfig.decay,
    dynamic_segment: Annotated[int, Opt(help="Segment length (tokens) between updates.")] = DynamicConfig.segment,
) -> None:
    from rnnlab.compress import compress as compress_bytes
    from rnnlab.compress import tokenize

    adapt = DynamicConfig(lr=dynamic_lr, decay=dynamic_decay, segment=dynamic_segment) if dynamic else None
    if adapt is not None:
        adapt.validate()
    data = _read(input)
    check_output(output)
    lm = LanguageModel.load(run_dir, device="cpu")
    start = time.perf_counter()
    with _progress("compressing", len(tokenize(lm, data))) as progress:
        blob = compress_bytes(lm, data, progress, adapt)
    write_output(output, blob)
    console.print(f"{output}: {_summary(data, len(blob), time.perf_counter() - start)}", soft_wrap=True)


@app.command(
    help=f"Decompress INPUT (from `rnnlab compress`, static or --dynamic: the file says) into OUTPUT with the "
    f"same model. {_DETERMINISM}"
)
def decompress(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of the model used to compress.")],
    input: Annotated[Path, typer.Argument(help="Compressed file.")],
    output: Annotated[Path, typer.Argument(help="File to write the original to.")],
) -> None:
    from rnnlab.compress import check_model, read_header
    from rnnlab.compress import decompress as decompress_bytes

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
