"""The cell registry: one name per class, lookups that fail in one line, and the facts every layer reads from it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from rnnlab.config import ModelConfig, build_configs
from rnnlab.errors import RnnlabError
from rnnlab.nn import registry
from rnnlab.nn.cells import Cell, make_cell
from rnnlab.seq.sequence import SeqConfig


def test_every_cell_module_has_registered_its_cells_once() -> None:
    names = registry.names()
    assert len(set(names)) == len(names) == len(registry.cells())
    assert {"lstm", "gru", "ssm"} <= set(names)  # from cells.py and from scan.py
    assert all(issubclass(spec.cls, Cell) for spec in registry.cells())


def test_an_unknown_name_is_one_error_listing_the_registered_ones() -> None:
    with pytest.raises(RnnlabError, match="unknown cell 'transformer'; choose one of: ") as error:
        registry.get("transformer")
    assert str(error.value).endswith(", ".join(registry.names()))
    for validate in (
        lambda: ModelConfig(cell="transformer").validate(),
        lambda: SeqConfig(cell="transformer").validate(),
    ):
        with pytest.raises(RnnlabError, match="unknown cell 'transformer'"):
            validate()


def test_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("lstm")(Cell)
    assert registry.get("lstm").cls is not Cell


def test_make_cell_gives_each_cell_only_the_options_it_takes() -> None:
    assert make_cell("lstm", 3, 4, peephole=True, factors=2).peephole is not None
    assert make_cell("mrnn", 3, 4, peephole=True, factors=2).factors == 2
    make_cell("gru", 3, 4, peephole=True, factors=2)  # neither applies: not passed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cell": "gru", "peephole": True}, "--peephole applies to --cell lstm only"),
        ({"cell": "lstm", "factors": 8}, "--factors applies to --cell mrnn only"),
        ({"cell": "mut1", "embed": 8, "hidden": 16}, "needs --embed equal to --hidden"),
        ({"cell": "ssm", "learn_init": True}, "--learn-init does not apply to --cell ssm"),
    ],
)
def test_model_config_checks_each_cell_against_its_registration(options: dict, message: str) -> None:
    with pytest.raises(RnnlabError, match=re.escape(message)):
        ModelConfig(vocab_size=5, **options).validate()


def test_the_default_learning_rate_is_capped_where_a_cell_says_so() -> None:
    capped = [spec for spec in registry.cells() if spec.max_lr is not None]
    assert capped, "no cell caps its learning rate"
    for spec in capped:
        assert build_configs("small", cell=spec.name)[1].lr == min(spec.max_lr, 3e-3)


@pytest.mark.parametrize("command", [("train",), ("task", "adding")])
def test_the_cell_option_lists_the_registered_names(cli: Callable[..., tuple[int, str, str]], command: tuple) -> None:
    code, out, _ = cli(*command, "--help")
    assert code == 0
    assert "|".join(registry.names()) in re.sub(r"[\s│]", "", out)  # wrapped or boxed, "a | b" or "<a|b>"
