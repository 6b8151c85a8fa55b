"""`rnnlab esn train / predict / generate` end to end, and their one-line errors (exit status 2)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.cli import main

SMALL = ["--hidden", "60", "--washout", "20"]


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    rows = [f"{math.sin(0.2 * t):.8f},{math.cos(0.13 * t):.8f},{t}" for t in range(600)]
    path = tmp_path / "series.csv"
    path.write_text("a,b,step\n" + "\n".join(rows) + "\n")
    return path


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_train_predict_generate(series_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "esn"
    assert run_cli(["esn", "train", str(series_csv), "--columns", "a,b", "--out", str(out), *SMALL]) == 0
    text = capsys.readouterr().out
    score = float(text.split("NRMSE (120 rows): ")[1].split()[0])
    assert score < 0.01  # two sines, one step ahead
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "esn"
    assert config["data"]["columns"] == ["a", "b"]

    assert run_cli(["esn", "predict", str(out), str(series_csv)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "a,b"
    assert len(lines) == 601
    predicted_a = float(lines[100].split(",")[0])  # the prediction made at row 99 is of row 100
    assert predicted_a == pytest.approx(math.sin(0.2 * 100), abs=0.01)
    assert "one-step NRMSE" in captured.err

    assert run_cli(["esn", "generate", str(out), "--steps", "20"]) == 0
    generated = [float(line.split(",")[0]) for line in capsys.readouterr().out.splitlines()[1:]]
    assert len(generated) == 20
    expected = [math.sin(0.2 * t) for t in range(600, 620)]  # continues after the last row of the series
    assert max(abs(g - e) for g, e in zip(generated, expected, strict=True)) < 0.05


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("", [], "is empty"),
        ("a,b\n", [], "no data rows"),
        ("a,b\n1,2\nnan,3\n" + "1,2\n" * 200, [], "line 3: NaN"),
        ("a,b\n1,x\n", [], "line 2: expected numbers"),
        ("a,b\n1,2\n", ["--columns", "c"], "no column 'c'"),
        ("a\n" + "\n".join(str(i % 7) for i in range(300)), ["--spectral-radius", "0"], "spectral radius must be > 0"),
        ("a\n" + "\n".join(str(i % 7) for i in range(300)), ["--sparsity", "1"], "sparsity must be in [0, 1)"),
        ("a\n" + "\n".join(str(i % 7) for i in range(300)), ["--ridge", "lots"], "--ridge must be a number"),
    ],
)
def test_bad_input_is_one_line_error_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, extra: list[str], message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert run_cli(["esn", "train", str(path), "--out", str(tmp_path / "o"), *SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_errors_through_the_real_command(tmp_path: Path) -> None:
    """The installed entry point too: a missing run directory is `error: ...` and exit status 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "rnnlab", "esn", "generate", str(tmp_path / "nope"), "--steps", "5"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope'} is not a directory"
