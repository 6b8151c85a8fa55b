"""Encoder-decoder and one-to-many generation: learning, greedy vs beam, save/load, bad input."""

from __future__ import annotations

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.seq.classify import Classifier
from rnnlab.seq.seq2seq import Seq2Seq, demo
from rnnlab.seq.sequence import SeqConfig
from rnnlab.tasks.seq2seq_toys import transliterate_word


@pytest.fixture(scope="module")
def reverser() -> Seq2Seq:
    pairs = demo("reverse", 5000, seed=0)
    short = [(s[:4], s[:4][::-1]) for s, _ in pairs]
    return Seq2Seq.train(short, SeqConfig("gru", hidden=64, embed=16, steps=200, batch_size=64, lr=1e-2))


def test_reverse_beats_chance_by_orders_of_magnitude(reverser):
    test = [(s[:4], s[:4][::-1]) for s, _ in demo("reverse", 300, seed=1)]
    assert reverser.exact_match(test) > 0.3  # chance: 10^-4


def test_beam_log_probability_is_never_below_greedy(reverser):
    sources = [s[:4] for s, _ in demo("reverse", 20, seed=2)]
    for source in sources:
        greedy_logp = reverser.greedy([source])[0][1]
        tokens, beam_logp = reverser.beam(source, width=4)
        assert beam_logp >= greedy_logp
        assert beam_logp <= 0.0 and len(tokens) <= reverser.max_len
    assert reverser.beam(sources[0], width=1)[1] >= reverser.greedy(sources[:1])[0][1]


def test_save_load_and_unknown_tokens(reverser, tmp_path):
    again = Seq2Seq.load(reverser.save(tmp_path / "run", task="reverse"))
    source = list("1234")
    assert again.greedy([source]) == reverser.greedy([source])
    with pytest.raises(RnnlabError, match="not seen in training: 'x'"):
        again.greedy([["1", "x"]])
    with pytest.raises(RnnlabError, match=r"holds an encoder-decoder \(seq2seq run\), not a sequence classifier"):
        Classifier.load(tmp_path / "run")


def test_one_to_many_generates_each_class_from_a_single_vector():
    pairs = demo("multiples", 400, seed=0)
    model = Seq2Seq.train(pairs, SeqConfig("lstm", hidden=48, embed=8, steps=150, lr=1e-2), one_to_many=True)
    outputs = model.greedy([[str(k)] for k in range(1, 10)])
    correct = sum(
        "".join(out) == " ".join(str(k * i) for i in range(1, 6))
        for k, (out, _) in zip(range(1, 10), outputs, strict=True)
    )
    assert correct >= 7  # a class-blind decoder could get at most 1 of the 9 right


def test_transliteration_task_is_consistent():
    assert transliterate_word("shapka") == "шапка"
    for source, target in demo("translit", 50, seed=0):
        assert "".join(target) == transliterate_word("".join(source))
    with pytest.raises(RnnlabError, match="unknown task"):
        demo("nope", 1)
