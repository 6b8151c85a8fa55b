"""Turn the user's inputs into a tokenizer and memory-mapped train/validation token files."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from rnnlab.config import TrainConfig
from rnnlab.data.corpus import decode_pieces, default_corpus, read_pieces, resolve_inputs, tail_start
from rnnlab.data.stream import BatchStream, TokenWriter, open_tokens, token_dtype
from rnnlab.data.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
)
from rnnlab.errors import RnnlabError
from rnnlab.ui import notice


@dataclass
class Split:
    """One split in the token store: its ids (memmap) and how many characters of text they cover."""

    tokens: np.ndarray
    chars: int

    @property
    def chars_per_token(self) -> float:
        return self.chars / max(len(self.tokens), 1)


@dataclass
class TokenStore:
    """The run directory's `tokens/` folder: tokenizer plus train and (optional) validation split."""

    tokenizer: Tokenizer
    train: Split
    val: Split | None

    @classmethod
    def open(cls, run_dir: Path) -> TokenStore:
        """Open `run_dir/tokens`; a missing, edited or damaged store is a one-line RnnlabError."""
        folder = run_dir / "tokens"
        tokenizer = load_tokenizer(run_dir / "tokenizer.json")
        try:
            meta = json.loads((folder / "meta.json").read_text())
            dtype = np.dtype(meta["dtype"])
            if dtype.kind != "u":
                raise ValueError(f"token type {dtype} is not an unsigned integer")
            splits = {}
            for name, info in meta["splits"].items():
                tokens = open_tokens(folder / f"{name}.bin", dtype)
                if len(tokens) != info["tokens"] or not isinstance(info["chars"], int) or info["chars"] < 0:
                    raise ValueError(f"{name}.bin does not match meta.json")
                if len(tokens) and int(tokens.max()) >= tokenizer.vocab_size:
                    raise ValueError(f"{name}.bin holds ids outside the vocabulary of tokenizer.json")
                splits[name] = Split(tokens, info["chars"])
            train = splits["train"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RnnlabError(f"{run_dir} has no readable token store ({exc})") from None
        return cls(tokenizer, train, splits.get("val"))


def build_token_store(config: TrainConfig, run_dir: Path) -> TokenStore:
    """Fit the tokenizer on the training part of the inputs and write tokens/{train,val}.bin.

    Every file is streamed in pieces (corpus.PIECE_BYTES), never read whole, so corpora larger than
    memory work: one pass for the character vocabulary (char tokenizer), one to encode. A validation
    part taken from the end of each file is a byte range found up front (`tail_start`).
    """
    byte_level = config.tokenizer == "byte"
    files = resolve_inputs(config.inputs, allow_binary=byte_level) if config.inputs else default_corpus()
    if not config.inputs and not byte_level:  # the default corpus skips a rare non-UTF-8 file
        files = [path for path in files if _is_utf8(path)]
    val_files = resolve_inputs(config.val_files, allow_binary=byte_level) if config.val_files else []
    fraction = 0.0 if val_files else config.val_fraction

    # Byte ranges (path, start, stop) of each split.
    train_ranges: list[tuple[Path, int, int]] = []
    val_ranges: list[tuple[Path, int, int]] = [(path, 0, path.stat().st_size) for path in val_files]
    for path in files:
        size = path.stat().st_size
        cut = tail_start(path, fraction, chars=not byte_level) if fraction > 0 else size
        train_ranges.append((path, 0, cut))
        if fraction > 0:
            val_ranges.append((path, cut, size))
    if sum(stop - start for _, start, stop in train_ranges) == 0:
        raise RnnlabError("the training input is empty")

    tokenizer = _fit_tokenizer(config, train_ranges, val_ranges)
    folder = run_dir / "tokens"
    folder.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.vocab_size)
    meta: dict = {"dtype": dtype.name, "splits": {}}
    encode = _CharTable(tokenizer) if isinstance(tokenizer, CharTokenizer) else partial(_encode, tokenizer)
    for name, ranges in (("train", train_ranges), ("val", val_ranges)):
        if name == "val" and not ranges:
            continue
        writer = TokenWriter(folder / f"{name}.bin", dtype)
        chars = 0
        try:
            for path, start, stop in ranges:
                if byte_level:  # characters are counted on the UTF-8 decoding, as bits/char needs
                    for piece in read_pieces(path, start, stop):
                        writer.write(_encode(tokenizer, piece, name))
                    chars += sum(map(len, decode_pieces(path, read_pieces(path, start, stop), errors="replace")))
                else:
                    for text in _texts([(path, start, stop)], config.tokenizer):
                        writer.write(encode(text, name))
                        chars += len(text)
        finally:
            writer.close()
        meta["splits"][name] = {"tokens": writer.count, "chars": chars}
        if name == "train":  # fail on too-short input before anything else is said or written
            BatchStream(open_tokens(writer.path, dtype), config.batch_size, config.seq_len)
    if "val" in meta["splits"] and meta["splits"]["val"]["tokens"] < 2:
        notice("validation text is shorter than 2 tokens; training without validation")
        del meta["splits"]["val"]
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    save_tokenizer(tokenizer, run_dir / "tokenizer.json")
    return TokenStore.open(run_dir)


