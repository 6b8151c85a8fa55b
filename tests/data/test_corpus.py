from pathlib import Path

import pytest

from rnnlab.data.corpus import default_corpus, read_text, resolve_inputs, split_tail
from rnnlab.errors import RnnlabError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.c").write_text("int b;")
    (tmp_path / "sub" / "blob.bin").write_bytes(b"\x00\x01\x02")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    return tmp_path


def test_directory_is_recursive_skips_binary_with_notice_and_hidden(tree: Path, capsys):
    files = resolve_inputs([str(tree)])
    assert [f.name for f in files] == ["a.txt", "b.c"]
    assert "skipped binary file" in capsys.readouterr().err


def test_globs_and_files_deduplicated(tree: Path):
    files = resolve_inputs([str(tree / "a.txt"), str(tree / "**" / "*.c"), str(tree / "a.txt")])
    assert [f.name for f in files] == ["a.txt", "b.c"]


def test_explicit_binary_file_needs_byte_tokenizer(tree: Path):
    with pytest.raises(RnnlabError, match="--tokenizer byte"):
        resolve_inputs([str(tree / "sub" / "blob.bin")])
    assert resolve_inputs([str(tree / "sub" / "blob.bin")], allow_binary=True)


def test_missing_input_and_empty_glob(tree: Path):
    with pytest.raises(RnnlabError, match="input not found"):
        resolve_inputs([str(tree / "nope.txt")])
    with pytest.raises(RnnlabError, match="no files match"):
        resolve_inputs([str(tree / "*.zzz")])


def test_non_utf8_suggests_byte_tokenizer(tmp_path: Path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(RnnlabError, match=r"not valid UTF-8.*--tokenizer byte"):
        read_text(path)


def test_default_corpus_is_python_stdlib_without_tests():
    files = default_corpus()
    assert len(files) > 100
    assert all(f.suffix == ".py" for f in files)
    assert not any("test" in f.parts for f in files)
    assert any(f.name == "json" or f.parent.name == "json" for f in files)


def test_split_tail_takes_fraction_from_the_end():
    assert split_tail("abcdefghij", 0.2) == ("abcdefgh", "ij")
    assert split_tail(b"abcd", 0.0) == (b"abcd", b"")
