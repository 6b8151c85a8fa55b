"""The README's quick tour runs as written: its first bash block, command by command, in a fresh folder."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import matplotlib.image
import pytest

README = Path(__file__).parents[1] / "README.md"


def quick_tour() -> list[list[str]]:
    """The `rnnlab ...` commands of the first ```bash block after '## Quick tour', comments dropped."""
    text = README.read_text(encoding="utf-8")
    block = text.split("## Quick tour", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [words[1:] for words in commands if words and words[0] == "rnnlab"]


@pytest.mark.skipif(not README.exists(), reason="the README is in the source tree only")
def test_the_quick_tour_runs_verbatim(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    commands = quick_tour()
    assert [c[0] for c in commands] == ["example-data", "train", "sample", "eval", "info", "plot"]
    outputs = []
    for args in commands:
        code, out, err = cli(*args)
        assert code == 0, (args, err)
        outputs.append(out)
    sample, score = outputs[2], outputs[3]
    assert sample.startswith("The ") and len(sample) > 200
    bpc = float(score.splitlines()[0].split()[-1])
    assert bpc < 3.5  # a minute of training: far below a uniform guess over about 90 characters (6.5 bits)
    assert "prose.txt" in outputs[4]
    assert matplotlib.image.imread(tmp_path / "loss.png").shape[:2] == (400, 700)
    assert os.path.getsize(tmp_path / "data" / "held_out.txt") > 50_000
