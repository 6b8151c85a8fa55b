"""Tokenizers: text <-> integer ids. Character (vocabulary from the training data), byte (fixed 256),
word (regex pieces, frequency-ranked vocabulary) and byte-level BPE (Hugging Face `tokenizers`).

Character and byte encode with NumPy (a vectorised lookup, not a Python loop); BPE encodes in Rust.

tokenizer.json is in Hugging Face's `tokenizers` format, so `tokenizers.Tokenizer.from_file` reads every kind and
gives the same ids: char = a WordLevel model over single characters (a Split pre-tokenizer on CHAR_PATTERN),
word = a WordLevel model over the word pattern's pieces, byte = a BPE model over the 256 byte symbols with no
merges, bpe = the trained BPE. rnnlab reads the kind back from that structure (`tokenizer_from_hf`), checking it
as strictly as its own earlier format, `{"type": "char", ...}`, which it still reads (`tokenizer_from_dict`).
`to_dict` is that earlier, compact description (what a model's identity hashes).
"""

from __future__ import annotations

import codecs
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from rnnlab.data.corpus import open_regular
from rnnlab.errors import RnnlabError
from rnnlab.rundir import atomic_write_bytes

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

    def to_hf(self) -> Any: ...


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

    def to_hf(self) -> Any:
        """The same ids as a `tokenizers.Tokenizer`: one piece per character, a WordLevel vocabulary."""
        vocab = {c: i for i, c in enumerate(self.chars)} | ({UNK: len(self.chars)} if self.unk else {})
        return _word_level(vocab, CHAR_PATTERN, lowercase=False, unk=self.unk)


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

    def to_hf(self) -> Any:
        """The same ids as a `tokenizers.Tokenizer`: byte-level BPE with the 256 byte symbols and no merges."""
        hf_lib = _hf_tokenizers()
        vocab = {symbol: byte for byte, symbol in _byte_alphabet().items()}
        hf = hf_lib.Tokenizer(hf_lib.models.BPE(vocab=vocab, merges=[]))
        hf.pre_tokenizer = hf_lib.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        hf.decoder = hf_lib.decoders.ByteLevel()
        return hf


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

    def to_hf(self) -> Any:
        """The same ids as a `tokenizers.Tokenizer`: the pattern's pieces (and the gaps between them), a
        WordLevel vocabulary with `<unk>`. A pattern the `tokenizers` regex engine cannot compile is an
        RnnlabError (save_tokenizer then keeps rnnlab's own format)."""
        return _word_level({w: i for i, w in enumerate(self.words)}, self.pattern, self.lowercase, unk=True)


# The BPE trainer's work for each merge grows with the length of the words its pair occurs in, so one long
# word (GPT-2's pre-tokenizer keeps a run of letters, digits or spaces whole, as in minified or generated
# files) made training quadratic in the length of its line. Training text is therefore cut inside any run
# of non-space (or space) characters longer than this, so no word the trainer sees is longer than this + 1
# (a word may begin with one space). Encoding is not cut: a long word is still encoded whole.
BPE_MAX_RUN = 64
_LONG_RUN = re.compile(rf"\S{{{BPE_MAX_RUN + 1},}}|\s{{{BPE_MAX_RUN + 1},}}")


def bpe_training_pieces(text: str) -> Iterator[str]:
    """`text` in pieces that join back to it, cut every BPE_MAX_RUN characters inside each run of more than
    BPE_MAX_RUN non-space (or space) characters and nowhere else: ordinary text is one piece."""
    start = 0
    for match in _LONG_RUN.finditer(text):
        for cut in range(match.start() + BPE_MAX_RUN, match.end(), BPE_MAX_RUN):
            yield text[start:cut]
            start = cut
    yield text[start:]


