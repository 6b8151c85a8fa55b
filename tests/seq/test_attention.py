"""Attention and decoding: masked weights, padding invariance, gradients, beam search against greedy and
against brute force, BLEU against NLTK."""

from __future__ import annotations

import itertools

import pytest
import torch
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

from rnnlab.seq.attention import Attention
from rnnlab.seq.seq2seq import Seq2Seq, Seq2SeqNet, score_outputs
from rnnlab.seq.sequence import END, START, SeqConfig, Vocab

CONFIG = SeqConfig("gru", hidden=8, embed=6, steps=1)


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_weights_sum_to_one_are_zero_on_padding_and_every_parameter_gets_a_gradient(kind):
    torch.manual_seed(0)
    attention = Attention(kind, 5, 7)
    values = torch.randn(3, 6, 7, requires_grad=True)
    mask = torch.arange(6)[None] < torch.tensor([6, 2, 4])[:, None]
    query = torch.randn(3, 4, 5, requires_grad=True)
    context, weights = attention(query, attention.keys(values), values, mask)
    assert context.shape == (3, 4, 7) and weights.shape == (3, 4, 6)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4))
    assert (weights[~mask[:, None].expand(-1, 4, -1)] == 0).all()  # exactly 0, not merely small
    assert (weights[mask[:, None].expand(-1, 4, -1)] > 0).all()
    context.square().sum().backward()
    for name, p in [*attention.named_parameters(), ("query", query), ("values", values)]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert (values.grad[1, 2:] == 0).all()  # padded values receive nothing


def _net(attention: str, bidirectional: bool = True, seed: int = 0) -> Seq2SeqNet:
    torch.manual_seed(seed)
    return Seq2SeqNet(CONFIG, 9, 7, attention=attention, bidirectional=bidirectional).eval()


@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
def test_extra_padding_leaves_every_decoder_output_unchanged(attention):
    net = _net(attention)
    src = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0], [8, 0, 0, 0]])
    lengths = torch.tensor([4, 2, 1])
    tgt = torch.tensor([[2, 4, 5], [2, 6, 0], [2, 5, 6]])
    logits, state = net.decode(tgt, *net.encode(src, lengths))
    padded = torch.cat([src, torch.zeros(3, 5, dtype=torch.long)], 1)
    logits_padded, state_padded = net.decode(tgt, *net.encode(padded, lengths))
    assert torch.allclose(logits, logits_padded, atol=1e-6) and torch.allclose(state, state_padded, atol=1e-6)
    alone, _ = net.decode(tgt[2:], *net.encode(src[2:, :1], lengths[2:]))  # no padding at all
    assert torch.allclose(logits[2:], alone, atol=1e-6)


def _model(attention: str, tgt_tokens: list[str], max_len: int, scale: float = 1.0) -> Seq2Seq:
    """An untrained model whose output layer is scaled up so that its distributions are far from uniform."""
    src = Vocab(["x", "y", "z"])
    tgt = Vocab(tgt_tokens, specials=(START, END))
    torch.manual_seed(3)
    net = Seq2SeqNet(CONFIG, len(src), len(tgt), attention=attention)
    with torch.no_grad():
        net.head.weight.mul_(scale)
    return Seq2Seq(net.eval(), src, tgt, CONFIG, max_len)


@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
def test_beam_of_width_one_is_greedy(attention):
    model = _model(attention, list("abcd"), 6, scale=3.0)
    for source in (["x"], ["y", "z", "x"], ["z", "z", "y", "x", "x"]):
        (out, score), (beam_out, beam_score) = model.greedy([source])[0], model.beam(source, 1)
        assert beam_out == out and beam_score == pytest.approx(score, abs=1e-9)


@torch.no_grad()
def _log_probability(model: Seq2Seq, source: list[str], ids: list[int], ends: bool) -> float:
    """log p(ids (+ <END>) | source) by teacher forcing, independently of the decoding code."""
    state, memory = model._encode([source])
    inputs = torch.tensor([[model.tgt.index[START], *ids]])
    logp = model.module.decode(inputs, state, memory)[0][0].double().log_softmax(-1)
    wanted = [*ids, model.tgt.index[END]] if ends else ids
    return float(sum(logp[t, token] for t, token in enumerate(wanted)))


@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
def test_wide_beam_finds_the_most_probable_output_found_by_brute_force(attention):
    model = _model(attention, ["a", "b"], max_len=3, scale=4.0)
    end, V = model.tgt.index[END], len(model.tgt)
    tokens = [i for i in range(V) if i != end]
    for source in (["x", "y"], ["z"], ["y", "y", "x"]):
        candidates = [  # every output: fewer than max_len tokens then <END>, or max_len tokens (cut off)
            (_log_probability(model, source, list(ids), ends=n < 3), list(ids))
            for n in range(4)
            for ids in itertools.product(tokens, repeat=n)
        ]
        best_score, best_ids = max(candidates)
        out, score = model.beam(source, width=V**3)
        assert score == pytest.approx(best_score, abs=1e-6)
        assert out == model.tgt.decode(best_ids)
        assert model.beam(source, width=2)[1] <= best_score + 1e-9


def test_bleu_equals_nltk_corpus_bleu():
    cases = [
        ([list("the cat sat on the mat"), list("a dog ran")], [list("the cat sat on a mat"), list("a dog ran far")]),
        ([["the", "cat", "is", "on", "the", "mat"]], [["the", "cat", "is", "on", "a", "mat", "today"]]),
        (
            [["a", "b", "c", "d", "e"], ["a", "b", "c", "d"], ["x", "y", "z", "w", "v", "u"]],
            [["a", "b", "c", "d", "e", "f"], ["a", "b", "c", "d"], ["x", "y", "z", "w", "v", "t"]],
        ),
    ]
    for outputs, targets in cases:
        ours = score_outputs(outputs, targets).bleu
        assert ours == pytest.approx(nltk_corpus_bleu([[t] for t in targets], outputs), abs=1e-12)
        assert 0 < ours < 1
    assert score_outputs([["a", "b", "c", "d"]], [["a", "b", "c", "d"]]).bleu == pytest.approx(1.0)
