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
    port: Annotated[int, Opt(help="TCP port (0: any free port; the URL is printed).")] = 8000,
    host: Annotated[
        str,
        Opt(help="Interface to bind, and a name the Host header may use; 0.0.0.0 exposes it to the network."),
    ] = "127.0.0.1",
    max_concurrent: Annotated[int, Opt(help="Model requests computing at once; 32 more wait, the rest get 429.")] = 4,
) -> None:
    """Serve a page to sample from the models (streamed token by token) and view their units."""
    import torch

    from rnnlab.errors import RnnlabError

    try:
        from rnnlab.serve.app import bind, create_app, make_server, url
    except ImportError as exc:
        if exc.name not in ("fastapi", "uvicorn", "starlette"):
            raise
        raise RnnlabError(f"rnnlab serve needs {exc.name}: pip install 'rnnlab[serve]'") from None

    if max_concurrent < 1:
        raise RnnlabError("--max-concurrent must be >= 1")
    playground = create_app(run_dirs, max_concurrent=max_concurrent, host=host)  # loads each run: errors now
    sock = bind(host, port)
    torch.set_num_threads(1)  # many small generations in threads; one thread each keeps them from fighting
    print(f"serving on {url(host, sock)}", flush=True)
    make_server(playground).run(sockets=[sock])
