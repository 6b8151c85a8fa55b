"""`rnnlab task NAME`: the toy and long-range tasks. Modules add their tasks to `task_app`."""

from pathlib import Path
from typing import Annotated

import typer

task_app = typer.Typer(help="Toy and long-range tasks from the lectures.", no_args_is_help=True)


@task_app.command("lines")
def lines(
    out: Annotated[Path, typer.Option(help="Folder to write the line images and labels.tsv into.")],
    count: Annotated[int, typer.Option(help="How many lines to render.")] = 20,
    height: Annotated[int, typer.Option(help="Image height in pixels.")] = 32,
    seed: Annotated[int, typer.Option(help="Which random texts and noise.")] = 0,
) -> None:
    """Printed text lines for CTC recognition: OUT/000.png, ... and OUT/labels.tsv (NAME<TAB>TEXT), the folder
    layout `rnnlab ctc train FOLDER` reads."""
    from rnnlab.errors import RnnlabError
    from rnnlab.tasks.lines import write_lines

    if count < 1 or not 8 <= height <= 256:
        raise RnnlabError(f"need --count >= 1 and --height in 8..256, got {count} and {height}")
    transcript = write_lines(out, count, seed, height)
    print(f"wrote {count} line images and {transcript}; train with `rnnlab ctc train {out} --out RUN`")


@task_app.command("video")
def video(
    out: Annotated[Path, typer.Option(help="File to write: .npz (arrays) or .csv (one row per frame).")],
    count: Annotated[int, typer.Option(help="How many clips.")] = 1000,
    frames: Annotated[int, typer.Option(help="Frames of the longest clip (each has 2/3 to all of them).")] = 12,
    size: Annotated[int, typer.Option(help="Frame width and height in pixels.")] = 8,
    seed: Annotated[int, typer.Option(help="Which random clips and noise.")] = 0,
) -> None:
    """Clips of a shape moving across a small frame, as vector sequences (rnnlab.tasks.video): features are the
    pixels, labels the direction it sets off in, tags per frame straight/turned, targets a description."""
    from rnnlab.errors import RnnlabError
    from rnnlab.rundir import check_output
    from rnnlab.seq.vectors import write_vector_sequences
    from rnnlab.tasks.video import moving_shapes

    if out.suffix.lower() not in (".npz", ".csv"):
        raise RnnlabError(f"{out}: write the clips as .npz or .csv")
    check_output(out)
    clips = moving_shapes(count, seed, frames, size)
    write_vector_sequences(clips, out)
    print(f"wrote {count} clips of up to {frames} frames x {size * size} pixels to {out}")
    print(f"try: rnnlab classify train {out} --out RUN, then rnnlab classify predict RUN {out}")
