"""COCO-format caption data: images resized to 32x32 RGB with all their captions, clear errors for bad
files, and `rnnlab caption train INPUT` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rnnlab.errors import RnnlabError
from rnnlab.seq.coco import read_coco


def write_coco(folder, count: int = 12) -> None:
    """`count` 64x48 images, each one flat colour, with two captions naming it (and a caption-less extra)."""
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}
    names = list(colours)
    images, notes = [], []
    for i in range(count + 1):
        name = names[i % 3]
        Image.new("RGB", (64, 48), colours[name]).save(folder / f"{i}.png")
        images.append({"id": 100 + i, "file_name": f"{i}.png"})
        if i < count:
            notes += [{"image_id": 100 + i, "caption": f"A {name} picture."}, {"image_id": 100 + i, "caption": name}]
    (folder / "captions.json").write_text(json.dumps({"images": images, "annotations": notes}))


def test_read_coco_resizes_and_groups_captions(tmp_path):
    write_coco(tmp_path)
    images, captions = read_coco(tmp_path / "captions.json")
    assert images.shape == (12, 3, 32, 32) and images.dtype == np.float32
    assert np.allclose(images[1], np.array([0, 0, 1.0])[:, None, None])
    assert captions[0] == [["a", "red", "picture"], ["red"]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read"),
        ('{"images": []}', "needs an 'images' list and an 'annotations' list"),
        ('{"images": [{"id": 1}], "annotations": []}', "missing 'file_name'"),
        ('{"images": [{"id": 1, "file_name": "x.png"}], "annotations": [{"image_id": 2, "caption": "a"}]}', "id 2"),
        ('{"images": [{"id": 1, "file_name": "x.png"}], "annotations": []}', "has no captions"),
        ('{"images": [{"id": 1, "file_name": "x.png"}], "annotations": [{"image_id": 1, "caption": "a"}]}', "x.png"),
    ],
)
def test_bad_coco_files_are_clear_errors(tmp_path, content, message):
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(RnnlabError, match=message):
        read_coco(tmp_path / "c.json")


def test_caption_train_on_coco(tmp_path, cli):
    write_coco(tmp_path)
    args = ["caption", "train", tmp_path / "captions.json", "--out", tmp_path / "run"]
    code, _, err = cli(*args, "--steps", "30", "--hidden", "16")
    assert code == 0 and "BLEU-4" in err and (tmp_path / "run" / "samples.png").is_file()
    own = tmp_path / "mine.jpg"  # the user's own picture: another size and format, captioned from the file
    Image.new("RGB", (200, 120), (0, 0, 255)).save(own)
    code, out, _ = cli("caption", "predict", tmp_path / "run", "--image", own, "--image", tmp_path / "0.png",
                       "--plot", tmp_path / "mine.png")  # fmt: skip
    lines = out.strip().splitlines()
    assert code == 0 and [line.split("\t")[1] for line in lines] == [str(own), str(tmp_path / "0.png")]
    assert all(line.split("\t")[0] for line in lines) and (tmp_path / "mine.png").stat().st_size > 0
    (tmp_path / "broken.png").write_bytes(b"not an image")
    code, _, err = cli("caption", "predict", tmp_path / "run", "--image", tmp_path / "broken.png")
    assert code == 2 and err.startswith("error: cannot read image") and len(err.strip().splitlines()) == 1
    code, _, err = cli("caption", "train", "--coco", tmp_path / "missing.json", "--out", tmp_path / "r2")  # old flag
    assert code == 2 and err.startswith("note: --coco is deprecated; use the argument INPUT\nerror: cannot read")
