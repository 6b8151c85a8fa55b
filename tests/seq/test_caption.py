"""Image captioning on coloured shapes: BLEU well above a caption-blind baseline, beam >= greedy, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.metrics import corpus_bleu
from rnnlab.seq.caption import Captioner, render_grid
from rnnlab.seq.sequence import SeqConfig
from rnnlab.tasks.shapes import make_scenes, make_shapes


def test_bleu_matches_hand_computed_values():
    hyp, ref = (
        ["a", "red", "circle", "above", "a", "blue", "square"],
        ["a", "red", "circle", "below", "a", "blue", "square"],
    )
    scores = corpus_bleu([hyp], [[ref]])
    assert scores[:3] == pytest.approx([6 / 7, (6 / 7 * 4 / 6) ** 0.5, (6 / 7 * 4 / 6 * 2 / 5) ** (1 / 3)])
    assert scores[3] == 0.0
    assert corpus_bleu([ref], [[ref]]) == [1.0, 1.0, 1.0, 1.0]
    assert corpus_bleu([["a"]], [[ref]])[0] == pytest.approx(np.exp(1 - 7))  # brevity penalty


def test_captioner_learns_the_shapes_and_round_trips(tmp_path):
    images, captions = make_shapes(1500, seed=0)
    model = Captioner.train_captions(images, captions, SeqConfig("gru", hidden=48, embed=16, steps=120, lr=5e-3))
    test_images, test_scenes = make_scenes(100, seed=1)
    references = [s.captions() for s in test_scenes]
    bleu, _ = model.evaluate(test_images, references)
    # One fixed caption for every image as the caption-blind baseline.
    blind = corpus_bleu([captions[0]] * 100, references)
    assert bleu[1] > blind[1] + 0.15
    assert model.evaluate(test_images[:1], [[model.describe(test_images[:1])[0]]]) == ([1.0] * 4, 1.0)
    for image in test_images[:5]:
        assert model.beam(image, 3)[1] >= model.greedy([image])[0][1]
    again = Captioner.load(model.save(tmp_path / "run"))
    assert again.greedy([test_images[0]]) == model.greedy([test_images[0]])
    assert render_grid(test_images[:3], ["x", "y", "z"], tmp_path / "grid.png").stat().st_size > 0
    with pytest.raises(RnnlabError, match="3x32x32"):
        model.greedy([np.zeros((3, 8, 8))])
