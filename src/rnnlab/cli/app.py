"""The `rnnlab` command line: the root app, the entry point, and the list of apps whose commands it mounts.

Each app's CLI module (rnnlab.lm.cli, rnnlab.seq.cli, ...) registers its commands on `app` (or on the
`task` group) when it is imported; adding an app is one line in APPS. `main()` turns every failure into one
line, `error: ...`, on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from typing import Annotated

import typer

from rnnlab._version import __version__
from rnnlab.cli.tasks import task_app
from rnnlab.errors import RnnlabError

app = typer.Typer(
    name="rnnlab",
    help="Train, sample, evaluate and understand recurrent neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Opt = typer.Option


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, Opt("--version", help="Show the version and exit.")] = False,
) -> None:
    if version:
        print(f"rnnlab {__version__}")
        raise typer.Exit(0)


APPS = (
    "rnnlab.lm.cli",
    "rnnlab.reference.cli",
    "rnnlab.esn.cli",
    "rnnlab.analysis.cli",
    "rnnlab.serve.cli",
    "rnnlab.seq.cli",
    "rnnlab.lab.cli",
    "rnnlab.baselines.cli",
    "rnnlab.baselines.hmm_cli",
    "rnnlab.baselines.series_cli",
    "rnnlab.baselines.window_cli",
)
app.add_typer(task_app, name="task")
for _module in APPS:
    importlib.import_module(_module)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI. Every failure is one line `error: ...` and exit status 2; Ctrl-C is 130.

    `--debug` anywhere before a `--` (or RNNLAB_DEBUG=1) shows the traceback of a failure instead.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end] or os.environ.get("RNNLAB_DEBUG", "") not in ("", "0")
    args = [a for i, a in enumerate(args) if not (a == "--debug" and i < end)]
    command = typer.main.get_command(app)
    try:
        status = command.main(args=args or ["--help"], prog_name="rnnlab", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `rnnlab sample DIR | head`
        _quiet_stdout()
        sys.exit(0)
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument, bad value
        if type(exc).__name__ == "NoArgsIsHelpError":  # `rnnlab task` alone: show that group's help
            exc.show()
            sys.exit(0)
        message = exc.format_message().strip().splitlines()[0].replace("Value error, ", "")  # pydantic's prefix
        _fail(message + " (see --help)", debug)
    except RnnlabError as exc:
        _fail(str(exc), debug)
    except OSError as exc:  # unreadable input, read-only folder, disk full, ...
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", debug)
    except MemoryError:
        _fail("out of memory (use a smaller model, --batch-size or input)", debug)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        if "allocate" in str(exc) or "out of memory" in str(exc):
            _fail(f"out of memory ({text[0][:200]})", debug)
        _fail(f"unexpected {type(exc).__name__}: {text[0][:300] if text else ''} (run with --debug for details)", debug)
    if isinstance(status, int) and status:  # click returns an Exit's status instead of raising it
        sys.exit(status)


def _fail(message: str, debug: bool = False) -> None:
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush is silent."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
