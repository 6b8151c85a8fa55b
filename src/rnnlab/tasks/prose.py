"""English prose the package can write without downloading anything: the docstrings of Python's own standard
library (module, class and function docstrings of at least 200 characters, in file order), for `rnnlab
example-data` and the README's quick tour."""

from __future__ import annotations

import ast
from pathlib import Path

from rnnlab.data.corpus import default_corpus
from rnnlab.errors import RnnlabError
from rnnlab.rundir import atomic_write_bytes

MIN_DOCSTRING = 200  # shorter ones are mostly one-line summaries


def docstrings(size: int) -> str:
    """About `size` characters of standard-library docstrings, separated by blank lines."""
    parts, total = [], 0
    for path in default_corpus():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a file this Python cannot read or parse is simply left out
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                text = ast.get_docstring(node)
                if text and len(text) >= MIN_DOCSTRING:
                    parts.append(text)
                    total += len(text) + 2
        if total >= size:
            break
    if not parts:
        raise RnnlabError("found no docstrings in this Python's standard library")
    return "\n\n".join(parts)[:size]


def write_example_data(folder: Path, size: int = 1_000_000, held_out: float = 0.1) -> tuple[Path, Path]:
    """Write `folder/prose.txt` (the first 1 - held_out of the text) and `folder/held_out.txt` (the rest, cut at
    a paragraph); returns their paths."""
    if size < 10_000:
        raise RnnlabError(f"--size must be >= 10000 characters, got {size}")
    text = docstrings(size)
    cut = text.rfind("\n\n", 0, int(len(text) * (1 - held_out)))
    cut = cut if cut > 0 else int(len(text) * (1 - held_out))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = folder / "prose.txt", folder / "held_out.txt"
    atomic_write_bytes(train, (text[:cut].strip() + "\n").encode("utf-8"))
    atomic_write_bytes(test, (text[cut:].strip() + "\n").encode("utf-8"))
    return train, test
