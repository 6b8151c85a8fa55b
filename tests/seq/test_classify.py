"""Many-to-one classification: learns the negation-sensitive sentiment task, saves and loads, reads user data."""

from __future__ import annotations

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.seq.classify import Classifier, demo, read_labelled, words
from rnnlab.seq.sequence import SeqConfig


@pytest.fixture(scope="module")
def model() -> Classifier:
    return Classifier.train(demo(2000, seed=0), SeqConfig("gru", hidden=32, embed=16, steps=120, lr=1e-2))


def test_beats_chance_on_held_out_sentiment(model):
    test = demo(400, seed=1)
    labels = [label for _, label in test]
    chance = max(labels.count(x) for x in set(labels)) / len(labels)
    assert model.accuracy(test) > max(chance + 0.25, 0.8)


def test_save_load_predicts_the_same(model, tmp_path):
    texts = ["the plot was not good", "really great music", ""]
    again = Classifier.load(model.save(tmp_path / "run"))
    assert again.predict(texts) == model.predict(texts)
    assert again.probabilities(texts).sum(-1).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_reads_csv_and_jsonl_and_rejects_bad_rows(tmp_path):
    csv_path = tmp_path / "data.csv"
    csv_path.write_text('text,label\n"Good, fun",pos\nawful,neg\n')
    assert read_labelled(csv_path) == [("Good, fun", "pos"), ("awful", "neg")]
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"text": "ok", "label": 1}\n')
    assert read_labelled(jsonl) == [("ok", "1")]
    (tmp_path / "bad.csv").write_text("words,label\nhello,x\n")
    with pytest.raises(RnnlabError, match="row 1 needs 'text' and 'label'"):
        read_labelled(tmp_path / "bad.csv")
    with pytest.raises(RnnlabError, match="2 distinct labels"):
        Classifier.train([("a", "x"), ("b", "x")], SeqConfig(steps=1))
    assert words("Not GOOD!") == ["not", "good", "!"]
