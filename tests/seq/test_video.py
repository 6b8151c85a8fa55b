"""The moving-shapes video task: clips show what their labels, tags and descriptions say; a classifier over
frames learns the direction far above the majority class and a last-frame-only model, a tagger beats the
majority tag; and the commands work end to end on the task's file and on a CSV written here."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.seq.classify import Classifier, majority_rate
from rnnlab.seq.sequence import SeqConfig
from rnnlab.seq.tagger import Tagger
from rnnlab.seq.tagger import majority_rate as majority_tag_rate
from rnnlab.seq.vectors import VectorSequences
from rnnlab.tasks.video import DIRECTIONS, SHAPES, moving_shapes

FAST = SeqConfig("lstm", hidden=64, embed=32, steps=300, lr=1e-2)


@pytest.fixture(scope="module")
def clips() -> tuple[VectorSequences, VectorSequences]:
    return moving_shapes(2000, seed=0), moving_shapes(400, seed=1)


def test_clips_move_as_their_labels_tags_and_descriptions_say():
    data = moving_shapes(200, seed=3, frames=12, size=8)
    again = moving_shapes(200, seed=3, frames=12, size=8)
    assert all(np.array_equal(a, b) for a, b in zip(data.features, again.features, strict=True))
    assert {len(f) for f in data.features} == set(range(8, 13)) and data.num_features == 64
    for frames, label, tags, target in zip(data.features, data.labels, data.tags, data.targets, strict=True):
        shape, _, first, *rest = target.split()
        assert first == label and (not rest or (rest[0] == "then" and rest[1] != label))
        pictures = frames.reshape(-1, 8, 8) > 0.5  # the noise has std 0.1: this recovers the pixels
        assert pictures.sum((1, 2)).tolist() == [len(SHAPES[shape])] * len(frames)
        for t in range(1, len(frames)):
            way = rest[1] if tags[t] == "turned" else label
            assert np.array_equal(np.roll(pictures[t - 1], DIRECTIONS[way], axis=(0, 1)), pictures[t]), (t, target)
        assert ("turned" in tags) == bool(rest) and tags[0] == "straight" and tags == sorted(tags)
    with pytest.raises(RnnlabError, match="at least 6 frames"):
        moving_shapes(5, frames=4)


def test_direction_needs_memory_a_classifier_over_frames_learns_it(clips):
    train, test = clips
    model = Classifier.train(train, FAST)
    accuracy = model.accuracy(test)

    def last_frame(data: VectorSequences) -> VectorSequences:
        return VectorSequences([f[-1:] for f in data.features], data.labels)

    baseline = Classifier.train(last_frame(train), FAST).accuracy(last_frame(test))
    assert majority_rate(test) < 0.35 and baseline < 0.4  # one frame says nothing about the direction
    assert accuracy > 0.85 and accuracy > baseline + 0.45


def test_per_frame_tagger_beats_the_majority_tag(clips):
    train, test = clips
    model = Tagger.train(train, FAST)
    assert model.accuracy(test) > majority_tag_rate(test) + 0.1


def test_commands_end_to_end_on_the_task_file_and_a_users_csv(tmp_path, cli):
    clips, run = tmp_path / "clips.npz", tmp_path / "run"
    assert cli("task", "video", "--out", clips, "--count", "300")[0] == 0
    small = ["--max-steps", "30", "--hidden", "16", "--embed", "8"]
    code, _, err = cli("classify", "train", clips, "--out", run, *small)
    assert code == 0 and "majority class" in err
    code, out, err = cli("classify", "predict", run, clips)
    lines = out.strip().split("\n")
    assert code == 0 and len(lines) == 300 and lines[0].split("\t")[0] in DIRECTIONS and "accuracy" in err
    code, out, _ = cli("info", run)
    assert code == 0 and "parameters" in out and "kind         classify" in out
    code, _, err = cli("classify", "predict", run, "some", "text")
    assert code == 2 and "trained on vector sequences" in err

    rng = np.random.default_rng(0)
    rows = ["sequence,a,b,label,tag"]
    for i in range(40):  # a user's sensors: is the first channel rising? tags: is it above zero?
        values = np.cumsum(rng.normal(size=(int(rng.integers(3, 7)), 2)), axis=0)
        label = "rising" if values[-1, 0] > values[0, 0] else "falling"
        rows += [f"s{i},{a:.4f},{b:.4f},{label},{'high' if a > 0 else 'low'}" for a, b in values]
    sensors = tmp_path / "sensors.csv"
    sensors.write_text("\n".join(rows) + "\n")
    code, _, err = cli("tag", "train", sensors, "--out", tmp_path / "tags", *small)
    assert code == 0 and "majority tag" in err
    code, out, _ = cli("tag", "predict", tmp_path / "tags", sensors)
    assert code == 0 and out.split("\n")[0].split("\t")[0] == "s0"
    code, _, _ = cli("tag", "predict", tmp_path / "tags", sensors, "--output", tmp_path / "tags.csv")
    written = (tmp_path / "tags.csv").read_text().splitlines()
    assert code == 0 and written[0] == "id,frame,tag" and len(written) == len(rows)
    code, _, err = cli("classify", "train", sensors, "--out", tmp_path / "c", *small)
    assert code == 0 and "held-out accuracy" in err
    code, _, _ = cli("classify", "predict", tmp_path / "c", sensors, "--output", tmp_path / "labels.csv")
    assert code == 0 and (tmp_path / "labels.csv").read_text().startswith("label,probability,id\n")
    code, _, err = cli("classify", "train", sensors, "--out", tmp_path / "x", "--task", "video")
    assert code == 2 and err.startswith("error: give INPUT or --task, not both")
