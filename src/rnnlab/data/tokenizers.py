"""Tokenizers: text <-> integer ids. Character (vocabulary from the training data), byte (fixed 256),
word (regex pieces, frequency-ranked vocabulary) and byte-level BPE (Hugging Face `tokenizers`).

Character and byte encode with NumPy (a vectorised lookup, not a Python loop); BPE encodes in Rust.
"""

from __future__ import annotations

import codecs
import json
import re
from collections import Counter
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


# Words, runs of whitespace, and single other characters: every character of the text lands in a token,
# so decode(encode(text)) == text whenever every piece is in the vocabulary.
WORD_PATTERN = r"\w+|\s+|[^\w\s]"


class WordTokenizer:
    """Word-level: the text is cut into pieces by a regex (text the regex skips becomes pieces too),
    and the most frequent pieces of the training text form the vocabulary; id 0 is `<unk>`.

    Whitespace and punctuation are pieces of their own, so decoding is concatenation and in-vocabulary
    text round-trips exactly (lower-cased first when `lowercase`).
    """

    kind = "word"

    def __init__(self, words: list[str], pattern: str = WORD_PATTERN, lowercase: bool = False) -> None:
        self.words = [UNK, *(w for w in words if w != UNK)]
        self.pattern, self.lowercase = pattern, lowercase
        try:
            self._regex = re.compile(pattern)
        except re.error as exc:
            raise RnnlabError(f"--word-pattern {pattern!r} is not a valid regex: {exc}") from None
        self._index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        vocab_size: int = 0,
        min_count: int = 1,
        pattern: str = WORD_PATTERN,
        lowercase: bool = False,
    ) -> WordTokenizer:
        """Keep the pieces seen at least `min_count` times, the most frequent first, at most `vocab_size`
        ids in all including `<unk>` (0: no limit). Ties are broken alphabetically, so fitting is deterministic."""
        empty = cls([], pattern, lowercase)
        counts = Counter(piece for text in texts for piece in empty.pieces(text, normalise=True))
        if not counts:
            raise RnnlabError("cannot build a word vocabulary from empty text")
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if vocab_size:
            ranked = ranked[: vocab_size - 1]
        return cls(ranked, pattern, lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def pieces(self, text: str, normalise: bool = False) -> list[str]:
        """The text cut into pieces (matches of the pattern and the gaps between them), in order."""
        if normalise and self.lowercase:
            text = text.lower()
        out, end = [], 0
        for match in self._regex.finditer(text):
            if match.start() > end:
                out.append(text[end : match.start()])
            if match.end() > match.start():
                out.append(match.group())
            end = max(end, match.end())
        if end < len(text):
            out.append(text[end:])
        return out

    def encode(self, text: str) -> np.ndarray:
        """Text -> int64 ids; pieces outside the vocabulary become `<unk>` (id 0)."""
        get = self._index.get
        return np.array([get(p, 0) for p in self.pieces(text, normalise=True)], dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.words[int(i)] for i in ids)

    def decoder(self) -> Callable[[int], str]:
        """id -> word (or whitespace/punctuation piece), for streaming."""
        return self.words.__getitem__

    def to_dict(self) -> dict[str, Any]:
        return {"type": "word", "pattern": self.pattern, "lowercase": self.lowercase, "words": self.words}


class BPETokenizer:
    """Byte-level BPE trained with the Hugging Face `tokenizers` library: merges learnt from the
    training text over the 256 byte symbols, so any text is representable and round-trips exactly."""

    kind = "bpe"

    def __init__(self, hf: Any, lowercase: bool = False) -> None:
        self.hf, self.lowercase = hf, lowercase
        # Each id's bytes, via GPT-2's byte <-> printable-character table, so decoding is byte concatenation.
        to_byte = {c: b for b, c in _byte_alphabet().items()}
        vocab = hf.get_vocab()
        self._bytes = [b""] * (max(vocab.values()) + 1)
        for token, i in vocab.items():
            self._bytes[i] = bytes(to_byte[c] for c in token)

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int = 1000, lowercase: bool = False) -> BPETokenizer:
        """Learn merges until the vocabulary (256 bytes + merges) reaches `vocab_size`."""
        if vocab_size < 257:
            raise RnnlabError(f"--vocab-size for bpe must be > 256 (the byte alphabet), got {vocab_size}")
        hf_lib = _hf_tokenizers()
        hf = hf_lib.Tokenizer(hf_lib.models.BPE())
        if lowercase:
            hf.normalizer = hf_lib.normalizers.Lowercase()
        hf.pre_tokenizer = hf_lib.pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = hf_lib.decoders.ByteLevel()
        trainer = hf_lib.trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=hf_lib.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator((t for t in texts if t), trainer)  # streamed: the corpus is never held whole
        return cls(hf, lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self._bytes)

    def encode(self, text: str) -> np.ndarray:
        return np.array(self.hf.encode(text).ids, dtype=np.int64)

    def pieces(self, text: str) -> list[str]:
        """The original text under each token (a character split across tokens appears under each)."""
        return [text[a:b] for a, b in self.hf.encode(text).offsets]

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self._bytes[int(i)] for i in ids).decode("utf-8", errors="replace")

    def decoder(self) -> Callable[[int], str]:
        """Streaming decode: a character split across tokens is emitted once its last byte arrives."""
        incremental = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return lambda i: incremental.decode(self._bytes[i])

    def to_dict(self) -> dict[str, Any]:
        return {"type": "bpe", "lowercase": self.lowercase, "tokenizer": self.hf.to_str()}


def _hf_tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise RnnlabError("--tokenizer bpe needs the `tokenizers` package (pip install tokenizers)") from None
    return tokenizers


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character table, used by byte-level BPE vocabularies."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from its JSON form (tokenizer.json)."""
    kind = data.get("type")
    if kind == "char":
        return CharTokenizer(data["chars"], unk=bool(data.get("unk", False)))
    if kind == "byte":
        return ByteTokenizer()
    if kind == "word":
        return WordTokenizer(data["words"], data.get("pattern", WORD_PATTERN), bool(data.get("lowercase", False)))
    if kind == "bpe":
        hf = _hf_tokenizers().Tokenizer.from_str(data["tokenizer"])
        return BPETokenizer(hf, bool(data.get("lowercase", False)))
    raise RnnlabError(f"unknown tokenizer type {kind!r} in tokenizer.json")


def save_tokenizer(tokenizer: Tokenizer, path: Path) -> None:
    path.write_text(json.dumps(tokenizer.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")


def load_tokenizer(path: Path) -> Tokenizer:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RnnlabError(f"cannot read {path}: {exc}") from None
    return tokenizer_from_dict(data)
