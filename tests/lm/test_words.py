"""Word contexts: the whole-history computation equals the token-by-token state, the contexts mean what they
say (the word so far, and the word before it whatever lies between), and the mixer's word experts equal their
definition."""

import re

import numpy as np
import pytest

from rnnlab.data.tokenizers import CharTokenizer
from rnnlab.lm import words
from rnnlab.lm.ngram import NgramConfig, OnlineMixer

D = 0.6


def test_the_mask_marks_letters_digits_and_underscores():
    tokenizer = CharTokenizer(" ,.aZ9_\n")
    mask = words.word_mask(tokenizer)
    assert [tokenizer.decode([i]) for i in np.flatnonzero(mask)] == ["9", "Z", "_", "a"]


@pytest.mark.parametrize("seed", range(4))
def test_the_history_contexts_equal_the_state_fed_token_by_token(seed: int):
    rng = np.random.default_rng(seed)
    V = 5
    mask = np.array([True, True, False, True, False])
    seq = rng.integers(0, V, 300)
    contexts, final = words.history_contexts(seq, mask)
    state = words.WordState(mask)
    for i, token in enumerate(seq.tolist()):
        assert state.contexts() == [int(c[i]) for c in contexts]
        state.feed(token)
    assert (state.cur, state.prev, state.in_word) == (final.cur, final.prev, final.in_word)


def test_contexts_are_the_word_so_far_and_the_word_before_it():
    tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz ,.!")
    text = "thou art. thou, art! thee art"
    ids = tokenizer.encode(text)
    (alone, after), _ = words.history_contexts(ids, words.word_mask(tokenizer))
    first, second, third = (m.start() + 2 for m in re.finditer("art", text))  # each "art" with "ar" read
    assert text[first - 2 : first] == text[second - 2 : second] == text[third - 2 : third] == "ar"
    assert alone[first] == alone[second] == alone[third]
    assert after[first] == after[second]  # after "thou", whether "thou " or "thou, "
    assert after[third] != after[first]  # after "thee"
    assert alone[first] != alone[first - 1]


def brute_force_word_expert(text: str, mask_chars: str, i: int, level: int, below: np.ndarray, chars: list[str]):
    """The word expert at position i from its definition: followers of every earlier position with the same word
    so far (and, at level 1, the same previous word), discounted from the distribution `below`."""

    def state(j: int) -> tuple[str, str]:
        k = j
        while k > 0 and text[k - 1] in mask_chars:
            k -= 1
        cur, rest = text[k:j], text[:k]
        previous = [w for w in "".join(c if c in mask_chars else " " for c in rest).split(" ") if w]
        complete = previous if not rest or rest[-1] not in mask_chars else previous[:-1]
        return cur, (complete[-1] if complete and level else "")

    followers = [text[j] for j in range(i) if state(j) == state(i)]
    if not followers:
        return below
    counts = np.array([followers.count(c) for c in chars], dtype=float)
    return (np.maximum(counts - D, 0) + D * np.count_nonzero(counts) * below) / len(followers)


def test_the_mixers_word_experts_equal_their_definition():
    chars = "ab ,"
    tokenizer = CharTokenizer(chars)
    rng = np.random.default_rng(3)
    text = "".join(rng.choice(list("aab b,"), 260))
    ids = tokenizer.encode(text)
    config = NgramConfig(orders=(0, 1), discount=D, local_orders=(), match_len=0, second_stage=False)
    history = 180
    mixer = OnlineMixer(ids[:history], 4, config, words.word_mask(tokenizer), merge_every=16)
    mixer.feed(int(ids[history]))
    for i in range(history + 1, len(ids)):
        mixer.predict(np.full(4, 0.25))
        expected = mixer.experts[2]  # order 1: where the word experts start
        for level in (0, 1):  # the word so far, then that and the word before: each from the one below
            expected = brute_force_word_expert(text, "ab", i, level, expected, tokenizer.chars)
            np.testing.assert_allclose(mixer.experts[3 + level], expected, rtol=0, atol=1e-12)
        mixer.update(int(ids[i]))
