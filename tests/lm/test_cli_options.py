"""`rnnlab train`'s options are generated from the config dataclasses: every field has its flag, help, panel and
shown default; choices are checked by the parser; a value not given stays out, so presets and --resume still apply."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing
from pathlib import Path
from typing import Any, Literal

import pytest

import rnnlab
from rnnlab.config import PANELS, ModelConfig, RnnlabError, TrainConfig
from rnnlab.nn import registry

FIELDS = [f for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)]
HINTS = {**typing.get_type_hints(ModelConfig), **typing.get_type_hints(TrainConfig)}
DERIVED = {"vocab_size"}  # set from the tokenizer: the only fields without an option
FLAGGED = [f for f in FIELDS if f.name not in DERIVED and not f.metadata.get("argument")]  # inputs is positional


def flag(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def sections(help_text: str) -> dict[str, str]:
    """`--help` split into its sections ("Arguments", "Options", "Data", ...), whitespace collapsed."""
    parts = re.split(r"^(\w+):$", help_text, flags=re.MULTILINE)
    return {title: " ".join(body.split()) for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_help_groups_every_option_in_its_panel_with_its_default(cli):
    code, text, _ = cli("train", "--help")
    assert code == 0
    shown = sections(text)
    assert list(shown) == ["Arguments", "Options", *PANELS]
    for f in FIELDS:
        assert f.metadata.get("help"), f"{f.name}: declare it with config.opt(default, help, panel)"
        if f.name in DERIVED:
            assert f.metadata["flag"] is None
        elif f.metadata.get("argument"):
            assert f.metadata["help"] in shown["Arguments"]
        else:
            assert f"{flag(f)} " in shown[f.metadata["panel"]], f"{flag(f)} is not in the {f.metadata['panel']} panel"
    assert "[default: 256 (tiny: 128, small: 300, medium: 512, large: 1024)]" in shown["Model"]
    assert "--precision <fp32|bf16|fp16|auto>" in shown["Hardware"]
    assert "[default: fp32 (small: auto)]" in shown["Hardware"]
    assert "--residual / --no-residual" in shown["Model"] and "[default: off]" in shown["Model"]


def other_value(f: dataclasses.Field[Any]) -> tuple[list[str], Any]:
    """Command-line words that set the field `f` to a value other than its default, and that value."""
    kind, default = HINTS[f.name], f.default
    if f.name == "cell":
        return ["--cell", "gru"], "gru"
    if f.name == "max_time":
        return ["--max-time", "20m"], 1200.0
    if kind is bool:
        return [f"--no-{flag(f)[2:]}" if default else flag(f)], not default
    if typing.get_origin(kind) is Literal:
        value = next(c for c in typing.get_args(kind) if c != default)
        return [flag(f), value], value
    if kind in (int, float):
        return [flag(f), str(default + 3)], default + 3
    if kind is str:
        return [flag(f), "x"], "x"
    if typing.get_origin(kind) is tuple:
        return [flag(f), "0.5", "0.75"], (0.5, 0.75)
    return [flag(f), "a.txt", flag(f), "b.txt"], ["a.txt", "b.txt"]  # list[str]


@pytest.fixture
def handed_on(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `rnnlab train` hands to the Python API, instead of training."""
    seen: dict[str, Any] = {}

    def capture(**options: Any) -> None:
        seen.update(options)
        raise SystemExit(0)

    monkeypatch.setattr(importlib.import_module("rnnlab.lm.cli"), "run_training", capture)
    return seen


@pytest.mark.parametrize("f", FLAGGED, ids=lambda f: f.name)
def test_every_field_is_set_by_its_flag_under_its_own_name(cli, handed_on, f):
    words, value = other_value(f)
    code, _, err = cli("train", "--out", "run", *words)
    assert code == 0, err
    assert handed_on == {
        "out": Path("run"),
        "preset": None,
        "resume": False,
        "overwrite": False,
        "config": None,
        f.name: value,
    }


def test_options_not_given_stay_absent_and_inputs_are_positional(cli, handed_on):
    assert cli("train", "a.txt", "dir", "--out", "run", "--preset", "small")[0] == 0
    assert handed_on == {
        "out": Path("run"),
        "preset": "small",
        "resume": False,
        "overwrite": False,
        "config": None,
        "inputs": ["a.txt", "dir"],
    }


