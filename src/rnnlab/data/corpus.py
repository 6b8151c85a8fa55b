"""Find and read the training text: files, directories (recursive), globs, or the default corpus.

The default corpus is the Python standard library's own source, which exists wherever Python does:
the "generated C code" demo of char-rnn, with Python.
"""

from __future__ import annotations

import codecs
import glob
import os
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.ui import notice

_SNIFF_BYTES = 8192
# Standard-library folders left out of the default corpus: tests are huge and full of odd encodings.
_DEFAULT_EXCLUDE = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def is_binary(path: Path) -> bool:
    """A file is binary when its first 8 KiB hold a NUL byte (git's and grep's rule)."""
    with open(path, "rb") as f:
        return b"\0" in f.read(_SNIFF_BYTES)


def resolve_inputs(inputs: list[str], *, allow_binary: bool = False) -> list[Path]:
    """Expand files, directories (recursively) and globs into a sorted, de-duplicated file list.

    Binary files found inside directories or globs are skipped with a notice; a binary file named
    explicitly is an error unless `allow_binary` (the byte tokenizer can model any bytes).
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            if not allow_binary and is_binary(path):
                raise RnnlabError(f"{item} is a binary file; use --tokenizer byte to model raw bytes")
            files.append(path)
            continue
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
        elif glob.has_magic(item):
            candidates = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not candidates:
                raise RnnlabError(f"no files match {item!r}")
        else:
            raise RnnlabError(f"input not found: {item}")
        for candidate in candidates:
            if is_binary(candidate):
                notice(f"skipped binary file {candidate}")
            else:
                files.append(candidate)
    unique = list(dict.fromkeys(files))
    if not unique:
        raise RnnlabError(f"no text files in {' '.join(inputs)}")
    return unique


def default_corpus() -> list[Path]:
    """The standard library's .py files (without its test suites), sorted for reproducibility."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _DEFAULT_EXCLUDE and not d.startswith("."))
        files.extend(Path(dirpath) / name for name in sorted(filenames) if name.endswith(".py"))
    if not files:
        raise RnnlabError(f"no Python sources found under {root}; pass input files to train on")
    return files


def read_text(path: Path) -> str:
    """Read a UTF-8 text file; other encodings get a message that points at the byte tokenizer."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RnnlabError(
            f"{path} is not valid UTF-8 (byte {exc.start}); use --tokenizer byte to model raw bytes"
        ) from None


PIECE_BYTES = 2 << 20  # corpora are read in pieces this size, so memory does not grow with the corpus


def read_pieces(path: Path, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
    """The bytes [start, stop) of a file, in pieces of at most PIECE_BYTES."""
    with open(path, "rb") as f:
        f.seek(start)
        left = (path.stat().st_size if stop is None else stop) - start
        while left > 0 and (piece := f.read(min(PIECE_BYTES, left))):
            left -= len(piece)
            yield piece


def decode_pieces(path: Path, pieces: Iterable[bytes], errors: str = "strict") -> Iterator[str]:
    """UTF-8 text from byte pieces; an incremental decoder joins characters split across two pieces."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    offset = 0
    try:
        for piece in pieces:
            if text := decoder.decode(piece):
                yield text
            offset += len(piece)
        if text := decoder.decode(b"", final=True):
            yield text
    except UnicodeDecodeError as exc:
        raise RnnlabError(
            f"{path} is not valid UTF-8 (near byte {offset + exc.start}); use --tokenizer byte to model raw bytes"
        ) from None


def tail_start(path: Path, fraction: float, *, chars: bool) -> int:
    """The byte offset where the last `fraction` of the file begins: of its bytes, or (chars=True) of its
    UTF-8 characters, at a character boundary. Same cut as `split_tail` on the whole text, in bounded memory:
    one pass counts characters (bytes that do not continue a character), a second reads one piece."""
    size = path.stat().st_size
    if not chars:
        return size - round(size * fraction)
    counts = [np.count_nonzero(_starts(piece)) for piece in read_pieces(path)]
    total = sum(counts)
    cut = total - round(total * fraction)  # characters in the head
    before = 0
    for index, count in enumerate(counts):
        if before + count > cut:  # the cut character starts in this piece
            piece_start = index * PIECE_BYTES
            piece = next(read_pieces(path, piece_start, piece_start + PIECE_BYTES))
            return piece_start + int(np.flatnonzero(_starts(piece))[cut - before])
        before += count
    return size


def _starts(piece: bytes) -> np.ndarray:
    """True at the bytes that begin a UTF-8 character (every byte but 10xxxxxx continuations)."""
    return (np.frombuffer(piece, dtype=np.uint8) & 0xC0) != 0x80


def split_tail(data: str | bytes, fraction: float) -> tuple[str | bytes, str | bytes]:
    """Split into (head, tail) with `fraction` of the length in the tail (validation from the end)."""
    cut = len(data) - round(len(data) * fraction)
    return data[:cut], data[cut:]


def _hidden(path: Path, root: Path) -> bool:
    """Dot-files and anything under a dot-directory (.git, .venv) are not corpus."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)
