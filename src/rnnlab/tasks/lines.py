"""Printed text lines for CTC line recognition (`rnnlab ctc train --task lines`, `rnnlab task lines`).

Each line is a few random words over a small alphabet (lower-case letters, digits, space), rendered to a
grey-scale image of a fixed height with Pillow's own scalable font (`ImageFont.load_default(size)`, which
ships inside Pillow, so no system font is needed), and made harder the way real scans are: a random font
size, extra space between letters and between words, a small vertical offset for the line and for each
letter, uneven paper and ink, and pixel noise. A recogniser reads the image column by column, with no
alignment between columns and letters: that is what CTC learns.

Images are uint8 arrays (height, width), dark ink on light paper, as a scanner gives them.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.errors import RnnlabError

ALPHABET = string.ascii_lowercase + string.digits + " "
TRANSCRIPT = "labels.tsv"  # one line per image: file name, a TAB, the text


@functools.lru_cache(maxsize=32)
def font(size: int) -> Any:
    """Pillow's built-in scalable font at `size` pixels (FreeType); Pillow's fixed bitmap font where FreeType or
    the sized default (Pillow < 10.1) is missing."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def random_text(rng: np.random.Generator, max_chars: int = 16, chars: str = "") -> str:
    """One to four random "words" of 1-7 characters, at most `max_chars` long in all: lower-case letters,
    sometimes digits, or only the characters of `chars` when given."""
    letters, digits = string.ascii_lowercase, string.digits
    words: list[str] = []
    for _ in range(int(rng.integers(1, 5))):
        pool = chars or (digits if rng.random() < 0.15 else letters if rng.random() < 0.8 else letters + digits)
        word = "".join(rng.choice(list(pool), size=int(rng.integers(1, 8))))
        if len(" ".join([*words, word])) > max_chars:
            break
        words.append(word)
    return " ".join(words) or word[:max_chars]


def render(text: str, height: int, rng: np.random.Generator, noise: float = 0.08) -> np.ndarray:
    """`text` drawn on a (height, width) uint8 image, letter by letter, with random size, spacing, offsets,
    contrast and Gaussian pixel noise of standard deviation up to `noise` (0: a clean line)."""
    from PIL import Image, ImageDraw

    size = int(rng.integers(max(6, round(0.42 * height)), max(7, round(0.62 * height)) + 1))
    face = font(size)
    letter_gap, word_gap = int(rng.integers(0, max(2, size // 6) + 1)), int(rng.integers(0, size // 3 + 1))
    advances = [face.getlength(c) + letter_gap + (word_gap if c == " " else 0) for c in text]
    margin = int(rng.integers(2, max(3, height // 4)))
    width = round(sum(advances)) + 2 * margin
    top, bottom = face.getbbox("bdfghjklpqty0")[1::2]
    base = (height - (bottom - top)) / 2 - top + rng.uniform(-0.12, 0.12) * height
    paper = int(rng.integers(215, 256))
    ink = int(rng.integers(0, 90))
    image = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(image)
    x = float(margin)
    jitter = height // 24  # pixels up or down per letter
    for char, advance in zip(text, advances, strict=True):
        draw.text((x, base + rng.integers(-jitter, jitter + 1)), char, fill=ink, font=face)
        x += advance
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0.0, 255 * noise * rng.random(), pixels.shape)  # speckle of varying strength
    pixels += np.linspace(0, rng.uniform(-25, 25), width)[None, :]  # uneven lighting across the line
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_lines(
    count: int, seed: int = 0, height: int = 32, max_chars: int = 16, chars: str = ""
) -> tuple[list[np.ndarray], list[str]]:
    """`count` rendered lines (images of `height` rows and varying width) and their texts (see `random_text`);
    a seed gives one set of texts and one set of noise, so another seed is held-out data."""
    if count < 1 or height < 8 or max_chars < 1:
        raise RnnlabError(f"need count >= 1, height >= 8 and max_chars >= 1 (got {count}, {height}, {max_chars})")
    rng = np.random.default_rng(seed)
    texts = [random_text(rng, max_chars, chars) for _ in range(count)]
    return [render(text, height, rng) for text in texts], texts


def write_lines(out: Path, count: int, seed: int = 0, height: int = 32) -> Path:
    """Write `count` lines as OUT/000.png, ... and their transcript OUT/labels.tsv (NAME<TAB>TEXT per line): the
    layout `rnnlab ctc train FOLDER` reads. Returns the transcript's path."""
    from PIL import Image

    from rnnlab.rundir import atomic_write_bytes

    images, texts = make_lines(count, seed, height)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RnnlabError(f"cannot write to {out}: not a folder")
    out.mkdir(parents=True, exist_ok=True)
    digits = len(str(count - 1))
    names = [f"{i:0{digits}d}.png" for i in range(count)]
    for name, pixels in zip(names, images, strict=True):
        Image.fromarray(pixels).save(out / name)
    transcript = out / TRANSCRIPT
    atomic_write_bytes(transcript, "".join(f"{n}\t{t}\n" for n, t in zip(names, texts, strict=True)).encode())
    return transcript
