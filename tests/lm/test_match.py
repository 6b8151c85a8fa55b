"""The match model: its pointer is the definition's (the latest earlier occurrence of the last min_len tokens,
followed while it keeps predicting right), and the mixer learns to trust it on repeated text."""

import math

import numpy as np
import pytest

from rnnlab.lm.match import BUCKETS, MatchModel, bucket
from rnnlab.lm.ngram import NgramConfig, mixed_nats


def _latest(seq: list[int], min_len: int) -> tuple[int, int]:
    """The definition: the latest j < len(seq) whose min_len tokens before it equal the last min_len tokens, and
    how many tokens back the two agree (at most 400); (0, 0) if there is none."""
    n = len(seq)
    for j in range(n - 1, min_len - 1, -1):
        if seq[j - min_len : j] == seq[n - min_len :]:
            k = 0
            while k < min(400, j) and seq[j - 1 - k] == seq[n - 1 - k]:
                k += 1
            return j, k
    return 0, 0


@pytest.mark.parametrize("min_len", [1, 2, 3, 5])
def test_the_pointer_follows_the_definition(min_len: int):
    rng = np.random.default_rng(min_len)
    for _ in range(30):
        V = int(rng.integers(2, 5))
        history = rng.integers(0, V, int(rng.integers(0, 40))).tolist()
        model, seq = MatchModel(np.array(history, dtype=np.int64), min_len), list(history)
        pointer, length = _latest(seq, min_len) if len(seq) >= min_len else (0, 0)
        for token in rng.integers(0, V, 80).tolist():
            assert model.length == length and model.expected == (seq[pointer] if length else None)
            if length and seq[pointer] == token:
                pointer, length = pointer + 1, length + 1
            else:
                length = 0
            seq.append(token)
            model.feed(token)
            if not length and len(seq) >= min_len:
                pointer, length = _latest(seq, min_len)


def test_length_classes_grow_with_the_match():
    assert bucket(0) == 0 and bucket(1) == 2
    classes = [bucket(n) for n in range(1, 5000)]
    assert classes == sorted(classes) and max(classes) == BUCKETS - 1


def test_the_mixer_learns_to_trust_a_long_match():
    """A random text read twice: the second reading repeats the first, so the match model knows every token.
    With it the second half costs a fraction of what it costs without it (the n-gram orders stop at 4)."""
    rng = np.random.default_rng(0)
    V = 16
    half = rng.integers(0, V, 1500)
    tokens = np.concatenate([half, half])
    network = np.full((len(tokens) - 1, V), 1 / V)
    config = NgramConfig(orders=(1, 2), local_orders=(), block=16)
    with_match, without = (
        mixed_nats([network], np.zeros(0, dtype=np.int64), tokens, V, NgramConfig(**{**vars(config), "match_len": m}))
        for m in (6, 0)
    )
    second = slice(len(half) + 200, None)
    assert with_match[: len(half) - 1].mean() == pytest.approx(without[: len(half) - 1].mean(), rel=0.02)
    assert with_match[second].mean() < 0.3 * without[second].mean()
    assert with_match[second].mean() / math.log(2) < 1.0  # bits per token, of log2(16) = 4 without knowledge
