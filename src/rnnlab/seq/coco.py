"""Image-caption data in the COCO captions format, for `rnnlab caption train INPUT`:

    {"images": [{"id": 1, "file_name": "a.jpg"}, ...],
     "annotations": [{"image_id": 1, "caption": "A man riding a horse."}, ...]}

with the image files in a folder. Images are read with Pillow (which matplotlib depends on), converted to
RGB and resized to the 32x32 the captioner's CNN reads; captions become lower-case word lists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from rnnlab.errors import RnnlabError

SIZE = 32


def caption_words(caption: str) -> list[str]:
    """Lower-cased words (letters, digits, apostrophes) of a caption; punctuation is dropped."""
    return re.findall(r"[a-z0-9']+", caption.lower())


def read_coco(annotations: Path, image_dir: Path | None = None) -> tuple[np.ndarray, list[list[list[str]]]]:
    """(images (n, 3, 32, 32) float32 in [0, 1], every caption of each image as word lists) for the images
    that have at least one caption, in the order of the file's "images" list. `image_dir` defaults to the
    annotation file's folder."""
    path = Path(annotations)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RnnlabError(f"cannot read {path} as COCO caption JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise RnnlabError(f"{path}: a COCO caption file needs an 'images' list and an 'annotations' list")
    if not isinstance(data.get("annotations"), list):
        raise RnnlabError(f"{path}: a COCO caption file needs an 'images' list and an 'annotations' list")
    try:
        files = {entry["id"]: entry["file_name"] for entry in data["images"]}
        captions: dict[object, list[list[str]]] = {}
        for note in data["annotations"]:
            if note["image_id"] not in files:
                raise RnnlabError(f"{path}: a caption refers to image id {note['image_id']!r}, not in 'images'")
            words = caption_words(str(note["caption"]))
            if words:
                captions.setdefault(note["image_id"], []).append(words)
    except (KeyError, TypeError) as exc:
        raise RnnlabError(
            f"{path}: every image needs 'id' and 'file_name', every annotation 'image_id' and 'caption' (missing {exc})"
        ) from None
    if not captions:
        raise RnnlabError(f"{path} has no captions")
    folder = Path(image_dir) if image_dir is not None else path.parent
    ids = [i for i in files if i in captions]
    images = np.zeros((len(ids), 3, SIZE, SIZE), dtype=np.float32)
    for n, image_id in enumerate(ids):
        images[n] = load_image(folder / str(files[image_id]))
    return images, [captions[i] for i in ids]


def load_image(file: Path) -> np.ndarray:
    """Any image file Pillow reads, as the captioner sees it: RGB, resized to 32x32, (3, 32, 32) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            pixels = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise RnnlabError(f"cannot read image {file}: {exc}") from None
    return pixels.transpose(2, 0, 1) / 255.0
