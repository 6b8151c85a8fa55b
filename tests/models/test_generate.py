import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.generate import StopMatcher, next_token
from rnnlab.models.language_model import LanguageModel


def test_top_k_one_and_greedy_pick_the_argmax():
    logits = torch.tensor([0.1, 2.0, 1.9, -1.0])
    assert next_token(logits, greedy=True) == 1
    g = torch.Generator().manual_seed(0)
    assert {next_token(logits, top_k=1, generator=g) for _ in range(20)} == {1}


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    g = torch.Generator().manual_seed(0)
    picks = {next_token(probs.log(), top_p=0.75, generator=g) for _ in range(300)}
    assert picks == {0, 1}  # 0.5 < 0.75, 0.5 + 0.3 >= 0.75


def test_temperature_sharpens():
    logits = torch.tensor([1.0, 0.0])
    g = torch.Generator().manual_seed(0)
    cold = sum(next_token(logits, temperature=0.1, generator=g) == 0 for _ in range(200))
    hot = sum(next_token(logits, temperature=5.0, generator=g) == 0 for _ in range(200))
    assert cold > 195 and hot < 150


def test_stop_matcher_holds_back_partial_matches():
    m = StopMatcher(["END"])
    out = "".join(m.feed(c) for c in "abcEN")
    assert out == "abc" and not m.stopped
    assert m.feed("D") == "" and m.stopped
    m = StopMatcher(["END"])
    assert "".join(m.feed(c) for c in "xENy") + m.flush() == "xENy"


def test_sampling_is_reproducible_with_a_seed(trained_run):
    lm = LanguageModel.load(trained_run)
    a = lm.generate("def ", 80, seed=3, temperature=0.8)
    b = lm.generate("def ", 80, seed=3, temperature=0.8)
    c = lm.generate("def ", 80, seed=4, temperature=0.8)
    assert a == b and a != c
    assert len(a) == 80


def test_stop_string_ends_generation(trained_run):
    lm = LanguageModel.load(trained_run)
    full = lm.generate("def ", 100, greedy=True)
    stop = full[20:23]
    cut = lm.generate("def ", 100, greedy=True, stop=["never there", stop])
    assert cut == full[: full.index(stop)]


def test_bad_sampling_arguments(trained_run):
    lm = LanguageModel.load(trained_run)
    with pytest.raises(RnnlabError, match="top-p"):
        lm.generate(top_p=0)
    with pytest.raises(RnnlabError, match="temperature"):
        lm.generate(temperature=-1)
