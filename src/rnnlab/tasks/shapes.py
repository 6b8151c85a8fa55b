"""Coloured shapes in spatial relations, for image captioning and visual question answering: 32x32 RGB
images of two shapes, one above/below/left of/right of the other. The two shapes always differ in colour
and in kind, so every scene has exactly two true captions, one naming each shape first ("a red circle
above a blue square" = "a blue square below a red circle"); `make_shapes` gives the one it drew,
`Scene.captions` both (the references that BLEU and exact-caption accuracy should be scored against)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 32
COLOURS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 0.8, 0.1), "blue": (0.1, 0.2, 1.0), "yellow": (1.0, 0.9, 0.1)}
SHAPES = ("circle", "square", "triangle")
RELATIONS = {"above": (-1, 0), "below": (1, 0), "left of": (0, -1), "right of": (0, 1)}
INVERSE = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}


@dataclass(frozen=True)
class Scene:
    """What an image shows: `first` (colour, shape) is `relation` the `second` (colour, shape)."""

    first: tuple[str, str]
    relation: str
    second: tuple[str, str]

    def caption(self) -> list[str]:
        """The caption naming `first` first: "a red circle above a blue square"."""
        return ["a", *self.first, *self.relation.split(), "a", *self.second]

    def captions(self) -> list[list[str]]:
        """Both true captions: this one and the one naming `second` first."""
        return [self.caption(), Scene(self.second, INVERSE[self.relation], self.first).caption()]


def _mask(shape: str, cy: int, cx: int, r: int) -> np.ndarray:
    y, x = np.mgrid[:SIZE, :SIZE]
    if shape == "circle":
        return (y - cy) ** 2 + (x - cx) ** 2 <= r * r
    if shape == "square":
        return (abs(y - cy) <= r - 1) & (abs(x - cx) <= r - 1)
    return (y - cy <= r) & (y - cy >= -r) & (abs(x - cx) <= (y - cy + r) / 2)  # triangle, apex up


def make_scenes(n: int, seed: int = 0) -> tuple[np.ndarray, list[Scene]]:
    """`n` images (n, 3, 32, 32) float32 in [0, 1] and the scenes they show."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 3, SIZE, SIZE), dtype=np.float32)
    scenes = []
    for i in range(n):
        c1, c2 = rng.choice(list(COLOURS), 2, replace=False)
        s1, s2 = rng.choice(SHAPES, 2, replace=False)
        relation = list(RELATIONS)[rng.integers(len(RELATIONS))]
        dy, dx = RELATIONS[relation]
        cy, cx = rng.integers(13, 19, size=2)
        r = int(rng.integers(4, 6))
        for colour, shape, sign in ((c1, s1, 1), (c2, s2, -1)):
            mask = _mask(shape, cy + sign * dy * 8, cx + sign * dx * 8, r)
            images[i][:, mask] = np.array(COLOURS[colour], dtype=np.float32)[:, None]
        scenes.append(Scene((str(c1), str(s1)), relation, (str(c2), str(s2))))
    return images, scenes


def make_shapes(n: int, seed: int = 0) -> tuple[np.ndarray, list[list[str]]]:
    """`n` images (n, 3, 32, 32) float32 in [0, 1] and one true caption each, as word lists."""
    images, scenes = make_scenes(n, seed)
    return images, [scene.caption() for scene in scenes]
