"""Many-to-many tagging: the repeated-ones task needs memory of the prefix; user JSONL is validated."""

from __future__ import annotations

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig
from rnnlab.seq.tagger import Tagger, demo, majority_rate, read_tagged


def test_learns_repeated_ones_far_above_the_majority_tag(tmp_path):
    model = Tagger.train(demo(1000, seed=0), SeqConfig("lstm", hidden=24, embed=8, steps=120, lr=1e-2))
    test = demo(300, seed=1)
    assert model.accuracy(test) > majority_rate(test) + 0.3
    again = Tagger.load(model.save(tmp_path / "run"))
    bits = list("0110100")
    assert again.predict([bits]) == model.predict([bits])
    assert model.predict([bits])[0] == ["no", "no", "yes", "yes", "yes", "yes", "yes"]


def test_reads_jsonl_and_rejects_mismatched_tags(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"tokens": ["the", "cat"], "tags": ["DET", "NOUN"]}\n\n')
    assert read_tagged(good) == [(["the", "cat"], ["DET", "NOUN"])]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tokens": ["the", "cat"], "tags": ["DET"]}\n')
    with pytest.raises(RnnlabError, match="one tag per token"):
        read_tagged(bad)
    (tmp_path / "junk.jsonl").write_text("not json\n")
    with pytest.raises(RnnlabError, match=r"junk\.jsonl:1"):
        read_tagged(tmp_path / "junk.jsonl")
