"""Tokenizing in pieces (corpora larger than memory) gives what tokenizing whole files gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnlab.config import build_configs
from rnnlab.data import corpus
from rnnlab.data.corpus import decode_pieces, read_pieces, split_tail, tail_start
from rnnlab.data.prepare import build_token_store

TEXT = "héllo wörld, ☃ snow 𝄞 clef\n" * 40  # 1-, 2-, 3- and 4-byte characters


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """7-byte pieces: multi-byte characters and words are cut at nearly every boundary."""
    monkeypatch.setattr(corpus, "PIECE_BYTES", 7)


def test_pieces_decode_to_the_whole_text(tmp_path: Path, small_pieces: None):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert "".join(decode_pieces(path, read_pieces(path))) == TEXT


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.3, 0.999])
def test_tail_start_matches_split_tail(tmp_path: Path, small_pieces: None, fraction: float):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    head, tail = split_tail(TEXT, fraction)
    cut = tail_start(path, fraction, chars=True)
    assert path.read_bytes()[:cut].decode() == head and path.read_bytes()[cut:].decode() == tail


@pytest.mark.parametrize("tokenizer", ["char", "byte", "word"])
def test_streamed_store_equals_whole_file_encoding(tmp_path: Path, small_pieces: None, tokenizer: str):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    _, config = build_configs(inputs=[str(path)], tokenizer=tokenizer, batch_size=2, seq_len=4, val_fraction=0.1)
    store = build_token_store(config, tmp_path / "run")
    data = path.read_bytes() if tokenizer == "byte" else TEXT
    head, tail = split_tail(data, 0.1)
    encode = store.tokenizer.encode_bytes if tokenizer == "byte" else store.tokenizer.encode
    assert np.array_equal(store.train.tokens, encode(head))
    assert store.val is not None and np.array_equal(store.val.tokens, encode(tail))
    assert store.train.chars == len(split_tail(TEXT, 0.1)[0]) or tokenizer == "byte"
