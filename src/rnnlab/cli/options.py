"""Command-line options generated from the config dataclasses, so that each option is described once.

`rnnlab.config` gives every field its help, `--help` panel and, where needed, its flag, choices or parser
(`config.opt`); `config_options` turns those fields into typer parameters of a command. A value the user did
not give stays out of the command's `options`, so presets and `--resume` see only what was typed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

import typer
from typer.core import TyperCommand

from rnnlab.config import PANELS, option_fields, parse_duration
from rnnlab.ui import notice

R = TypeVar("R")


class PanelCommand(TyperCommand):
    """A command whose plain-text `--help` lists its options in groups, by each option's `rich_help_panel`."""

    def format_options(self, ctx: typer.Context, formatter: Any) -> None:
        """Arguments, then options without a panel, then each panel in the order its first option appears
        (`formatter` is click's HelpFormatter, as typer vendors it)."""
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                alone = "Arguments" if param.param_type_name == "argument" else "Options"
                sections.setdefault(getattr(param, "rich_help_panel", None) or alone, []).append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def flag_name(f: dataclasses.Field[Any]) -> str:
    """The field's command-line name: `--kebab-case` of the field's name unless it names its own flag."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def default_text(default: Any, name: str, presets: Mapping[str, Mapping[str, Any]]) -> str:
    """The `[default: ...]` note: the field's own default, and each preset's value where a preset sets one."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, (tuple, list)):
            return " ".join(text(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    set_by = ", ".join(f"{preset}: {text(values[name])}" for preset, values in presets.items() if name in values)
    shown = " ".join(part for part in (text(default), f"({set_by})" if set_by else "") if part)
    return f"  [default: {shown}]" if shown else ""


def parameter(f: dataclasses.Field[Any], kind: Any, presets: Mapping[str, Mapping[str, Any]]) -> inspect.Parameter:
    """One typer parameter for the config field `f` of type `kind`; its value is None when not given."""
    meta = f.metadata  # a field declared without config.opt has none: tests/test_cli_options.py reports it
    if "choices" in meta:
        kind = Literal[tuple(meta["choices"]())]
    if meta.get("argument"):
        info: Any = typer.Argument(help=meta.get("help", ""), metavar=meta.get("metavar"), show_default=False)
    else:
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag = flag_name(f)
        info = typer.Option(
            f"{flag}/--no-{flag[2:]}" if kind is bool else flag,
            help=meta.get("help", "") + default_text(default, f.name, presets),
            rich_help_panel=meta.get("panel"),
            show_default=False,  # click's own would show None, the value that means "not given"
            metavar=meta.get("metavar"),
            parser=meta.get("parse"),  # e.g. a duration: its error is the config's own one-line RnnlabError
        )
    annotation = Annotated[kind | None, info]
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def config_options(
    *configs: type, presets: Mapping[str, Mapping[str, Any]]
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator for a typer command: add one parameter per field of the `configs` dataclasses, and call the
    command with `options`, a dict of the values the user gave (field name -> value; the others are absent)."""
    fields = sorted(option_fields(*configs), key=lambda item: (*PANELS, None).index(item[0].metadata.get("panel")))

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "options"]

        @functools.wraps(command)
        def run(**values: Any) -> R:
            given = {f.name: v for f, _ in fields if (v := values.pop(f.name)) is not None}
            return command(**values, options=given)

        generated = [parameter(f, kind, presets) for f, kind in fields]
        run.__signature__ = inspect.Signature([*own, *generated])  # type: ignore[attr-defined]
        return run

    return decorate


def old_spellings(**flags: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator for a typer command: accept an option's old flag (parameter name -> old flag, e.g.
    `steps="--steps"`), hidden from `--help`, as a deprecated spelling of its current one, with a note saying so."""

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        signature = inspect.signature(command, eval_str=True)
        aliases = {}  # alias parameter -> (target parameter, old flag, current flag, alias annotation)
        for name, old in flags.items():
            kind, info = typing.get_args(signature.parameters[name].annotation)[:2]
            decls = [d for d in (info.default, *(info.param_decls or ())) if isinstance(d, str) and d.startswith("--")]
            current = decls[0].split("/")[0] if decls else "--" + name.replace("_", "-")
            alias = typer.Option(old, hidden=True, parser=info.parser, metavar=info.metavar)
            aliases[f"{name}_as_{old[2:].replace('-', '_')}"] = (name, old, current, Annotated[kind | None, alias])

        @functools.wraps(command)
        def run(**values: Any) -> R:
            for alias, (name, old, current, _) in aliases.items():
                if (value := values.pop(alias)) is not None:
                    notice(f"{old} is deprecated; use {current}")
                    values[name] = value
            return command(**values)

        extra = [
            inspect.Parameter(alias, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
            for alias, (*_, annotation) in aliases.items()
        ]
        run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])  # type: ignore[attr-defined]
        return run

    return decorate


def max_time_option(help: str) -> Any:
    """The `--max-time` option of a command's own signature: a duration ("90s", "20m", "1.5h", or seconds)."""
    return typer.Option("--max-time", help=help, parser=parse_duration, metavar="DURATION")
