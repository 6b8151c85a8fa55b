"""The match model: the longest earlier occurrence of the current context predicts the token that followed it.

N-gram counts stop at a fixed order; a file that repeats a long passage (a licence header, a copied
function, a refrain) is predictable far beyond it, and more so the longer the repeat has held. PAQ's
match model (Mahoney, lpaq1) keeps a pointer into the text read so far: once the last `min_len` tokens
occurred before, the token that followed them is the prediction, and every correct prediction extends
the match by one. Its confidence is learned per match length by the second stage (rnnlab.lm.bitmix),
which also selects one of its weight sets by the same length.

The text searched is the n-gram memory (the run's training split) followed by every token fed so far,
so both sides of the range coder see the same matches.
"""

from __future__ import annotations

import numpy as np

_PRIME = 0x9E3779B97F4A7C15  # odd 64-bit multiplier of the rolling hash
_MASK64 = (1 << 64) - 1
_VERIFY = 400  # a new match's length is counted back at most this far
BUCKETS = 12  # match-length classes: 0 = no match, then by powers of two


def bucket(length: int) -> int:
    """The class of a match of `length` tokens: 0 for none, then 1 + its bit length, capped at BUCKETS - 1."""
    return min(length.bit_length() + 1, BUCKETS - 1) if length else 0


class MatchModel:
    """The longest-match pointer over `history` + the tokens fed: `expected` is the token predicted for the next
    position and `length` how many tokens the match has held (0 with no match)."""

    def __init__(self, history: np.ndarray, min_len: int) -> None:
        self.min_len = min_len
        seq = np.asarray(history, dtype=np.int64)
        self.seq = np.zeros(max(2 * len(seq), 1 << 16), dtype=np.int64)
        self.seq[: len(seq)] = seq
        self.n = len(seq)
        # Position i >= min_len is keyed by the rolling hash of the min_len tokens before it, oldest first.
        symbols = seq.astype(np.uint64) + np.uint64(1)
        keys = np.zeros(max(len(seq) - min_len, 0), dtype=np.uint64)
        for k in range(min_len, 0, -1) if len(keys) else ():
            keys = keys * np.uint64(_PRIME) + symbols[min_len - k : len(seq) - k]
        order = np.argsort(keys, kind="stable")  # equal keys stay in text order: the last is the latest
        self.keys, self.positions = keys[order], np.arange(min_len, len(seq))[order]
        self.recent: dict[int, int] = {}  # hash -> the latest position after it among the tokens fed
        self.top = pow(_PRIME, min_len - 1, 1 << 64)  # the oldest token's factor in the rolling hash
        self.hash = 0
        for t in seq[-min_len:].tolist():
            self.hash = (self.hash * _PRIME + t + 1) & _MASK64
        self.pointer, self.length = 0, 0
        if len(seq) >= min_len:
            self._find()
            self.recent[self.hash] = self.n

    @property
    def expected(self) -> int | None:
        """The predicted next token, or None without a match."""
        return int(self.seq[self.pointer]) if self.length else None

    def feed(self, token: int) -> None:
        """Take the next token: the match grows if it predicted it, else a new one is looked for."""
        if self.length and self.seq[self.pointer] == token:
            self.length, self.pointer = self.length + 1, self.pointer + 1
        else:
            self.length = 0
        if self.n == len(self.seq):
            self.seq = np.concatenate([self.seq, np.zeros_like(self.seq)])
        if self.n >= self.min_len:
            old = int(self.seq[self.n - self.min_len]) + 1
            self.hash = (self.hash - old * self.top) & _MASK64
        self.hash = (self.hash * _PRIME + token + 1) & _MASK64
        self.seq[self.n] = token
        self.n += 1
        if self.n >= self.min_len:
            if not self.length:
                self._find()
            self.recent[self.hash] = self.n

    def _find(self) -> None:
        """Look for the latest earlier position after the last min_len tokens; keep it if they really match."""
        at = self.recent.get(self.hash)
        if at is None:
            i = int(np.searchsorted(self.keys, np.uint64(self.hash), "right"))
            if not i or self.keys[i - 1] != self.hash:
                return
            at = int(self.positions[i - 1])
        span = min(_VERIFY, at)
        back = self.seq[at - span : at][::-1] != self.seq[self.n - span : self.n][::-1]
        length = int(np.argmax(back)) if back.any() else span
        if length >= self.min_len:
            self.pointer, self.length = at, length
