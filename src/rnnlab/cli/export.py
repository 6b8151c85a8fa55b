"""`rnnlab export DIR --onnx model.onnx`: the model's per-step function as an ONNX graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rnnlab.cli.app import app
from rnnlab.errors import RnnlabError
from rnnlab.ui import console


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    onnx: Annotated[Path | None, typer.Option(help="Write the per-step function to this .onnx file.")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
) -> None:
    """Export a trained model: one step (tokens (N, 1), state) -> (logits (N, V), new state)."""
    if onnx is None:
        raise RnnlabError("choose an export format: --onnx FILE")
    from rnnlab.export import export_onnx

    console.print(f"wrote {export_onnx(run_dir, onnx, opset)}")
