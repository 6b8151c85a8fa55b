"""Building a new run directory beside the old one: check_new_run refuses what it must, and `building` either
puts the finished run in place in one rename or leaves everything as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.rundir import building, check_new_run, write_run_config


def _run(folder: Path, kind: str = "ngram") -> Path:
    folder.mkdir(parents=True)
    write_run_config(folder, kind, {"order": 2})
    return folder


def test_a_failed_build_leaves_no_trace_and_a_finished_one_replaces_the_old_run(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "run"

    def fail_halfway() -> None:
        with building(out) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RnnlabError("stopped")

    with pytest.raises(RnnlabError, match="stopped"):
        fail_halfway()
    assert list(tmp_path.iterdir()) == []  # the parents made for it are gone too
    old = _run(tmp_path / "run")
    assert check_new_run(old, overwrite=True, kind="ngram")
    with building(old) as tmp:
        (tmp / "new.txt").write_text("y")
    assert [p.name for p in old.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary sibling left


def test_check_new_run_refuses_in_one_line(tmp_path: Path) -> None:
    assert not check_new_run(tmp_path / "absent", overwrite=False)
    (tmp_path / "empty").mkdir()
    assert not check_new_run(tmp_path / "empty", overwrite=False)
    run = _run(tmp_path / "run")
    (tmp_path / "file").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    cases = [
        (run, False, None, "already exists; use --overwrite"),
        (run, True, "hmm", "replaces a hmm run directory"),
        (tmp_path / "notes", True, None, "is not one, so it is left alone"),
        (tmp_path / "file", True, None, "it is not a folder"),
    ]
    for out, overwrite, kind, message in cases:
        with pytest.raises(RnnlabError, match=message):
            check_new_run(out, overwrite, kind)
    assert (tmp_path / "notes" / "a.txt").read_text() == "x"
