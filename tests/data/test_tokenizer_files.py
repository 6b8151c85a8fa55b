"""tokenizer.json as a user may have edited or damaged it: one RnnlabError line naming the file, never a
traceback and never a tokenizer whose vocabulary silently differs from the one the weights were trained on.
And byte-level BPE on very long lines: its training text is cut inside long runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rnnlab.data.tokenizers import (
    BPE_MAX_RUN,
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    WordTokenizer,
    bpe_training_pieces,
    load_tokenizer,
    save_tokenizer,
)
from rnnlab.errors import RnnlabError

TEXT = "The cat sat on the mat.\nThe dog sat on the log!\n" * 5


def bpe_json(edit) -> str:  # type: ignore[no-untyped-def]
    """A trained BPE tokenizer's Hugging Face JSON after `edit(inner)`."""
    inner = json.loads(BPETokenizer.fit([TEXT], vocab_size=280).to_dict()["tokenizer"])
    edit(inner)
    return json.dumps(inner)


BAD = [
    ('{"type": "char", "chars": 5}', "'chars' must be a string, found the number 5"),
    ('{"type": "nope"}', "unknown tokenizer type 'nope'"),
    ('{"type": ["char"], "chars": "ab"}', "'type' must be a string, found a list"),
    ('{"type": "char", "chars": ["a", "b"]}', "'chars' must be a string, found a list"),
    ('{"type": "char", "chars": "abca"}', "'chars' lists 'a' twice"),
    ('{"type": "char", "chars": "ba"}', "'chars' is not in code-point order"),
    ('{"type": "char", "chars": ""}', "'chars' is empty"),
    ('{"type": "char"}', "missing key 'chars'"),
    ('{"chars": "ab"}', "missing key 'type'"),
    ('{"type": "char", "chars": "ab", "unk": "yes"}', "'unk' must be true or false, found a string"),
    ('{"type": "char", "chars": "ab", "unk": 1}', "'unk' must be true or false, found the number 1"),
    ("[1, 2]", "expected a JSON object, found a list"),
    ("null", "expected a JSON object, found null"),
    ('{"type": "word", "words": ["a", "b"]}', "'words' must begin with '<unk>'"),
    ('{"type": "word", "words": ["<unk>", "a", "a"]}', "'words' lists 'a' twice"),
    ('{"type": "word", "words": ["<unk>", 3]}', "'words' must be a list of non-empty strings"),
    ('{"type": "word", "words": "<unk>"}', "'words' must be a list, found a string"),
    ('{"type": "word", "words": ["<unk>"], "pattern": "("}', "'pattern' '(' is not a valid regex"),
    ('{"type": "word", "words": ["<unk>"], "lowercase": null}', "'lowercase' must be true or false, found null"),
    ('{"type": "bpe", "tokenizer": 7}', "'tokenizer' must be a string, found the number 7"),
    ('{"type": "bpe", "tokenizer": "{not json"}', "'tokenizer' is not a Hugging Face tokenizer"),
    ('{"type": "char", "chars": "ab"', "is not readable JSON"),
    ("[" * 100_000, "is not readable JSON"),
]


@pytest.mark.parametrize(("content", "message"), BAD)
def test_edited_tokenizer_json_is_one_line_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(RnnlabError) as info:
        load_tokenizer(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t["model"]["vocab"].pop("a"), "is not a Hugging Face tokenizer (Token `a` out of vocabulary"),
        (lambda t: t["model"]["vocab"].update({"Ġsat": 999}), "ids are not 0, 1, ..., n-1"),
        (lambda t: t["model"]["vocab"].update({"€": len(t["model"]["vocab"])}), "'€' is not made of byte-level"),
        (lambda t: t["model"].update({"type": "WordLevel", "unk_token": "a"}), "holds a WordLevel model, not BPE"),
    ],
)
def test_edited_bpe_vocabulary_is_refused(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"type": "bpe", "tokenizer": bpe_json(edit)}))
    with pytest.raises(RnnlabError, match="^" + str(path)) as info:
        load_tokenizer(path)
    assert message in str(info.value)


def test_unreadable_tokenizer_json(tmp_path: Path) -> None:
    with pytest.raises(RnnlabError, match=r"cannot read .*missing\.json: No such file"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_bytes(b'{"type": "\xff"}')
    with pytest.raises(RnnlabError, match=r"bad\.json is not readable JSON"):
        load_tokenizer(tmp_path / "bad.json")
    with pytest.raises(RnnlabError, match="is not a regular file"):
        load_tokenizer(tmp_path)


def test_saved_tokenizers_load_with_the_same_vocabulary_size(tmp_path: Path) -> None:
    tokenizers = [
        CharTokenizer.fit([TEXT]),
        CharTokenizer.fit([TEXT], unk=True),
        ByteTokenizer(),
        WordTokenizer.fit([TEXT], vocab_size=8),
        BPETokenizer.fit([TEXT], vocab_size=280),
    ]
    for tokenizer in tokenizers:
        save_tokenizer(tokenizer, tmp_path / "tokenizer.json")
        again = load_tokenizer(tmp_path / "tokenizer.json")
        assert again.vocab_size == tokenizer.vocab_size and again.to_dict() == tokenizer.to_dict()
        assert again.encode(TEXT).tolist() == tokenizer.encode(TEXT).tolist()
    assert [t.vocab_size for t in tokenizers[:4]] == [len(set(TEXT)), len(set(TEXT)) + 1, 256, 8]


def test_cli_with_an_edited_tokenizer_json_is_one_error_line(trained_run: Path, tmp_path: Path, cli) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "tokenizer.json").write_text('{"type": "char", "chars": 5}')
    code, out, err = cli("sample", run, "--length", "5")
    assert code == 2 and not out
    assert err == f"error: {run / 'tokenizer.json'}: 'chars' must be a string, found the number 5\n"


def test_bpe_training_text_is_cut_inside_long_runs_only() -> None:
    """A long line with no whitespace (minified or generated files) reaches the BPE trainer in pieces with no
    run of non-space or space characters longer than BPE_MAX_RUN; ordinary text is not cut."""
    line = "ab " + "".join(chr(ord("a") + (i * 7) % 26) for i in range(20_000)) + " " * 3_000 + "9" * 65 + " end"
    pieces = list(bpe_training_pieces(line))
    assert "".join(pieces) == line and len(pieces) > 20_000 // BPE_MAX_RUN
    runs = [len(run) for piece in pieces for run in re.findall(r"\S+|\s+", piece)]
    assert max(runs) == BPE_MAX_RUN
    assert list(bpe_training_pieces(TEXT)) == [TEXT]
    exact = "x" * BPE_MAX_RUN + " " + "y" * (BPE_MAX_RUN + 1)  # a run of exactly BPE_MAX_RUN is left whole
    assert list(bpe_training_pieces(exact)) == [exact[: 2 * BPE_MAX_RUN + 1], "y"]


def test_bpe_on_a_long_line_learns_short_tokens_and_round_trips() -> None:
    """The trainer never sees a word longer than BPE_MAX_RUN + 1 (a leading space), so no token is longer;
    encoding is not cut, and any text, however long its lines, round-trips."""
    line = "".join(chr(ord("a") + (i * 7) % 26) for i in range(20_000))
    tok = BPETokenizer.fit([TEXT, line], vocab_size=400)
    assert max(map(len, tok.hf.get_vocab())) <= BPE_MAX_RUN + 1  # one byte symbol per byte (ASCII here)
    long_line = line * 20  # 400 KB without a line break
    for text in (long_line, TEXT, "naïve ☃ " * 50 + "é" * 200):
        assert tok.decode(tok.encode(text)) == text