@pytest.mark.parametrize(
    ("flags", "choices"),
    [
        (
            ["--optimizer", "nope"],
            "'nope' is not one of 'adam', 'adamw', 'adagrad', 'rmsprop', 'sgd', 'nesterov', 'hf'",
        ),
        (["--tokenizer", "x"], "'x' is not one of 'char', 'byte', 'word', 'bpe'"),
        (["--precision", "fp8"], "'fp8' is not one of 'fp32', 'bf16', 'fp16', 'auto'"),
        (["--cell", "transformer"], f"'transformer' is not one of {', '.join(map(repr, registry.names()))}"),
        (["--preset", "huge"], "'huge' is not one of 'tiny', 'small', 'medium', 'large'"),
    ],
)
def test_a_bad_choice_is_one_line_naming_the_choices(tmp_path: Path, corpus_file: Path, cli, flags, choices):
    code, _, err = cli("train", corpus_file, "--out", tmp_path / "run", *flags)
    assert code == 2
    assert err.splitlines() == [f"error: Invalid value for '{flags[0]}': {choices}. (see --help)"]
    assert list(tmp_path.iterdir()) == []


def test_python_api_names_every_option_and_refuses_unknown_ones(tmp_path: Path):
    parameters = inspect.signature(rnnlab.train).parameters
    assert {f.name for f in FIELDS} - DERIVED <= set(parameters)
    assert parameters["tokenizer"].annotation == (HINTS["tokenizer"] | None)
    with pytest.raises(RnnlabError, match="unknown option"):
        rnnlab.train(out=tmp_path / "run", hiden=64)
    assert list(tmp_path.iterdir()) == []


# ---- one vocabulary for the other training commands: --max-steps, --max-time DURATION; old spellings hidden ----

TRAINING_COMMANDS = [
    ["task", "adding"],
    ["classify", "train"],
    ["tag", "train"],
    ["seq2seq", "train"],
    ["timeseries", "train"],
    ["caption", "train"],
    ["vqa", "train"],
    ["reference", "train"],
]


@pytest.mark.parametrize("command", TRAINING_COMMANDS, ids=" ".join)
def test_training_commands_show_max_steps_and_hide_the_old_spellings(cli, command: list[str]):
    code, text, _ = cli(*command, "--help")
    assert code == 0 and "--max-steps" in text
    assert not {"--steps", "--max-iters", "--time-limit"} & set(re.findall(r"--[\w-]+", text))


def test_old_spellings_still_work_with_a_note(tmp_path: Path, corpus_file: Path, cli):
    task = ["task", "adding", "--length", "5", "--hidden", "4"]
    code, new, err = cli(*task, "--max-steps", "2", "--max-time", "1m")
    assert code == 0 and "after 2 steps" in new and err == ""
    code, old, err = cli(*task, "--steps", "2", "--time-limit", "60")
    assert code == 0 and "after 2 steps" in old
    assert err.splitlines() == [
        "note: --steps is deprecated; use --max-steps",
        "note: --time-limit is deprecated; use --max-time",
    ]
    reference = ["reference", "train", corpus_file, "--hidden", "4", "--sample-every", "0"]
    assert "2 iterations in" in cli(*reference, "--out", tmp_path / "new", "--max-steps", "2")[1]
    code, text, err = cli(*reference, "--out", tmp_path / "old", "--max-iters", "2")
    assert code == 0 and "2 iterations in" in text and "--max-iters is deprecated; use --max-steps" in err


@pytest.mark.parametrize("command", [["task", "adding"], ["seq2seq", "train"]], ids=" ".join)
def test_max_time_is_a_duration_everywhere(tmp_path: Path, cli, command: list[str]):
    out = ["--out", tmp_path / "run"] if command[0] == "seq2seq" else []
    code, _, err = cli(*command, *out, "--max-time", "soon")
    assert code == 2 and err.splitlines() == ["error: cannot read duration 'soon'; use e.g. 90s, 20m or 1.5h"]
    assert list(tmp_path.iterdir()) == []
