"""Moving shapes: short clips of a small shape moving one pixel per frame across a size x size frame, a
synthetic video task that needs memory.

The frame wraps around (a shape leaving one edge comes back at the opposite one, as in an old video game)
and the start is uniform, so one frame's picture says nothing about where the shape is going. Most clips
turn once, to a perpendicular direction, somewhere in the middle. Each clip carries
- a label, the direction the shape set off in: reading it at the end of the clip means remembering the
  start, since after a turn the last frames show the shape going another way;
- a tag per frame, "straight" until the turn and "turned" after it: a per-frame label that depends on the
  past (the turn is a change against the direction remembered from before);
- a target, a description such as "square moves left then up", for vectors -> words.
Features are the flattened pixels (1 on the shape, 0 elsewhere) plus Gaussian noise.
"""

from __future__ import annotations

import numpy as np

from rnnlab.data.vectors import VectorSequences
from rnnlab.errors import RnnlabError

# (dy, dx) offsets of each shape's pixels from its anchor, padded to one length by repeating the first one
SHAPES = {
    "square": [(0, 0), (0, 1), (1, 0), (1, 1)],
    "cross": [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1)],
    "ring": [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)],
}
DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
PERPENDICULAR = {"left": ("up", "down"), "right": ("up", "down"), "up": ("left", "right"), "down": ("left", "right")}
TURN_RATE = 2 / 3  # the share of clips that turn
NOISE = 0.1  # standard deviation of the pixel noise


def moving_shapes(n: int, seed: int = 0, frames: int = 12, size: int = 8) -> VectorSequences:
    """`n` clips, each 2/3 to all of `frames` frames long (at least 5), a frame being size*size features (the
    flattened pixels plus noise), with their labels, tags and targets (see the module's docstring)."""
    if n < 1:
        raise RnnlabError(f"need at least one clip, got {n}")
    if frames < 6:
        raise RnnlabError(f"clips need at least 6 frames to set off, turn and go on, got {frames}")
    if size < 4:
        raise RnnlabError(f"frames need at least 4 x 4 pixels to show a 3 x 3 shape moving, got {size}")
    rng = np.random.default_rng(seed)
    names, directions = list(SHAPES), list(DIRECTIONS)
    shape = rng.integers(len(names), size=n)
    first = rng.integers(len(directions), size=n)
    side = rng.integers(2, size=n)
    second = np.array([directions.index(PERPENDICULAR[directions[d]][k]) for d, k in zip(first, side, strict=True)])
    lengths = rng.integers(max(-(-2 * frames // 3), 5), frames + 1, size=n)
    # frames 1..turn arrive moving the first way, the rest the second way; no turn: turn = length - 1
    turn = rng.integers(2, lengths - 2)  # the last turn leaves 2 frames to show the new direction
    turn = np.where(rng.random(n) < TURN_RATE, turn, lengths - 1)
    steps = np.array(list(DIRECTIONS.values()))
    t = np.arange(frames)
    moves = np.where((t[None, :, None] <= turn[:, None, None]), steps[first][:, None], steps[second][:, None])
    moves[:, 0] = 0
    positions = rng.integers(size, size=(n, 1, 2)) + np.cumsum(moves, axis=1)  # (n, frames, 2)
    width = max(len(offsets) for offsets in SHAPES.values())
    offsets = np.array([offsets + offsets[:1] * (width - len(offsets)) for offsets in SHAPES.values()])
    pixels = (positions[:, :, None, :] + offsets[shape][:, None]) % size  # (n, frames, width, 2)
    video = np.zeros((n, frames, size, size), dtype=np.float32)
    clip, frame = np.arange(n)[:, None, None], t[None, :, None]
    video[clip, frame, pixels[..., 0], pixels[..., 1]] = 1.0
    video += rng.normal(0.0, NOISE, video.shape).astype(np.float32)
    features = [video[i, :length].reshape(length, size * size) for i, length in enumerate(lengths.tolist())]
    turned = turn < lengths - 1
    return VectorSequences(
        features,
        labels=[directions[d] for d in first],
        tags=[["turned" if k > turn[i] else "straight" for k in range(length)] for i, length in enumerate(lengths)],
        targets=[
            f"{names[s]} moves {directions[d]}" + (f" then {directions[e]}" if turned[i] else "")
            for i, (s, d, e) in enumerate(zip(shape, first, second, strict=True))
        ],
    )
