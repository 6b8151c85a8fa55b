"""Visual question answering on the shapes: the question oracle and the pictures agree, the model answers
unseen images far better than image-blind guessing, save/load round-trips, bad input is a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig
from rnnlab.seq.vqa import VQA
from rnnlab.tasks.shape_questions import answer, form, majority_baselines, make_questions
from rnnlab.tasks.shapes import COLOURS, RELATIONS, Scene, make_scenes

SCENE = Scene(("red", "circle"), "above", ("blue", "square"))


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what colour is the circle?", "red"),
        ("What color is the square?", "blue"),
        ("what colour is the triangle?", "nothing"),
        ("what shape is the blue one?", "square"),
        ("what shape is the green one?", "nothing"),
        ("is there a red circle?", "yes"),
        ("is there a red square?", "no"),
        ("where is the red circle?", "above"),
        ("where is the blue square?", "below"),
        ("where is the blue circle?", "nothing"),
        ("what shape is above the blue square?", "circle"),
        ("what shape is below the blue square?", "nothing"),
        ("what shape is below the red circle?", "square"),
        ("what colour is the shape below the red circle?", "blue"),
        ("what colour is the shape left of the red circle?", "nothing"),
        ("what colour is the shape above the green square?", "nothing"),
    ],
)
def test_answers_follow_the_scene(question, expected):
    assert answer(SCENE, question) == expected


def test_unknown_question_form_is_a_clear_error():
    assert form("how many shapes are there?") is None
    with pytest.raises(RnnlabError, match="not a question about the shapes"):
        answer(SCENE, "how many shapes are there?")


def test_pictures_show_their_scenes():
    """Each scene's two colours are drawn, `first` lies `relation` the `second`, and both captions say so."""
    images, scenes = make_scenes(50, seed=3)
    for image, scene in zip(images, scenes, strict=True):
        centres = []
        for colour, _ in (scene.first, scene.second):
            hit = np.all(np.abs(image - np.array(COLOURS[colour], dtype=np.float32)[:, None, None]) < 1e-6, axis=0)
            assert hit.sum() > 10
            centres.append(np.argwhere(hit).mean(axis=0))
        dy, dx = RELATIONS[scene.relation]
        assert np.dot(centres[0] - centres[1], (dy, dx)) > 10
        first, second = scene.captions()
        assert first == scene.caption() and second[1:3] == list(scene.second) and second[-2:] == list(scene.first)


def test_vqa_answers_unseen_images_and_round_trips(tmp_path):
    torch.set_num_threads(1)
    forms = ("where", "colour")  # the two forms that learn fastest, to keep the test at seconds
    images, scenes = make_scenes(1000, seed=0)
    train = make_questions(scenes, 5, seed=0, forms=forms)
    test_images, test_scenes = make_scenes(200, seed=1)
    test = make_questions(test_scenes, 3, seed=1, forms=forms)
    model = VQA.train(images, train, SeqConfig("gru", hidden=48, embed=16, steps=300, lr=5e-3))
    _, blind = majority_baselines(train, test)
    assert model.accuracy(test_images, test) > blind + 0.15
    again = VQA.load(model.save(tmp_path / "run"))
    question = ["where is the " + " ".join(test_scenes[0].first) + "?"]
    assert torch.equal(again.probabilities(test_images[:1], question), model.probabilities(test_images[:1], question))
    with pytest.raises(RnnlabError, match="not seen in training questions: purple"):
        model.predict(test_images[:1], ["what colour is the purple circle?"])
    with pytest.raises(RnnlabError, match="has no words"):
        model.predict(test_images[:1], ["??"])
    with pytest.raises(RnnlabError, match="3x32x32"):
        model.predict([np.zeros((3, 8, 8))], question)
    with pytest.raises(RnnlabError, match="one image per question"):
        model.predict(test_images[:2], question)
