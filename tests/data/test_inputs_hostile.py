"""Hostile training inputs: link loops, files reached twice, named pipes, unreadable files, broken links.

Every case either reads each regular file once or fails with one line naming the file; none hangs (the
timeout marks turn a blocked open of a named pipe or an endless link walk into a failure).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from rnnlab.data.corpus import read_pieces, read_text, resolve_inputs
from rnnlab.errors import RnnlabError

pytestmark = pytest.mark.timeout(60)

TEXT = "def f(x):\n    return x + 1\n\n" * 40  # long enough for a tiny model's first batch
TRAIN = ["--preset", "tiny", "--hidden", "8", "--embed", "4", "--batch-size", "2", "--seq-len", "8"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """d/a.txt, d/sub/b.txt, a link loop d/sub/loop -> d, a second name d/sub/alias.txt for a.txt."""
    root = tmp_path / "d"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text(TEXT)
    (root / "sub" / "b.txt").write_text("b = 2\n")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "sub" / "alias.txt").symlink_to(root / "a.txt")
    return root


def names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def deny(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make opening `path` fail as chmod 000 does for a normal user (the tests may run as root, who reads
    any file whatever its mode)."""
    real_open, denied = os.open, os.path.realpath(path)

    def fake_open(name, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.path.realpath(name) == denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_link_loops_are_not_followed_and_each_file_is_read_once(tree: Path, capsys) -> None:
    for inputs in ([tree], [tree / "**" / "*.txt"], [tree, tree / "a.txt", tree / "sub" / "alias.txt"]):
        assert names(resolve_inputs([str(i) for i in inputs]), tree) == ["a.txt", "sub/b.txt"]
    assert "sub/loop: a link to a folder" in capsys.readouterr().err


def test_a_folder_linked_to_itself_gives_its_file_once(tmp_path: Path) -> None:
    (tmp_path / "only.txt").write_text("x")
    (tmp_path / "self").symlink_to(tmp_path, target_is_directory=True)
    assert resolve_inputs([str(tmp_path)]) == [tmp_path / "only.txt"]
    assert resolve_inputs([str(tmp_path / "**")]) == [tmp_path / "only.txt"]


def test_a_named_link_to_a_folder_is_read(tree: Path) -> None:
    """Links are only left alone inside a walk: a link the user names is what they asked for."""
    files = resolve_inputs([str(tree / "sub" / "loop")])
    assert names(files, tree) == ["sub/loop/a.txt", "sub/loop/sub/b.txt"]


def test_recursive_globs_match_like_glob(tmp_path: Path) -> None:
    for name in ("top.txt", "x/mid.txt", "x/y/deep.txt", "x/y/deep.md", "x/.hidden.txt", ".git/h.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("t")
    expected = ["top.txt", "x/mid.txt", "x/y/deep.txt"]
    assert names(resolve_inputs([str(tmp_path / "**" / "*.txt")]), tmp_path) == expected
    assert names(resolve_inputs([str(tmp_path / "x" / "**")]), tmp_path) == ["x/mid.txt", "x/y/deep.md", "x/y/deep.txt"]
    assert names(resolve_inputs([str(tmp_path / "*" / "**" / "deep.*")]), tmp_path) == ["x/y/deep.md", "x/y/deep.txt"]
    assert names(resolve_inputs([str(tmp_path / ".git" / "**" / "*.txt")]), tmp_path) == [".git/h.txt"]


def test_named_pipes_are_refused_without_being_opened(tree: Path, capsys) -> None:
    pipe = tree / "pipe.txt"
    os.mkfifo(pipe)
    with pytest.raises(RnnlabError, match=r"pipe\.txt is not a regular file \(a named pipe\)"):
        resolve_inputs([str(pipe)])
    assert names(resolve_inputs([str(tree)]), tree) == ["a.txt", "sub/b.txt"]
    assert f"skipped {pipe}: not a regular file (a named pipe)" in capsys.readouterr().err
    for read in (read_text, lambda p: list(read_pieces(p))):  # readers refuse one too, rather than wait
        with pytest.raises(RnnlabError, match="not a regular file"):
            read(pipe)


def test_broken_links_and_devices(tree: Path, capsys) -> None:
    (tree / "dead.txt").symlink_to(tree / "nowhere")
    with pytest.raises(RnnlabError, match=r"dead\.txt is a broken symbolic link"):
        resolve_inputs([str(tree / "dead.txt")])
    assert names(resolve_inputs([str(tree)]), tree) == ["a.txt", "sub/b.txt"]
    assert f"skipped broken link {tree / 'dead.txt'}" in capsys.readouterr().err
    with pytest.raises(RnnlabError, match=r"/dev/null is not a regular file \(a device\)"):
        resolve_inputs(["/dev/null"])


def test_unreadable_files_named_are_errors_and_in_folders_are_skipped(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    secret = tree / "secret.txt"
    secret.write_text("hidden")
    deny(monkeypatch, secret)
    with pytest.raises(RnnlabError, match=f"cannot read {re.escape(str(secret))}: Permission denied"):
        resolve_inputs([str(secret)])
    assert names(resolve_inputs([str(tree)]), tree) == ["a.txt", "sub/b.txt"]
    assert f"skipped unreadable file {secret} (Permission denied)" in capsys.readouterr().err
    with pytest.raises(RnnlabError, match=f"cannot read {re.escape(str(secret))}: Permission denied"):
        read_text(secret)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode (the patched test covers it)")
def test_chmod_000_file_and_folder(tree: Path, capsys) -> None:
    secret, closed = tree / "secret.txt", tree / "closed"
    secret.write_text("hidden")
    (closed / "inner").mkdir(parents=True)
    secret.chmod(0)
    closed.chmod(0)
    try:
        with pytest.raises(RnnlabError, match=r"cannot read .*secret\.txt: Permission denied"):
            resolve_inputs([str(secret)])
        with pytest.raises(RnnlabError, match=r"cannot read .*closed: Permission denied"):
            resolve_inputs([str(closed)])
        assert names(resolve_inputs([str(tree)]), tree) == ["a.txt", "sub/b.txt"]
        err = capsys.readouterr().err
        assert "skipped unreadable file" in err and "skipped unreadable folder" in err
    finally:
        secret.chmod(0o644)
        closed.chmod(0o755)


def test_cli_train_skips_hostile_files_in_a_glob_and_refuses_them_named(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    os.mkfifo(tree / "pipe.txt")
    code, _, err = cli("train", tree / "**" / "*.txt", "--out", tmp_path / "ok", "--max-steps", "1", *TRAIN)
    assert code == 0, err
    assert "named pipe" in err and "a link to a folder" in err and (tmp_path / "ok" / "config.json").is_file()

    secret = tree / "secret.txt"
    secret.write_text(TEXT)
    deny(monkeypatch, secret)
    for bad, message in ((tree / "pipe.txt", "is not a regular file (a named pipe)"), (secret, "Permission denied")):
        out = tmp_path / "refused"
        code, _, err = cli("train", bad, "--out", out, "--max-steps", "1", *TRAIN)
        assert code == 2 and err.startswith("error: ") and message in err and str(bad) in err
        assert len(err.strip().splitlines()) == 1
        assert not out.exists() and not list(tmp_path.glob(".refused*"))  # nothing written
