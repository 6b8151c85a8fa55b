"""`rnnlab serve DIR...`: the local web playground (see rnnlab.serve.app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnlab.cli.app import app

Opt = typer.Option


@app.command("serve")
def serve(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories to offer (the only ones it can load).")],
    port: Annotated[int, Opt(help="TCP port.")] = 8000,
    host: Annotated[str, Opt(help="Interface to bind; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    max_concurrent: Annotated[int, Opt(help="Generations running at once; up to 32 more wait, the rest get 429.")] = 4,
) -> None:
    """Serve a page to sample from the models (streamed token by token) and view their units."""
    import torch
    import uvicorn

    from rnnlab.errors import RnnlabError
    from rnnlab.serve.app import create_app

    if max_concurrent < 1:
        raise RnnlabError("--max-concurrent must be >= 1")
    torch.set_num_threads(1)  # many small generations in threads; one thread each keeps them from fighting
    uvicorn.run(create_app(run_dirs, max_concurrent=max_concurrent), host=host, port=port, log_level="warning")
