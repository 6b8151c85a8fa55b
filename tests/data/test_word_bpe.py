"""Word-level and byte-level BPE tokenizers, and the scores of models that use them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rnnlab
from rnnlab.config import ModelConfig
from rnnlab.data.tokenizers import BPETokenizer, WordTokenizer, tokenizer_from_dict
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import RNNLM, LanguageModel

TEXT = "The cat sat on the mat.\nThe dog sat on the log!  A cat, a dog;\tthe end.\n" * 3


def test_word_round_trip_keeps_whitespace_and_punctuation():
    tok = WordTokenizer.fit([TEXT])
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.pieces("cat,  dog") == ["cat", ",", "  ", "dog"]
    assert tok.words[0] == "<unk>"


def test_word_unknowns_min_count_vocab_limit_and_lowercase():
    tok = WordTokenizer.fit([TEXT], min_count=4)
    assert tok.decode(tok.encode("The zebra")) == "The <unk>"
    assert "end" not in tok.words and "The" in tok.words  # seen 3 and 6 times
    small = WordTokenizer.fit([TEXT], vocab_size=5)
    assert small.vocab_size == 5
    lower = WordTokenizer.fit([TEXT], lowercase=True)
    assert "The" not in lower.words and lower.decode(lower.encode("THE CAT")) == "the cat"


def test_word_pattern_and_json_round_trip():
    tok = WordTokenizer.fit([TEXT], pattern=r"[a-z]+", lowercase=True)
    again = tokenizer_from_dict(tok.to_dict())
    assert again.to_dict() == tok.to_dict()
    assert again.decode(again.encode("the cat")) == "the cat"
    with pytest.raises(RnnlabError, match="not a valid regex"):
        WordTokenizer([], pattern="(")


def test_bpe_round_trips_any_text_and_streams():
    tok = BPETokenizer.fit([TEXT], vocab_size=300)
    assert 256 < tok.vocab_size <= 300
    unseen = "Zebra café 🙂 → ∑ \x00 tabs\t\n"
    for text in (TEXT, unseen):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
    again = tokenizer_from_dict(tok.to_dict())
    piece = again.decoder()
    assert "".join(piece(int(i)) for i in again.encode(unseen)) == unseen
    assert len(tok.encode(TEXT)) < len(TEXT.encode())  # merges compress the training text
    with pytest.raises(RnnlabError, match="> 256"):
        BPETokenizer.fit([TEXT], vocab_size=100)


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_perplexity_is_exp_of_mean_cross_entropy_and_bpc_is_per_original_character(kind):
    tok = WordTokenizer.fit([TEXT]) if kind == "word" else BPETokenizer.fit([TEXT], vocab_size=300)
    torch.manual_seed(0)
    module = RNNLM(ModelConfig(vocab_size=tok.vocab_size, cell="gru", layers=1, hidden=16, embed=8)).eval()
    score = LanguageModel(module, tok).score(TEXT)
    ids = torch.as_tensor(tok.encode(TEXT)).unsqueeze(0)
    with torch.no_grad():
        logits = module(ids[:, :-1])[0][0].double()
    nats = F.cross_entropy(logits, ids[0, 1:]).item()  # one pass over the whole text, independently
    assert score.perplexity == pytest.approx(math.exp(nats), rel=1e-5)
    assert score.tokens == ids.shape[1] - 1
    first = len(tok.decode(ids[0, :1].tolist()))
    assert score.chars == len(TEXT) - first
    assert score.bits_per_char == pytest.approx(nats * score.tokens / math.log(2) / score.chars, rel=1e-5)


@pytest.mark.parametrize(("kind", "extra"), [("word", {"min_count": 2}), ("bpe", {"vocab_size_limit": 280})])
def test_train_eval_and_sample_with_word_and_bpe(tmp_path, kind, extra):
    path = tmp_path / "text.txt"
    path.write_text(TEXT * 10)
    result = rnnlab.train(
        [str(path)],
        out=tmp_path / "run",
        progress=False,
        tokenizer=kind,
        cell="gru",
        layers=1,
        hidden=32,
        embed=32,
        tie_weights=True,
        batch_size=4,
        seq_len=16,
        max_steps=30,
        eval_every=30,
        warmup=0,
        **extra,
    )
    lm = LanguageModel.load(result.run_dir)
    assert lm.tokenizer.kind == kind and "head.weight" not in lm.module.state_dict()
    score = lm.score(TEXT)
    assert np.isfinite(score.bits_per_char) and score.perplexity < lm.tokenizer.vocab_size
    assert isinstance(lm.generate("The", length=5, seed=0), str)
