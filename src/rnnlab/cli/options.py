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
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Literal, TypeVar

import typer
from typer.core import TyperCommand
from typer.models import ArgumentInfo

from rnnlab.config import PANELS, option_fields, parse_duration
from rnnlab.errors import RnnlabError
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


def parameter(
    f: dataclasses.Field[Any],
    kind: Any,
    presets: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Any] | None = None,
) -> inspect.Parameter:
    """One typer parameter for the config field `f` of type `kind`; its value is None when not given. `defaults`
    may replace the field's own default in the help text (a command's own default)."""
    meta = f.metadata  # a field declared without config.opt has none: tests/test_cli_options.py reports it
    if "choices" in meta:
        kind = Literal[tuple(meta["choices"]())]
    if meta.get("argument"):
        info: Any = typer.Argument(help=meta.get("help", ""), metavar=meta.get("metavar"), show_default=False)
    else:
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        default = (defaults or {}).get(f.name, default)
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
    *configs: type,
    presets: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Any] | None = None,
    exclude: Collection[str] = (),
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator for a typer command: add one parameter per field of the `configs` dataclasses (but those named
    in `exclude`), and call the command with `options`, a dict of the values the user gave (field name -> value;
    the others are absent). `defaults` are this command's own defaults for some fields: shown in `--help` as the
    default and in `options` when the user gives no other value."""
    own_defaults = dict(defaults or {})
    fields = sorted(
        ((f, kind) for f, kind in option_fields(*configs) if f.name not in exclude),
        key=lambda item: (*PANELS, None).index(item[0].metadata.get("panel")),
    )

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "options"]

        @functools.wraps(command)
        def run(**values: Any) -> R:
            given = {f.name: v for f, _ in fields if (v := values.pop(f.name)) is not None}
            return command(**values, options=own_defaults | given)

        generated = [parameter(f, kind, presets, own_defaults) for f, kind in fields]
        run.__signature__ = inspect.Signature([*own, *generated])  # type: ignore[attr-defined]
        return run

    return decorate


def old_spellings(**flags: str | tuple[str, ...]) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator for a typer command: accept an option's old flag (parameter name -> old flag, e.g.
    `steps="--steps"`, or a tuple with its short forms, `input=("--input", "-i")`), hidden from `--help`, as a
    deprecated spelling of its current one, with a note saying so. The parameter may now be an argument (e.g.
    INPUT): the old option still sets it, and the command line may give either, but not both."""

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        signature = inspect.signature(command, eval_str=True)
        parameters = {name: p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for name, p in signature.parameters.items()}
        aliases = {}  # alias parameter -> (target parameter, old flag, current spelling, alias annotation)
        needed = {}  # arguments now optional on the command line because their old flag may give them instead
        arguments = {}  # target parameter -> its metavar, for the arguments among the targets
        for name, spelling in flags.items():
            old, *short = (spelling,) if isinstance(spelling, str) else spelling
            kind, info = typing.get_args(parameters[name].annotation)[:2]
            if isinstance(info, ArgumentInfo):
                arguments[name] = current = info.metavar or name.upper()
                if parameters[name].default is inspect.Parameter.empty:
                    needed[name] = current
                    parameters[name] = parameters[name].replace(default=None, annotation=Annotated[kind | None, info])
            else:
                decls = [d for d in (info.default, *(info.param_decls or ())) if isinstance(d, str) and d[:2] == "--"]
                current = decls[0].split("/")[0] if decls else "--" + name.replace("_", "-")
            alias = typer.Option(old, *short, hidden=True, parser=info.parser, metavar=info.metavar)
            aliases[f"{name}_as_{old[2:].replace('-', '_')}"] = (name, old, current, Annotated[kind | None, alias])

        @functools.wraps(command)
        def run(**values: Any) -> R:
            for alias, (name, old, current, _) in aliases.items():
                if (value := values.pop(alias)) is not None:
                    if name in arguments and values[name] is not None:
                        raise RnnlabError(f"{old} and {current} give the same input; give one")
                    notice(f"{old} is deprecated; use {'the argument ' * (name in arguments)}{current}")
                    values[name] = value
            for name, metavar in needed.items():
                if values[name] is None:
                    raise RnnlabError(f"missing argument {metavar} (see --help)")
            return command(**values)

        extra = [
            inspect.Parameter(alias, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
            for alias, (*_, annotation) in aliases.items()
        ]
        run.__signature__ = signature.replace(parameters=[*parameters.values(), *extra])  # type: ignore[attr-defined]
        return run

    return decorate


def old_verb(
    group: typer.Typer, old: str, current: str, **settings: Any
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator under a group's `command(...)`: register the command under its old name too (`old`, e.g.
    "esn fit", whose last word is the name), hidden from `--help`, with a note naming `current` (e.g. "esn train").
    `settings` go to `group.command` (e.g. `cls`)."""

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(command)
        def run(**values: Any) -> R:
            notice(f"`rnnlab {old}` is deprecated; use `rnnlab {current}`")
            return command(**values)

        group.command(old.split()[-1], hidden=True, **settings)(run)
        return command

    return decorate


def input_argument(help: str) -> Any:
    """The positional INPUT of a command: the user's file to read (every command names its input this way)."""
    return typer.Argument(metavar="INPUT", help=help, show_default=False)


def max_time_option(help: str) -> Any:
    """The `--max-time` option of a command's own signature: a duration ("90s", "20m", "1.5h", or seconds)."""
    return typer.Option("--max-time", help=help, parser=parse_duration, metavar="DURATION")