class BPETokenizer:
    """Byte-level BPE trained with the Hugging Face `tokenizers` library: merges learnt from the
    training text over the 256 byte symbols, so any text is representable and round-trips exactly."""

    kind = "bpe"

    def __init__(self, hf: Any, lowercase: bool = False) -> None:
        """Wrap a trained `tokenizers.Tokenizer`; a vocabulary that is not byte-level BPE's (ids 0..n-1, every
        token made of byte symbols, all 256 bytes present) is an RnnlabError."""
        self.hf, self.lowercase = hf, lowercase
        # Each id's bytes, via GPT-2's byte <-> printable-character table, so decoding is byte concatenation.
        to_byte = {c: b for b, c in _byte_alphabet().items()}
        vocab = hf.get_vocab()
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise RnnlabError("the BPE vocabulary's ids are not 0, 1, ..., n-1")
        if not to_byte.keys() <= vocab.keys():
            raise RnnlabError("the BPE vocabulary lacks some of the 256 byte symbols")
        self._bytes = [b""] * len(vocab)
        for token, i in vocab.items():
            if not token or not all(c in to_byte for c in token):
                raise RnnlabError(f"BPE token {token!r} is not made of byte-level symbols")
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
        pieces = (piece for text in texts if text for piece in bpe_training_pieces(text))
        hf.train_from_iterator(pieces, trainer)  # streamed: the corpus is never held whole
        return cls(hf, lowercase)

    @classmethod
    def from_json(cls, text: str, lowercase: bool = False) -> BPETokenizer:
        """A tokenizer from the Hugging Face JSON that `to_dict` saves; any other text is an RnnlabError."""
        try:
            hf = _hf_tokenizers().Tokenizer.from_str(text)
        except Exception as exc:  # the Rust parser's errors have no narrower Python type
            raise RnnlabError(f"'tokenizer' is not a Hugging Face tokenizer ({_first_line(exc)})") from None
        if type(hf.model).__name__ != "BPE":
            raise RnnlabError(f"'tokenizer' holds a {type(hf.model).__name__} model, not BPE")
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

    def to_hf(self) -> Any:
        return self.hf


CHAR_PATTERN = r"[\s\S]"  # one piece per character (a Split pre-tokenizer's regex, as `tokenizers` runs it)


def _word_level(vocab: dict[str, int], pattern: str, lowercase: bool, unk: bool) -> Any:
    """A `tokenizers.Tokenizer` that cuts text at `pattern` (keeping the gaps) and looks the pieces up in `vocab`."""
    hf_lib = _hf_tokenizers()
    hf = hf_lib.Tokenizer(hf_lib.models.WordLevel(vocab=vocab, unk_token=UNK if unk else None))
    try:
        hf.pre_tokenizer = hf_lib.pre_tokenizers.Split(hf_lib.Regex(pattern), behavior="isolated")
    except Exception as exc:  # the regex engine's errors have no narrower Python type
        raise RnnlabError(f"the `tokenizers` library cannot run the pattern {pattern!r}: {_first_line(exc)}") from None
    if lowercase:
        hf.normalizer = hf_lib.normalizers.Lowercase()
    hf.decoder = hf_lib.decoders.Fuse()
    return hf


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


def tokenizer_from_dict(data: Any) -> Tokenizer:
    """Rebuild a tokenizer from its JSON form (tokenizer.json). Every field is checked, so an edited or
    damaged file is a one-line RnnlabError, never a tokenizer whose ids differ from the ones trained on."""
    if not isinstance(data, dict):
        raise RnnlabError(f"expected a JSON object, found {_json_type(data)}")
    kind = _get(data, "type", str)
    if kind == "char":
        chars, unk = _get(data, "chars", str), _get(data, "unk", bool, False)
        if not chars:
            raise RnnlabError("'chars' is empty")
        _check_unique("chars", list(chars))
        if list(chars) != sorted(chars):
            raise RnnlabError("'chars' is not in code-point order")
        return CharTokenizer(chars, unk=unk)
    if kind == "byte":
        return ByteTokenizer()
    if kind == "word":
        words = _get(data, "words", list)
        if not all(isinstance(w, str) and w for w in words):
            raise RnnlabError("'words' must be a list of non-empty strings")
        if not words or words[0] != UNK:
            raise RnnlabError(f"'words' must begin with {UNK!r}")
        _check_unique("words", words)
        pattern, lowercase = _get(data, "pattern", str, WORD_PATTERN), _get(data, "lowercase", bool, False)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RnnlabError(f"'pattern' {pattern!r} is not a valid regex: {exc}") from None
        return WordTokenizer(words, pattern, lowercase)
    if kind == "bpe":
        return BPETokenizer.from_json(_get(data, "tokenizer", str), _get(data, "lowercase", bool, False))
    raise RnnlabError(f"unknown tokenizer type {kind!r} (expected char, byte, word or bpe)")


_TYPE_NAMES = {str: "a string", bool: "true or false", list: "a list"}
T = TypeVar("T")


