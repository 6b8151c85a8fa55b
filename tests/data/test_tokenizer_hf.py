"""tokenizer.json is Hugging Face's format: `tokenizers.Tokenizer.from_file` reads every kind rnnlab writes and
gives the same ids; rnnlab reads it back exactly, still reads its own earlier format, and refuses an edited file
in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tokenizers

from rnnlab.data.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
)
from rnnlab.errors import RnnlabError

TEXT = "The cat sat on the mat.\nThe dog, naïve, sat on the log!  Ünïcode, ok\t\n" * 20
PROBE = TEXT[:300] + " The mat"

KINDS = {
    "char": lambda: CharTokenizer.fit([TEXT]),
    "char with <unk>": lambda: CharTokenizer.fit([TEXT], unk=True),
    "byte": ByteTokenizer,
    "word": lambda: WordTokenizer.fit([TEXT]),
    "word, lower-cased": lambda: WordTokenizer.fit([TEXT], lowercase=True),
    "bpe": lambda: BPETokenizer.fit([TEXT], vocab_size=300),
    "bpe, lower-cased": lambda: BPETokenizer.fit([TEXT], vocab_size=300, lowercase=True),
}


@pytest.mark.parametrize("kind", KINDS)
def test_hugging_face_reads_every_kind_with_the_same_ids(kind: str, tmp_path: Path) -> None:
    ours = KINDS[kind]()
    save_tokenizer(ours, tmp_path / "tokenizer.json")
    theirs = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    probe = PROBE + (" Zebra" if kind != "char" else "")  # a word or character the vocabulary never saw
    assert theirs.encode(probe).ids == ours.encode(probe).tolist()
    again = load_tokenizer(tmp_path / "tokenizer.json")
    assert type(again) is type(ours) and again.to_dict() == ours.to_dict()


def test_rnnlabs_earlier_format_still_loads(tmp_path: Path) -> None:
    ours = CharTokenizer.fit([TEXT])
    (tmp_path / "old.json").write_text(json.dumps(ours.to_dict()))
    assert load_tokenizer(tmp_path / "old.json").encode(PROBE).tolist() == ours.encode(PROBE).tolist()


def _edit(tokenizer, edit) -> str:  # type: ignore[no-untyped-def]
    data = json.loads(tokenizer.to_hf().to_str())
    edit(data)
    return json.dumps(data)


EDITS = [
    (KINDS["char"], lambda d: d["model"]["vocab"].update({"ab": 999}), "ids are not 0, 1, ..., n-1"),
    (KINDS["char"], lambda d: d["model"]["vocab"].update({"ab": len(d["model"]["vocab"])}), "single characters"),
    (KINDS["char"], lambda d: d["model"].update({"unk_token": "[UNK]"}), "unk_token must be '<unk>'"),
    (KINDS["char"], lambda d: d.update({"normalizer": {"type": "NFKC"}}), "unsupported normalizer"),
    (KINDS["char"], lambda d: d["pre_tokenizer"].update({"invert": True}), "isolating Split"),
    (KINDS["char"], lambda d: d["model"]["vocab"].pop("a"), "ids are not 0, 1, ..., n-1"),
    (KINDS["char"], lambda d: d.update({"model": {"type": "Unigram", "vocab": [["a", 0.0]], "unk_id": 0}}), "Unigram"),
    (KINDS["word"], lambda d: d.update({"pre_tokenizer": None}), "isolating Split"),
    (KINDS["char"], lambda d: d.update({"extra": 1}), "not a Hugging Face tokenizer"),
]


@pytest.mark.parametrize(("make", "edit", "message"), EDITS)
def test_an_edited_hugging_face_file_is_one_error(make, edit, message, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "tokenizer.json"
    path.write_text(_edit(make(), edit))
    with pytest.raises(RnnlabError, match=message) as error:
        load_tokenizer(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
