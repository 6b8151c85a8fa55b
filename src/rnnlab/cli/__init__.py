"""The `rnnlab` command line: `app.py` holds the core commands (train, sample, eval, info) and the
entry point; each other area registers its commands from a module of its own in this package."""

from rnnlab.cli.app import app, main

__all__ = ["app", "main"]
