"""Turn the user's inputs into a tokenizer and memory-mapped train/validation token files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.config import TrainConfig
from rnnlab.data.corpus import default_corpus, read_text, resolve_inputs, split_tail
from rnnlab.data.stream import BatchStream, TokenWriter, open_tokens, token_dtype
from rnnlab.data.tokenizers import ByteTokenizer, CharTokenizer, Tokenizer, load_tokenizer, save_tokenizer
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
        folder = run_dir / "tokens"
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise RnnlabError(f"{run_dir} has no readable token store ({exc})") from None
        dtype = np.dtype(meta["dtype"])
        splits = {
            name: Split(open_tokens(folder / f"{name}.bin", dtype), info["chars"])
            for name, info in meta["splits"].items()
        }
        return cls(load_tokenizer(run_dir / "tokenizer.json"), splits["train"], splits.get("val"))


def build_token_store(config: TrainConfig, run_dir: Path) -> TokenStore:
    """Read inputs, fit the tokenizer on the training part, and write tokens/{train,val}.bin."""
    byte_level = config.tokenizer == "byte"
    files = resolve_inputs(config.inputs, allow_binary=byte_level) if config.inputs else default_corpus()
    val_files = resolve_inputs(config.val_files, allow_binary=byte_level) if config.val_files else []
    fraction = 0.0 if val_files else config.val_fraction

    def pieces(paths: list[Path], part: str) -> list[str | bytes]:
        """Each file's text (or bytes) restricted to the requested part: all, head or tail."""
        out = []
        for path in paths:
            data: str | bytes = path.read_bytes() if byte_level else _read(path, config.inputs)
            if part != "all":
                data = split_tail(data, fraction)[0 if part == "head" else 1]
            out.append(data)
        return out

    train_part, val_part = ("head", "tail") if fraction > 0 else ("all", "all")
    train_texts = pieces(files, train_part)
    if sum(len(t) for t in train_texts) == 0:
        raise RnnlabError("the training input is empty")
    val_texts = pieces(val_files or files, val_part) if (val_files or fraction > 0) else []

    tokenizer: Tokenizer = (
        ByteTokenizer() if byte_level else CharTokenizer.fit(train_texts, unk=config.unknown == "unk")
    )
    folder = run_dir / "tokens"
    folder.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.vocab_size)
    meta: dict = {"dtype": dtype.name, "splits": {}}
    for name, texts in (("train", train_texts), ("val", val_texts)):
        if name == "val" and not texts:
            continue
        writer = TokenWriter(folder / f"{name}.bin", dtype)
        chars = 0
        try:
            for text in texts:
                writer.write(_encode(tokenizer, text, name))
                chars += len(text.decode("utf-8", errors="replace")) if isinstance(text, bytes) else len(text)
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


def _read(path: Path, inputs: list[str]) -> str:
    """Read text; in the default corpus a rare non-UTF-8 file is skipped rather than fatal."""
    if inputs:
        return read_text(path)
    try:
        return read_text(path)
    except RnnlabError:
        notice(f"skipped non-UTF-8 file {path}")
        return ""


def _encode(tokenizer: Tokenizer, text: str | bytes, split: str) -> np.ndarray:
    if isinstance(tokenizer, ByteTokenizer) and isinstance(text, bytes):
        return tokenizer.encode_bytes(text)
    try:
        return tokenizer.encode(text)  # type: ignore[arg-type]
    except RnnlabError as exc:
        raise RnnlabError(f"{split} text: {exc}") from None
