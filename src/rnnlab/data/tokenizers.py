"""Tokenizers: text <-> integer ids. Character (vocabulary from the training data) and byte (fixed 256).

Both encode with NumPy so tokenizing a large corpus is a vectorised lookup, not a Python loop.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rnnlab.errors import RnnlabError

UNK = "<unk>"


class Tokenizer(Protocol):
    """What the rest of rnnlab needs from a tokenizer."""

    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def decoder(self) -> Callable[[int], str]: ...

    def to_dict(self) -> dict[str, Any]: ...


class CharTokenizer:
    """One id per Unicode character seen in training; unseen characters are an error or `<unk>`.

    Ids are assigned in code-point order; with `unk=True` the last id is `<unk>` and decodes to U+FFFD.
    """

    kind = "char"

    def __init__(self, chars: Iterable[str], unk: bool = False) -> None:
        self.chars = sorted(set(chars))
        self.unk = unk
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        self._index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, texts: Iterable[str], unk: bool = False) -> CharTokenizer:
        """Build the vocabulary from the characters of `texts`."""
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        if not seen:
            raise RnnlabError("cannot build a character vocabulary from empty text")
        return cls(seen, unk=unk)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + int(self.unk)

    def encode(self, text: str) -> np.ndarray:
        """Text -> int64 ids; unseen characters raise RnnlabError listing them (or map to <unk>)."""
        if not text:
            return np.zeros(0, dtype=np.int64)
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self._codepoints, points)
        ids_clipped = np.minimum(ids, len(self.chars) - 1)
        known = self._codepoints[ids_clipped] == points
        if not known.all():
            if not self.unk:
                missing = sorted({chr(p) for p in points[~known]})
                shown = " ".join(repr(c) for c in missing[:20]) + (" ..." if len(missing) > 20 else "")
                raise RnnlabError(
                    f"{len(missing)} character(s) not in the model's vocabulary: {shown} "
                    "(train with --unknown unk or --tokenizer byte to accept them)"
                )
            ids_clipped = np.where(known, ids_clipped, len(self.chars))
        return ids_clipped.astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self._piece(int(i)) for i in ids)

    def decoder(self) -> Callable[[int], str]:
        """A function id -> text piece, for streaming output token by token."""
        return self._piece

    def _piece(self, i: int) -> str:
        return self.chars[i] if i < len(self.chars) else "\ufffd"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "char", "chars": "".join(self.chars), "unk": self.unk}


class ByteTokenizer:
    """The 256 byte values; any text or file is representable, so there are no unknown characters."""

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return self.encode_bytes(text.encode("utf-8"))

    def encode_bytes(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def decoder(self) -> Callable[[int], str]:
        """Streaming decode: multi-byte UTF-8 characters are emitted once complete."""
        incremental = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda i: incremental.decode(bytes([i]))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "byte"}


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its JSON form (tokenizer.json)."""
    kind = data.get("type")
    if kind == "char":
        return CharTokenizer(data["chars"], unk=bool(data.get("unk", False)))
    if kind == "byte":
        return ByteTokenizer()
    raise RnnlabError(f"unknown tokenizer type {kind!r} in tokenizer.json")


def save_tokenizer(tokenizer: Tokenizer, path: Path) -> None:
    path.write_text(json.dumps(tokenizer.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")


def load_tokenizer(path: Path) -> Tokenizer:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RnnlabError(f"cannot read {path}: {exc}") from None
    return tokenizer_from_dict(data)
