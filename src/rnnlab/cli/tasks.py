"""`rnnlab task NAME`: the toy and long-range tasks. Modules add their tasks to `task_app`."""

import typer

task_app = typer.Typer(help="Toy and long-range tasks from the lectures.", no_args_is_help=True)
