"""Find and read the training text: files, directories (recursive), globs, or the default corpus.

The default corpus is the Python standard library's own source, which exists wherever Python does:
the "generated C code" demo of char-rnn, with Python.
"""

from __future__ import annotations

import codecs
import fnmatch
import glob
import os
import stat
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.ui import notice

_SNIFF_BYTES = 8192
# Standard-library folders left out of the default corpus: tests are huge and full of odd encodings.
_DEFAULT_EXCLUDE = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


def resolve_inputs(inputs: list[str], *, allow_binary: bool = False) -> list[Path]:
    """Expand files, directories (recursively) and globs into a list of text files, each file once.

    Directories and `**` globs are walked without following symbolic links to directories (a link loop
    would never end), and a file reached twice (through a link, or by two inputs) is kept once, by its
    real path. A file named explicitly must be a readable regular file, and text unless `allow_binary`
    (the byte tokenizer can model any bytes). Inside a directory or glob, binary, unreadable and
    non-regular files (named pipes, devices, broken links) are skipped with a notice. Nothing that is not
    a regular file is ever opened: opening a named pipe would wait for a writer.
    """
    found: dict[str, Path] = {}  # real path -> the path as the user's input reached it
    for item in inputs:
        path = Path(item)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        except OSError as exc:
            raise RnnlabError(f"cannot read {item}: {exc.strerror or exc}") from None
        if st is None:
            if os.path.islink(path):
                raise RnnlabError(f"input not found: {item} is a broken symbolic link")
            if not glob.has_magic(item):
                raise RnnlabError(f"input not found: {item}")
            candidates = _glob(item)
            if not candidates:
                raise RnnlabError(f"no files match {item!r}")
        elif stat.S_ISDIR(st.st_mode):
            candidates = _walk(path, ["**"], named=True)
        else:
            _check_named(path, st.st_mode, allow_binary)
            found.setdefault(os.path.realpath(path), path)
            continue
        for candidate in candidates:
            real = os.path.realpath(candidate)
            if real in found:
                continue
            skip = _skip_reason(candidate)
            if skip:
                notice(f"skipped {skip}")
            else:
                found[real] = candidate
    if not found:
        raise RnnlabError(f"no text files in {' '.join(inputs)}")
    return list(found.values())


def _check_named(path: Path, mode: int, allow_binary: bool) -> None:
    """A file the user named: a regular, readable file, and text unless `allow_binary`; else an error."""
    if not stat.S_ISREG(mode):
        raise RnnlabError(f"{path} is not a regular file ({_kind(mode)}); pass files, directories or globs")
    try:
        head = _sniff(path)
    except OSError as exc:
        raise RnnlabError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not allow_binary and b"\0" in head:
        raise RnnlabError(f"{path} is a binary file; use --tokenizer byte to model raw bytes")


def _skip_reason(path: Path) -> str | None:
    """Why a file found in a directory or glob is not corpus (None: it is a readable text file).

    Binary means a NUL byte in the first 8 KiB (git's and grep's rule)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"broken link {path}"
    except OSError as exc:
        return f"{path} ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        return f"{path}: not a regular file ({_kind(mode)})"
    try:
        head = _sniff(path)
    except OSError as exc:
        return f"unreadable file {path} ({exc.strerror or exc})"
    return f"binary file {path}" if b"\0" in head else None


def _sniff(path: Path) -> bytes:
    """The first 8 KiB of a file (call on regular files: os.stat first; _READ cannot block regardless)."""
    fd = os.open(path, _READ)
    try:
        return os.read(fd, _SNIFF_BYTES)
    finally:
        os.close(fd)


# Opening a named pipe read-only waits for a writer, unless non-blocking; reads of regular files never block.
_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading; anything else (a named pipe, a device, a folder) or an OS error is a
    one-line RnnlabError naming the file."""
    try:
        fd = os.open(path, _READ)
    except OSError as exc:
        raise RnnlabError(f"cannot read {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise RnnlabError(f"{path} is not a regular file ({_kind(mode)})")
    return os.fdopen(fd, "rb")


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a directory" if stat.S_ISDIR(mode) else "a special file"


def _glob(pattern: str) -> list[Path]:
    """The non-directories a glob matches. Without `**` this is `glob.glob` (a link to a folder is followed
    at most once per pattern part, so never round a loop); with `**`, `_walk` from the folder before the
    first wildcard, not following links to folders. Hidden names match only parts that start with a dot."""
    parts = Path(pattern).parts
    if "**" not in parts:
        return sorted(Path(p) for p in glob.glob(pattern) if not os.path.isdir(p))
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    return _walk(Path(*parts[:fixed]) if fixed else Path("."), list(parts[fixed:]), named=False)


def _walk(root: Path, pattern: list[str], *, named: bool) -> list[Path]:
    """The non-directory entries under `root` whose relative path matches `pattern` (glob parts; `**` is
    any number of folders), sorted. Links to folders are not followed (a notice names each one), and
    dot-folders are left out unless the pattern names one. An unreadable folder below `root` is skipped
    with a notice; an unreadable `root` is an error when the user `named` it (for a glob it matches nothing).
    """
    hidden = any(part.startswith(".") for part in pattern)

    def unreadable(exc: OSError) -> None:
        if exc.filename is not None and Path(exc.filename) == root:
            if named:
                raise RnnlabError(f"cannot read {root}: {exc.strerror or exc}")
        else:
            notice(f"skipped unreadable folder {exc.filename} ({exc.strerror or exc})")

    files = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        folder = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if hidden or not d.startswith("."))
        for name in [d for d in dirnames if os.path.islink(folder / d)]:
            dirnames.remove(name)
            notice(f"skipped {folder / name}: a link to a folder (links to folders are not followed)")
        for name in filenames:
            if _matches((folder / name).relative_to(root).parts, pattern):
                files.append(folder / name)
    return sorted(files)


def _matches(parts: tuple[str, ...], pattern: list[str]) -> bool:
    """Whether path parts match glob parts, as `glob.glob(recursive=True)` would: `**` matches zero or more
    parts, and a name that starts with a dot is matched only by a part that does too."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1) if not _hidden(parts[:i]))
    return (
        bool(parts)
        and (pattern[0].startswith(".") or not parts[0].startswith("."))
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _matches(parts[1:], pattern[1:])
    )


def _hidden(parts: tuple[str, ...]) -> bool:
    """Dot-files and anything under a dot-directory (.git, .venv) are not corpus."""
    return any(part.startswith(".") for part in parts)


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
    with open_regular(path) as f:
        try:
            data = f.read()
        except OSError as exc:
            raise RnnlabError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RnnlabError(
            f"{path} is not valid UTF-8 (byte {exc.start}); use --tokenizer byte to model raw bytes"
        ) from None


PIECE_BYTES = 2 << 20  # corpora are read in pieces this size, so memory does not grow with the corpus


def read_pieces(path: Path, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
    """The bytes [start, stop) of a regular file, in pieces of at most PIECE_BYTES (errors: RnnlabError)."""
    with open_regular(path) as f:
        try:
            f.seek(start)
            left = (os.fstat(f.fileno()).st_size if stop is None else stop) - start
            while left > 0 and (piece := f.read(min(PIECE_BYTES, left))):
                left -= len(piece)
                yield piece
        except OSError as exc:
            raise RnnlabError(f"cannot read {path}: {exc.strerror or exc}") from None


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