def _get(data: dict[str, Any], key: str, kind: type[T], default: T | None = None) -> T:
    """data[key], which must be a `kind`; when it is missing, `default` (None: the key is required)."""
    if key not in data:
        if default is None:
            raise RnnlabError(f"missing key {key!r}")
        return default
    value = data[key]
    if not isinstance(value, kind):
        raise RnnlabError(f"{key!r} must be {_TYPE_NAMES[kind]}, found {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), "null")


def _check_unique(key: str, items: list[str]) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise RnnlabError(f"{key!r} lists {item!r} twice")
        seen.add(item)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def tokenizer_from_hf(text: str, data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from Hugging Face JSON (`text`, parsed as `data`) that `save_tokenizer` wrote: its kind
    from the model and the pre-tokenizer, every field checked, so an edited file is one RnnlabError."""
    hf_lib = _hf_tokenizers()
    try:
        hf = hf_lib.Tokenizer.from_str(text)
    except Exception as exc:  # the Rust parser's errors have no narrower Python type
        raise RnnlabError(f"not a Hugging Face tokenizer ({_first_line(exc)})") from None
    model, pre, normalizer = data.get("model") or {}, data.get("pre_tokenizer") or {}, data.get("normalizer")
    if normalizer not in (None, {"type": "Lowercase"}):
        raise RnnlabError(f"unsupported normalizer {normalizer!r} (rnnlab writes none or Lowercase)")
    lowercase = normalizer is not None
    if model.get("type") == "BPE":
        if not model.get("merges") and hf.get_vocab() == {c: b for b, c in _byte_alphabet().items()}:
            if lowercase:
                raise RnnlabError("a byte tokenizer has no normalizer")
            return ByteTokenizer()
        return BPETokenizer(hf, lowercase)
    if model.get("type") != "WordLevel":
        raise RnnlabError(f"a {model.get('type')!r} model is none of rnnlab's tokenizers (char, byte, word, bpe)")
    if pre.get("type") != "Split" or pre.get("behavior") != "Isolated" or pre.get("invert"):
        raise RnnlabError("a WordLevel tokenizer of rnnlab's cuts its text with an isolating Split pre-tokenizer")
    pattern = (pre.get("pattern") or {}).get("Regex")
    vocab = hf.get_vocab()
    if not isinstance(pattern, str) or sorted(vocab.values()) != list(range(len(vocab))):
        raise RnnlabError("the WordLevel vocabulary's ids are not 0, 1, ..., n-1, or its pattern is not a regex")
    tokens = sorted(vocab, key=vocab.__getitem__)
    if model.get("unk_token") != UNK:  # in the vocabulary or not: a character vocabulary may have no <unk>
        raise RnnlabError(f"the WordLevel model's unk_token must be {UNK!r}")
    if pattern == CHAR_PATTERN:
        chars = [t for t in tokens if t != UNK]
        if lowercase or any(len(c) != 1 for c in chars) or (UNK in vocab and tokens[-1] != UNK):
            raise RnnlabError("a character vocabulary holds single characters, with <unk> last if at all")
        return tokenizer_from_dict({"type": "char", "chars": "".join(chars), "unk": UNK in vocab})
    return tokenizer_from_dict({"type": "word", "words": tokens, "pattern": pattern, "lowercase": lowercase})


def save_tokenizer(tokenizer: Tokenizer, path: Path) -> None:
    """Write tokenizer.json in Hugging Face's format (atomically, like every file of a run directory); a word
    pattern that format's regex engine cannot run keeps rnnlab's own format, which rnnlab reads as well."""
    try:
        text = tokenizer.to_hf().to_str()
    except RnnlabError:
        text = json.dumps(tokenizer.to_dict(), ensure_ascii=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def load_tokenizer(path: Path) -> Tokenizer:
    """Read tokenizer.json; an unreadable, malformed or edited file is one RnnlabError line naming it."""
    try:
        with open_regular(path) as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise RnnlabError(f"{path} is not readable JSON ({_first_line(exc)})") from None
    try:
        if isinstance(data, dict) and "model" in data and "type" not in data:  # Hugging Face's format
            return tokenizer_from_hf(json.dumps(data), data)
        return tokenizer_from_dict(data)
    except RnnlabError as exc:
        raise RnnlabError(f"{path}: {exc}") from None
