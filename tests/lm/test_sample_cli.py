"""`rnnlab sample` on the command line: escapes in --stop, seeds up to 2**63 - 1, and every impossible setting as
one `error:` line with exit status 2, printed before any output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rnnlab.lm.model import LanguageModel

Cli = Callable[..., tuple[int, str, str]]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--temperature", "nan"], "--temperature must be a finite number >= 0, got nan"),
        (["--temperature", "inf"], "--temperature must be a finite number >= 0, got inf"),
        (["--temperature", "-0.5"], "--temperature"),
        (["--top-p", "nan"], "--top-p must be in (0, 1], got nan"),
        (["--length", str(2**63)], "--length must be in [0, 2**63 - 1]"),
        (["--length", str(10**40)], "--length must be in [0, 2**63 - 1]"),
        (["--num-samples", "0"], "--num-samples must be >= 1, got 0"),
        (["--seed", str(2**70)], f"--seed must be in [0, 2**63 - 1] (sample i uses seed + i), got {2**70}"),
        (["--seed", "-1"], "--seed must be in [0, 2**63 - 1]"),
        (["--seed", str(2**63 - 2), "--num-samples", "3"], "--seed must be in [0, 2**63 - 3] with --num-samples 3"),
    ],
)
def test_impossible_settings_are_one_error_line(cli: Cli, trained_run: Path, args: list[str], match: str):
    code, out, err = cli("sample", trained_run, "--prime", "def ", *args)
    assert code == 2 and out == ""  # not even the prime
    assert err.startswith("error: ") and match in err and err.count("\n") == 1


def test_stop_escapes_stop_at_the_first_newline(cli: Cli, trained_run: Path):
    full = LanguageModel.load(trained_run).generate("def ", 300, seed=5, temperature=0.8)
    assert "\n" in full[1:]  # the tiny model writes lines of code
    args = ("--prime", "def ", "--length", "300", "--seed", "5", "--temperature", "0.8", "--stop", r"\n")
    code, out, _ = cli("sample", trained_run, *args)
    assert code == 0 and out == "def " + full[: full.index("\n")] + "\n"


def test_a_huge_length_streams_until_a_stop_string(cli: Cli, trained_run: Path):
    code, out, _ = cli("sample", trained_run, "--prime", "def ", "--length", str(10**12), "--seed", "1", "--stop", " ")
    assert code == 0 and out.startswith("def ") and " " not in out[4:]


def test_the_largest_seeds_work(cli: Cli, trained_run: Path):
    def sample(*args: object) -> str:
        code, out, err = cli("sample", trained_run, "--prime", "def ", "--length", "40", *args)
        assert code == 0, err
        return out

    last = sample("--seed", 2**63 - 1)
    assert last == sample("--seed", 2**63 - 1) != sample("--seed", 0)
    assert sample("--seed", 2**63 - 2, "--num-samples", 2).endswith("\n---\n" + last)  # seeds 2**63 - 2 and - 1


def test_greedy_with_several_samples_prints_its_one_text_once_and_says_so(cli: Cli, trained_run: Path):
    code, out, err = cli("sample", trained_run, "--prime", "def ", "--length", "30", "--greedy", "--num-samples", "3")
    assert code == 0 and "---" not in out and out.startswith("def ")
    assert err == "note: --greedy gives the same text every time; printing it once, not 3 times\n"