def _fit_tokenizer(
    config: TrainConfig, train_ranges: list[tuple[Path, int, int]], val_ranges: list[tuple[Path, int, int]]
) -> Tokenizer:
    """The tokenizer of `config.tokenizer`, fitted on the training text (streamed piece by piece).

    The character vocabulary also covers the validation text, as char-rnn's does: a character set is
    not training, and otherwise a held-out tail with one rare character (the standard library has a
    few ligatures) could not be scored at all. Word and BPE vocabularies come from training text only.
    """
    texts = _texts(train_ranges, config.tokenizer)
    if config.tokenizer == "byte":
        return ByteTokenizer()
    if config.tokenizer == "word":
        return WordTokenizer.fit(
            texts,
            vocab_size=config.vocab_size_limit,
            min_count=config.min_count,
            pattern=config.word_pattern,
            lowercase=config.lowercase,
        )
    if config.tokenizer == "bpe":
        return BPETokenizer.fit(texts, vocab_size=config.vocab_size_limit or 1000, lowercase=config.lowercase)
    everything = itertools.chain(texts, _texts(val_ranges, config.tokenizer))
    return CharTokenizer.fit(map(_distinct_chars, everything), unk=config.unknown == "unk")


MAX_CARRY = 1 << 20  # characters


def _texts(ranges: list[tuple[Path, int, int]], kind: str) -> Iterator[str]:
    """The text of byte ranges, piece by piece. For word and BPE tokenizers a piece ends where a run of
    whitespace begins (the rest moves to the next piece), so no word is cut in two at a piece boundary."""
    for path, start, stop in ranges:
        carry = ""
        for text in decode_pieces(path, read_pieces(path, start, stop)):
            if kind not in ("word", "bpe"):
                yield text
                continue
            text = carry + text
            # A run without whitespace longer than a piece (minified code, base64) is cut where it is:
            # carrying it on would copy a growing string once per piece.
            cut = _last_word_boundary(text) or (len(text) if len(text) > MAX_CARRY else 0)
            carry = text[cut:]
            if cut:
                yield text[:cut]
        if carry:
            yield carry


def _last_word_boundary(text: str) -> int:
    """Where the last run of whitespace that follows non-whitespace begins (0: none)."""
    last_space = max(text.rfind(c) for c in " \n\t\r")
    return len(text[: last_space + 1].rstrip()) if last_space > 0 else 0


def _is_utf8(path: Path) -> bool:
    """Whether a file decodes as UTF-8 (streamed); a notice when it does not."""
    try:
        for _ in decode_pieces(path, read_pieces(path)):
            pass
    except RnnlabError:
        notice(f"skipped non-UTF-8 file {path}")
        return False
    return True


def _distinct_chars(text: str) -> str:
    """The distinct characters of a piece, found with one vectorised pass (set(text) is ~10x slower)."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return "".join(map(chr, np.flatnonzero(np.bincount(points)))) if len(points) else ""


class _CharTable:
    """CharTokenizer.encode as one table lookup per character: on a large corpus its binary search
    (searchsorted) is most of the time. A piece with a character outside the vocabulary goes to the
    tokenizer itself, which raises its error or maps it to <unk>."""

    def __init__(self, tokenizer: CharTokenizer) -> None:
        self.tokenizer = tokenizer
        points = np.array([ord(c) for c in tokenizer.chars], dtype=np.int64)
        self.table = np.full(int(points.max()) + 2, -1, dtype=np.int32)  # the last slot: beyond the vocabulary
        self.table[points] = np.arange(len(points), dtype=np.int32)

    def __call__(self, text: str, split: str) -> np.ndarray:
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = self.table[np.minimum(points, len(self.table) - 1)]
        return _encode(self.tokenizer, text, split) if (ids < 0).any() else ids


def _encode(tokenizer: Tokenizer, text: str | bytes, split: str) -> np.ndarray:
    if isinstance(tokenizer, ByteTokenizer) and isinstance(text, bytes):
        return tokenizer.encode_bytes(text)
    try:
        return tokenizer.encode(text)  # type: ignore[arg-type]
    except RnnlabError as exc:
        raise RnnlabError(f"{split} text: {exc}") from None
