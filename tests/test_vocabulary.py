"""One vocabulary across subcommands: the input is a positional INPUT, the verbs are train/predict, `--out` is a
run directory, figures go to `--plot`, reports to `--report`, data to `--output`. Each old spelling still works,
hidden from `--help`, and prints a one-line deprecation note; the new one prints none and does the same."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
TEXT = "def data_1(items):\n    return [items[i] + 1 for i in range(len(items))]\n" * 3  # the lm fixture's characters
SERIES = "x,y\n" + "".join(f"{i % 5 / 4:.2f},{(i * 3) % 7 / 6:.2f}\n" for i in range(40))
QUESTION = "what colour is the circle?"
TINY = ["--max-steps", "1", "--hidden", "4"]
VERB = "`rnnlab {}` is deprecated; use `rnnlab {}`"
DATA = "--data is deprecated; use the argument INPUT"

# (new command line, old command line, the notes the old one prints). {made} is where the command writes (a run
# directory or a file), {KIND} a copy of tests/fixtures/runs/KIND, the other names files of `inputs`.
CASES = [
    (
        ["esn", "train", "{series}", "--out", "{made}", "--hidden", "10", "--washout", "5"],
        ["esn", "fit", "-i", "{series}", "--out", "{made}", "--hidden", "10", "--washout", "5"],
        [VERB.format("esn fit", "esn train"), "--input is deprecated; use the argument INPUT"],
    ),
    (
        ["esn", "predict", "{esn}", "{series}", "--output", "{made}.csv"],
        ["esn", "predict", "{esn}", "--input", "{series}", "--out", "{made}.csv"],
        ["--input is deprecated; use the argument INPUT", "--out is deprecated; use --output"],
    ),
    (
        ["esn", "generate", "{esn}", "--steps", "3", "--output", "{made}.csv"],
        ["esn", "generate", "{esn}", "--steps", "3", "--out", "{made}.csv"],
        ["--out is deprecated; use --output"],
    ),
    (
        ["classify", "train", "{labelled}", "--out", "{made}", *TINY],
        ["classify", "train", "--data", "{labelled}", "--out", "{made}", *TINY],
        [DATA],
    ),
    (
        ["tag", "train", "{tagged}", "--out", "{made}", *TINY],
        ["tag", "train", "--data", "{tagged}", "--out", "{made}", *TINY],
        [DATA],
    ),
    (
        ["timeseries", "train", "{series}", "--out", "{made}", "--window", "5", *TINY],
        ["timeseries", "fit", "--data", "{series}", "--out", "{made}", "--window", "5", *TINY],
        [VERB.format("timeseries fit", "timeseries train"), DATA],
    ),
    (
        ["timeseries", "predict", "{timeseries}", "{series}", "--horizon", "3"],
        ["timeseries", "predict", "{timeseries}", "--data", "{series}", "--horizon", "3"],
        [DATA],
    ),
    (
        ["seq2seq", "predict", "{seq2seq}", "1 2 3"],
        ["seq2seq", "decode", "{seq2seq}", "1 2 3"],
        [VERB.format("seq2seq decode", "seq2seq predict")],
    ),
    (
        ["caption", "predict", "{caption}", "--count", "2", "--plot", "{made}.png"],
        ["caption", "describe", "{caption}", "--count", "2", "--png", "{made}.png"],
        [VERB.format("caption describe", "caption predict"), "--png is deprecated; use --plot"],
    ),
    (
        ["vqa", "predict", "{vqa}", QUESTION, "--plot", "{made}.png"],
        ["vqa", "ask", "{vqa}", QUESTION, "--png", "{made}.png"],
        [VERB.format("vqa ask", "vqa predict"), "--png is deprecated; use --plot"],
    ),
    (
        ["probe", "cells", "{lm}", "{text}", "--report", "{made}.html", "--max-chars", "100"],
        ["probe", "cells", "{lm}", "{text}", "--out", "{made}.html", "--max-chars", "100"],
        ["--out is deprecated; use --report"],
    ),
    (
        ["probe", "surprisal", "{lm}", "{text}", "--report", "{made}.html", "--max-chars", "100"],
        ["probe", "surprisal", "{lm}", "{text}", "--out", "{made}.html", "--max-chars", "100"],
        ["--out is deprecated; use --report"],
    ),
    (
        ["probe", "gradients", "{lm}", "--plot", "{made}.png", "--steps", "5"],
        ["probe", "gradients", "{lm}", "--out", "{made}.png", "--steps", "5"],
        ["--out is deprecated; use --plot"],
    ),
    (
        ["task", "gradient-flow", "--plot", "{made}.png", "--steps", "5"],
        ["task", "gradient-flow", "--out", "{made}.png", "--steps", "5"],
        ["--out is deprecated; use --plot"],
    ),
]


class Inputs(dict):
    """The files the commands read, by name; a missing name KIND is a fresh copy of the KIND fixture run."""

    def __init__(self, folder: Path) -> None:
        labelled = "text,label\n" + "".join(f"a good film {i},positive\na bad film {i},negative\n" for i in range(10))
        tagged = "".join(json.dumps({"tokens": ["1", "0", "1"], "tags": ["no", "no", "yes"]}) + "\n" for _ in range(20))
        files = {"series.csv": SERIES, "labelled.csv": labelled, "tagged.jsonl": tagged, "text.py": TEXT}
        for name, content in files.items():
            (folder / name).write_text(content)
        super().__init__({name.split(".")[0]: str(folder / name) for name in files})
        self.folder = folder

    def __missing__(self, kind: str) -> str:
        self[kind] = str(shutil.copytree(FIXTURES / kind, self.folder / "runs" / kind))
        return self[kind]


@pytest.mark.parametrize(("new", "old", "notes"), CASES, ids=[" ".join(case[0][:2]) for case in CASES])
def test_new_spelling_works_and_the_old_one_too_with_a_note(cli, tmp_path, new, old, notes) -> None:
    inputs = Inputs(tmp_path)
    shown = {}
    for spelling, words in (("new", new), ("old", old)):
        made = tmp_path / spelling / "made"
        made.parent.mkdir()
        inputs["made"] = str(made)
        args = [word.format_map(inputs) for word in words]
        code, out, err = cli(*args)
        assert code == 0, err
        assert [line[len("note: ") :] for line in err.splitlines() if line.startswith("note: ")] == (
            notes if spelling == "old" else []
        )
        assert any(Path(arg).exists() for arg in args if arg.startswith(str(made))) or "{made" not in " ".join(words)
        shown[spelling] = out.replace(str(made.parent), "FOLDER")
    assert shown["new"] == shown["old"]


@pytest.mark.parametrize("command", sorted({tuple(case[0][:2]) for case in CASES}), ids=" ".join)
def test_help_shows_only_the_new_spellings(cli, command: tuple[str, str]) -> None:
    code, text, _ = cli(*command, "--help")
    assert code == 0
    assert not {"--data", "--input", "--png", "--coco", "-i"} & set(re.findall(r"(?<![\w-])--?[\w-]+", text))
    if command[0] == "probe":
        assert "--out" not in text
    group = cli(command[0], "--help")[1]
    assert not {"fit", "decode", "describe", "ask"} & set(re.findall(r"^  (\w+)", group, flags=re.MULTILINE))
