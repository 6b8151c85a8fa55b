"""Word contexts for the n-gram mixer: the word being read, alone and after the word before it.

A fixed-order context counts characters; text has words. PAQ's word model predicts the next token from
the letters of the current word so far, and from those together with the previous whole word, whatever
spaces or punctuation lie between ("thou art", "thou, art"). Code has the same structure with
identifiers. A token is a word token when its text is letters, digits or "_" (`word_mask`); a run of word
tokens is a word. For position i, with `cur` the rolling hash of the run ending just before i (0 when
token i − 1 is not a word token) and `prev` that of the last complete run before it (0 if none), the two
contexts are hash(cur) and hash(cur, prev); rnnlab.lm.ngram counts what followed each, as it does for
its orders.

`history_contexts` computes every position's contexts of a whole history at once; `WordState` carries
the same state token by token, so both sides of the coder agree with the sorted history.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

_PRIME = 0x9E3779B97F4A7C15  # odd 64-bit multiplier, so it has an inverse modulo 2^64
_INVERSE = pow(_PRIME, -1, 1 << 64)
_MASK64 = (1 << 64) - 1
_SALTS = (0x243F6A8885A308D3, 0x13198A2E03707344)  # keep the two contexts apart from each other


class _Decodes(Protocol):
    vocab_size: int

    def decode(self, ids: list[int]) -> str: ...


def word_mask(tokenizer: _Decodes) -> np.ndarray:
    """Which token ids are word tokens: text of letters, digits or '_' only (bool, one per id)."""
    pieces = (tokenizer.decode([i]) for i in range(tokenizer.vocab_size))
    return np.array([bool(p) and all(c.isalnum() or c == "_" for c in p) for p in pieces])


def _scramble(x: Any) -> Any:
    """splitmix64's finaliser, on a Python int or a uint64 array alike: a bijection of 64-bit values that mixes
    every bit into every other, so that combining two rolling hashes cannot collide by their shared arithmetic (a
    word and its one-token extension)."""
    x = x ^ (x >> 30)
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x = x ^ (x >> 27)
    x = (x * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _contexts(cur: Any, prev: Any) -> list[Any]:
    """The two context hashes of positions whose word state is (cur, prev) (Python ints or uint64 arrays): the
    word so far, and the word so far with the word before it."""
    alone = _scramble((cur + _SALTS[0]) & _MASK64)
    return [alone, _scramble((_scramble((cur + _SALTS[1]) & _MASK64) + prev) & _MASK64)]


def history_contexts(seq: np.ndarray, mask: np.ndarray) -> tuple[list[np.ndarray], WordState]:
    """Both contexts of every position of `seq` (arrays of len(seq), uint64), and the state after its last token.

    The hash of the run ending at j is Σₖ sₖ Pʲ⁻ᵏ over the run's tokens k (sₖ = token + 1), so with
    Aⱼ = Σ_{k ≤ j} sₖ P⁻ᵏ (P⁻¹ exists modulo 2⁶⁴ because P is odd) it is Pʲ (Aⱼ − A_{start − 1}): cumulative
    sums instead of a loop, all modulo 2⁶⁴."""
    n = len(seq)
    if not n:
        return [np.zeros(0, dtype=np.uint64) for _ in _SALTS], WordState(mask)
    word = mask[seq]
    index = np.arange(n)
    # Integer arrays wrap modulo 2^64 silently, which is the arithmetic wanted here.
    power, inverse = np.full(n, _PRIME, dtype=np.uint64), np.full(n, _INVERSE, dtype=np.uint64)
    power[0] = inverse[0] = 1
    power, inverse = np.cumprod(power), np.cumprod(inverse)  # Pʲ and P⁻ʲ
    symbols = (seq.astype(np.uint64) + np.uint64(1)) * word
    total = np.cumsum(symbols * inverse, dtype=np.uint64)
    starts = word & ~np.concatenate([[False], word[:-1]])
    start = np.maximum.accumulate(np.where(starts, index, 0))
    before = np.where(start > 0, total[np.maximum(start - 1, 0)], np.uint64(0))
    run = np.where(word, power * (total - before), np.uint64(0))  # hash of the run ending at j
    cur = np.concatenate([np.zeros(1, np.uint64), run])  # state before position i, i = 0..n
    ends = np.flatnonzero(word[:-1] & ~word[1:])  # complete runs: a non-word token came after them
    last = np.searchsorted(ends, np.arange(n + 1) - 2, "right")  # complete runs ending at <= i - 2 (0: none)
    prev = np.concatenate([np.zeros(1, np.uint64), run[ends]])[last]
    state = WordState(mask, int(cur[n]), int(prev[n]), bool(word[-1]))
    return _contexts(cur[:n], prev[:n]), state


class WordState:
    """The word state after the tokens fed so far: `contexts()` are the next position's two context hashes."""

    def __init__(self, mask: np.ndarray, cur: int = 0, prev: int = 0, in_word: bool = False) -> None:
        self.mask, self.cur, self.prev, self.in_word = mask, cur, prev, in_word

    def contexts(self) -> list[int]:
        return _contexts(self.cur, self.prev)

    def feed(self, token: int) -> None:
        if self.mask[token]:
            self.cur = ((self.cur * _PRIME if self.in_word else 0) + token + 1) & _MASK64
            self.in_word = True
        elif self.in_word:
            self.prev, self.cur, self.in_word = self.cur, 0, False
