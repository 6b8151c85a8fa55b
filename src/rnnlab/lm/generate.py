"""Choosing the next token: temperature, top-k, top-p (nucleus) and greedy; stop strings.

The choice is made in NumPy on the float32 logits a stepper returns (models/stepper.py): a handful of array
operations per token, with none of PyTorch's per-call overhead, so that it stays small beside the step itself.
"""

from __future__ import annotations

import re

import numpy as np


def sampling_rng(seed: int | None) -> np.random.Generator:
    """The random source of one sample: seeded for reproducible text (the same seed, the same draws), else fresh."""
    return np.random.default_rng(seed)


def next_token(
    logits: np.ndarray,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    rng: np.random.Generator | None = None,
) -> int:
    """Pick one id from logits (V,). Filters apply in the usual order: temperature, top-k, top-p; the draw
    inverts the cumulative distribution at one uniform number from `rng` (a fresh generator when None)."""
    if greedy or temperature == 0:
        return int(np.asarray(logits).argmax())
    x = np.array(logits, dtype=np.float64)  # array methods below: NumPy's functions cost more per call
    x -= x.max()  # before the division, so that a tiny temperature cannot overflow: the largest stays 0
    x /= temperature
    V = x.size
    if 0 < top_k < V:
        kth = np.partition(x, V - top_k)[V - top_k]
        x[x < kth] = -np.inf
    p = np.exp(x, out=x)  # unnormalised probabilities, the largest 1
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        ranked = p[order] / p.sum()
        # Keep the smallest prefix whose mass reaches top_p: drop a token if the mass *before* it does.
        p[order[np.cumsum(ranked) - ranked >= top_p]] = 0.0
    cdf = p.cumsum(out=p)
    u = (rng if rng is not None else np.random.default_rng()).random() * cdf[-1]
    return min(int(cdf.searchsorted(u, side="right")), V - 1)


class StopMatcher:
    """Streams text but holds back any tail that could still become a stop string.

    `feed(piece)` returns the text safe to emit now; `stopped` is True once a stop string has appeared
    (the stop string itself is not emitted).
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.buffer = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if not self.stops:
            return piece
        self.buffer += piece
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self.buffer = self.buffer[: min(hits)], ""
            return out
        keep = max((_overlap(self.buffer, s) for s in self.stops), default=0)
        out, self.buffer = self.buffer[: len(self.buffer) - keep], self.buffer[len(self.buffer) - keep :]
        return out

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `stop`."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-n:]):
            return n
    return 0


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def decode_escapes(text: str) -> str:
    r"""`\n`, `\t` and `\\` as typed on a command line -> newline, tab, backslash; any other backslash stays
    as it is (`\x` is a backslash and an x), so the shell's literal `--stop "\n\n"` means two newlines."""
    return re.sub(r"\\([nt\\])", lambda m: _ESCAPES[m.group(1)], text)
