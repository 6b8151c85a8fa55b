"""Mixing the network with an n-gram model of the training text and of the text read so far.

A recurrent network learns smooth statistics; a count model remembers exact strings (a name used
ten lines up, a kernel macro seen once in training). Mixing the two is the PPM/PAQ idea applied to a
language model, and it is honest: every probability below is a proper distribution over the
vocabulary, chosen before the token it scores is looked at.

**The n-gram model** is interpolated absolute discounting over token ids (characters or bytes),
with the run's training split (never its validation split, which is held-out text) plus every earlier
token of the scored text as its counts:

    p₋₁(x) = 1 / V
    pₙ(x)  = (max(c(ctx, x) − d, 0) + d · u(ctx) · pₙ₋₁(x)) / c(ctx)      when c(ctx) > 0
    pₙ(x)  = pₙ₋₁(x)                                                    when the context is new

where ctx is the n tokens before x, c counts earlier occurrences and u(ctx) is the number of
different tokens seen after ctx. It sums to one over x for any d ∈ (0, 1].

**Local experts** are the same estimator over the last `local_window` tokens of the scored text only,
starting from the order-1 distribution above instead of 1 / V. Counts over megabytes of training text
change slowly; a file's own names and habits (a variable used ten lines up, one play's characters)
dominate a window of a few thousand tokens, which is what PAQ's fast-adapting context models capture.

**Word experts** (given the tokenizer's word tokens, rnnlab.lm.words) are the same estimator again, over the
training split and the text read, with two contexts that are not fixed-length: the word read so far, then
that word with the whole word before it (whatever spaces or punctuation lie between), each starting from
the one below it (the first from order 1).

**The first stage** is a linear mixture p = Σₖ wₖ pₖ(x) of the network and several n-gram orders, with
softmax weights per context class. Two such mixers run side by side, one keyed by the longest order
whose context was seen before (and how often), one by the previous token; a third mixes their two
outputs (PAQ's two-layer mixing). Weights learn online by gradient descent on −ln p; they are updated
after each block of tokens from that block's losses only, so they never depend on a token they score.

**The second stage** (rnnlab.lm.bitmix) sees the same distributions and the first stage's mixture as
binary decisions and mixes them in the logistic domain, refined by adaptive probability maps. A match
model (rnnlab.lm.match: the token that followed the latest earlier occurrence of the last `match_len`
tokens, trusted by how long the match has held) is one more of its inputs.

`OnlineMixer` computes all of it one token at a time over the whole vocabulary; `rnnlab eval --mix` and
the range coder of `rnnlab compress --mix` both go through it, so a file's size is the evaluation's score.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.lm import match, words
from rnnlab.lm.bitmix import BitMixer, softmax

_PRIME = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier for the rolling context hash


@dataclass(frozen=True)
class NgramConfig:
    """Orders of the n-gram experts, their discount d, the first stage's step size, the block length, the second
    stage's mixer step and map rate (`second_stage` False: the first stage's mixture is the output), the
    orders and window (in tokens) of the local experts (none: `local_orders=()`), and the match model's minimum
    length (none: 0; it is an input of the second stage only)."""

    orders: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16)
    discount: float = 0.6
    lr: float = 0.6
    block: int = 64
    second_stage: bool = True
    bit_lr: float = 5e-4
    map_rate: float = 0.02
    local_orders: tuple[int, ...] = (1, 2, 3, 4, 6)
    local_window: int = 4096
    match_len: int = 4

    def validate(self) -> None:
        if not self.orders or min(self.orders) < 0 or len(set(self.orders)) != len(self.orders):
            raise RnnlabError(f"n-gram orders must be distinct and >= 0, got {self.orders}")
        if not 0 < self.discount <= 1:
            raise RnnlabError(f"--mix-discount must be in (0, 1], got {self.discount}")
        if not 0 <= self.lr < math.inf:
            raise RnnlabError(f"--mix-lr must be a finite number >= 0, got {self.lr}")
        if self.block < 1:
            raise RnnlabError(f"mixer block must be >= 1, got {self.block}")
        if not 0 <= self.bit_lr < math.inf:
            raise RnnlabError(f"the second stage's step must be a finite number >= 0, got {self.bit_lr}")
        if not 0 <= self.map_rate <= 1:
            raise RnnlabError(f"the second stage's map rate must be in [0, 1], got {self.map_rate}")
        if self.local_orders and (min(self.local_orders) < 1 or len(set(self.local_orders)) != len(self.local_orders)):
            raise RnnlabError(f"local n-gram orders must be distinct and >= 1, got {self.local_orders}")
        if not 0 <= self.match_len < 256:
            raise RnnlabError(f"the match model's minimum length must be from 0 (none) to 255, got {self.match_len}")
        if self.local_orders and not 1 <= self.local_window < 2**32:
            raise RnnlabError(f"the local experts' window must be from 1 to 2^32 - 1 tokens, got {self.local_window}")


def _learn(logits: np.ndarray, classes: np.ndarray, experts: np.ndarray, lr: float) -> np.ndarray:
    """One block of a mixer: the mixed probability p of each row's token under the weights of its class, then one
    gradient step on the block's summed −ln p, in place. Returns p."""
    w = softmax(logits[classes])
    p = (w * experts).sum(axis=1)
    grad = w - w * experts / p[:, None]
    np.add.at(logits, classes, -lr * grad)
    return p


def mixed_nats(
    distributions: Iterable[np.ndarray],
    history: np.ndarray,
    tokens: np.ndarray,
    vocab_size: int,
    config: NgramConfig,
    progress: Callable[[int], None] | None = None,
    word_tokens: np.ndarray | None = None,
) -> np.ndarray:
    """−ln p of tokens[1:] under the mixture of the network and the n-gram experts over `history` + the text read
    so far. `distributions` yields the network's distributions of tokens[1:] in order, as arrays [n, V] of any
    length (float64 rows summing to 1); `progress` is told how many tokens are done after each; `word_tokens`
    turns on the word experts. The one code path of `rnnlab eval --mix` and `rnnlab compress --mix`."""
    mixer = OnlineMixer(history, vocab_size, config, word_tokens)
    mixer.feed(int(tokens[0]))
    nats = np.empty(len(tokens) - 1)
    i = 0
    for chunk in distributions:
        for network in chunk:
            token = int(tokens[i + 1])
            nats[i] = -math.log(mixer.predict(network)[token])
            mixer.update(token)
            i += 1
        if progress is not None:
            progress(i)
    if i != len(nats):
        raise ValueError(f"{i} network distributions for {len(nats)} tokens")
    return nats


def discounted_chain(
    counts: np.ndarray, totals: np.ndarray, distinct: np.ndarray, d: float, start: float | np.ndarray
) -> np.ndarray:
    """Every order's distribution of the discounted estimator at once, from counts [orders, V]: row n is
    pₙ = aₙ + bₙ pₙ₋₁ with aₙ = max(c − d, 0) / c(ctx) and bₙ = d · u(ctx) / c(ctx) (aₙ = 0, bₙ = 1 where the
    context is new), and p₋₁ = `start` (a number or a distribution).
    Unrolled, pₙ = Σₖ (bₖ₊₁ ⋯ bₙ) aₖ + (b₀ ⋯ bₙ) p₋₁: one lower-triangular product instead of a loop over orders."""
    known = totals > 0
    scale = 1.0 / np.where(known, totals, 1)
    a = np.maximum(counts - d, 0) * scale[:, None]
    b = np.where(known, d * distinct * scale, 1.0)
    log_through = np.cumsum(np.log(np.maximum(b, 1e-300)))  # ln(b₀ ⋯ bₙ), in logs so no product underflows
    carry = np.tril(np.exp(np.minimum(log_through[:, None] - log_through[None, :], 0)))  # bₖ₊₁ ⋯ bₙ for k <= n
    return carry @ a + np.exp(log_through)[:, None] * start


def _order_class(longest: int, seen: int) -> int:
    """The first mixer's context class: the longest order whose context was seen before, and whether it was
    seen once, two or three times, or more."""
    return longest * 3 + (seen >= 2) + (seen >= 4)


def memory_id(history: np.ndarray, vocab_size: int) -> bytes:
    """16 bytes identifying an n-gram memory: a SHA-256 prefix of its vocabulary size and tokens."""
    h = hashlib.sha256(f"{vocab_size}:".encode())
    h.update(np.ascontiguousarray(history, dtype="<i4").tobytes())
    return h.digest()[:16]


_MASK64 = (1 << 64) - 1


class OnlineMixer:
    """Both stages of the mixture, one token at a time and over the whole vocabulary: `mixed_nats` and both sides
    of `rnnlab.lm.compress` feed it the same tokens and network probabilities and get the same distributions.

    The counts are over `history` + the tokens fed so far, keyed by a rolling hash of each position's last n
    tokens. The history's positions are sorted by context, level by level, so a context's counts are a
    `searchsorted` range (those of the longest ranges are kept); the tokens fed since the last merge are listed by
    context, and every `merge_every` tokens they are merged into the sorted arrays. The local experts count the
    tokens fed only, in a `LocalWindow` keyed by the same hashes. With `word_tokens` (a bool per token id,
    rnnlab.lm.words.word_mask) the two word contexts are two more levels of sorted keys. The first stage's weights
    are chosen by the context class and take one gradient step after each block of `config.block` tokens, on that
    block's tokens only; the second stage (`BitMixer`) learns the same way.
    """

    def __init__(
        self,
        history: np.ndarray,
        vocab_size: int,
        config: NgramConfig,
        word_tokens: np.ndarray | None = None,
        merge_every: int = 8192,
    ) -> None:
        config.validate()
        self.V, self.config, self.merge_every = vocab_size, config, merge_every
        self.levels = max((*config.orders, *config.local_orders)) + 1
        self.columns = np.array([n in config.orders for n in range(self.levels)])
        seq = np.asarray(history, dtype=np.int64)
        symbol = seq.astype(np.uint64) + np.uint64(1)
        context = np.zeros(len(seq), dtype=np.uint64)
        self.keys: list[np.ndarray] = []  # per level: the history's context hashes, sorted
        self.next: list[np.ndarray] = []  # per level: the token after each, in the same order
        for n in range(self.levels):
            if n:
                context[n:] = context[n:] * _PRIME + symbol[:-n]
            order = np.argsort(context, kind="stable")
            self.keys.append(context[order])
            self.next.append(seq[order].astype(np.min_scalar_type(max(vocab_size - 1, 0))))
        self.word_state = None  # the word contexts (rnnlab.lm.words) are levels after the orders' when used
        if word_tokens is not None:
            contexts, self.word_state = words.history_contexts(seq, word_tokens)
            for context in contexts:
                order = np.argsort(context, kind="stable")
                self.keys.append(context[order])
                self.next.append(seq[order].astype(self.next[0].dtype))
        all_levels = len(self.keys)
        self.kept: list[dict[int, np.ndarray]] = [{} for _ in range(all_levels)]  # counts of long ranges
        self.recent_keys = np.zeros((all_levels, merge_every), dtype=np.uint64)
        self.recent_next = np.zeros(merge_every, dtype=np.int64)
        self.recent = 0
        self.recent_by_level: list[dict[int, list[int]]] = [{} for _ in range(all_levels)]  # the same, by context
        self.next_hashes: list[int] | None = None  # the next position's context hashes, once computed
        self.tail = [int(t) + 1 for t in seq[-self.levels :]]  # the symbols of the last tokens, newest last
        self.window = LocalWindow(config.local_orders, config.local_window)
        K = 1 + len(config.orders) + len(config.local_orders) + all_levels - self.levels
        self.logits = [np.zeros(((self.levels) * 3, K)), np.zeros((vocab_size, K)), np.zeros((1, 2))]
        self.block: list[tuple[int, int, np.ndarray]] = []  # (class 1, class 2, experts at the token) per row
        self.match = match.MatchModel(seq, config.match_len) if config.match_len and config.second_stage else None
        self.bits = None
        if config.second_stage:
            classes = match.BUCKETS if self.match else 0
            self.bits = BitMixer(vocab_size, K + 1, config.bit_lr, config.map_rate, config.block, classes)

    def _hashes(self) -> list[int]:
        """The context hash of the next position at every level: h₀ = 0, hₙ = hₙ₋₁ · PRIME + (token n back + 1)."""
        hashes, h = [], 0
        for n in range(self.levels):
            if n and n <= len(self.tail):
                h = (h * int(_PRIME) + self.tail[-n]) & _MASK64
            hashes.append(h)
        return hashes + (self.word_state.contexts() if self.word_state else [])

    def _counts(self, hashes: list[int]) -> np.ndarray:
        """(levels, V) counts of each token after the next position's context, at every level (the orders', then
        the word contexts'). The orders' contexts nest, so the first order whose context was never seen ends their
        search: no longer context was seen either."""
        counts = np.zeros((len(hashes), self.V), dtype=np.int64)
        for n, h in enumerate(hashes[: self.levels]):
            if not self._count(n, h, counts[n]):
                break
        for n in range(self.levels, len(hashes)):
            self._count(n, hashes[n], counts[n])
        return counts

    def _count(self, n: int, h: int, out: np.ndarray) -> bool:
        """Write level n's counts after context h into `out`; False if the context was never seen."""
        kept = self.kept[n].get(h)
        if kept is not None:
            out[:] = kept
        else:
            keys = self.keys[n]
            lo, hi = int(np.searchsorted(keys, np.uint64(h))), int(np.searchsorted(keys, np.uint64(h), "right"))
            if hi > lo:
                out[:] = np.bincount(self.next[n][lo:hi], minlength=self.V)
                if hi - lo > 256:
                    self.kept[n][h] = out.copy()
        recent = self.recent_by_level[n].get(h)
        if recent is not None:
            out += np.bincount(recent, minlength=self.V)
            return True
        return bool(out.any())

    def predict(self, network: np.ndarray) -> np.ndarray:
        """The mixed distribution over the V tokens of the next position, given the network's (float64, summing
        to 1). Then `update` with the token that came there. Call `feed` with the first token instead: it has no
        prediction (the coder codes it with a uniform table). Non-finite network probabilities are an error (the
        second stage would otherwise read them as "no opinion" and hide a broken model)."""
        if not np.isfinite(network).all():
            raise RnnlabError(
                "the network gave non-finite probabilities: its weights are bad, or --dynamic-lr is too large"
            )
        self.next_hashes = self.next_hashes or self._hashes()
        counts = self._counts(self.next_hashes)
        d, totals, distinct = self.config.discount, counts.sum(axis=1), np.count_nonzero(counts, axis=1)
        L = self.levels
        chain = discounted_chain(counts[:L], totals[:L], distinct[:L], d, 1.0 / self.V)  # [levels, V]
        longest = int(np.flatnonzero(totals[:L])[-1]) if totals[:L].any() else 0
        seen, base = int(totals[longest]), chain[min(1, L - 1)]
        local = self.window.experts(self.next_hashes, base, d)
        word = discounted_chain(counts[L:], totals[L:], distinct[L:], d, base)
        self.experts = np.vstack([network[None], chain[self.columns], local, word])
        self.classes = (_order_class(longest, seen), self.tail[-1] - 1)
        first, second = (
            (softmax(self.logits[m][c])[:, None] * self.experts).sum(axis=0) for m, c in enumerate(self.classes)
        )
        w = softmax(self.logits[2][0])
        mixed = w[0] * first + w[1] * second
        if self.bits is None:
            return mixed
        expected, length = (self.match.expected, match.bucket(self.match.length)) if self.match else (None, 0)
        return self.bits.predict(np.vstack([self.experts, mixed]), self.tail[-1] - 1, expected, length)

    def update(self, token: int) -> None:
        """Take the token that came where `predict` was last called: the mixers learn from it (a block at a
        time), and it joins the counts."""
        self.block.append((*self.classes, self.experts[:, token]))
        if len(self.block) == self.config.block:
            self._learn_block()
        if self.bits is not None:
            self.bits.update(token)
        self.feed(token)

    def feed(self, token: int) -> None:
        """Take a token into the counts and the context, without a prediction to learn from."""
        hashes, self.next_hashes = self.next_hashes or self._hashes(), None
        self.recent_keys[:, self.recent] = hashes
        self.recent_next[self.recent] = token
        self.recent += 1
        self.window.add(hashes, token)
        if self.match is not None:
            self.match.feed(token)
        for by_context, h in zip(self.recent_by_level, hashes, strict=True):
            by_context.setdefault(h, []).append(token)
        if self.recent == self.merge_every:
            self._merge()
        self.tail = [*self.tail, token + 1][-self.levels :]
        if self.word_state is not None:
            self.word_state.feed(token)

    def _learn_block(self) -> None:
        """The first stage's step on the finished block: both mixers, then the one that mixes them."""
        c1, c2, e = (np.array(column) for column in zip(*self.block, strict=True))
        first = _learn(self.logits[0], c1, e, self.config.lr)
        second = _learn(self.logits[1], c2, e, self.config.lr)
        _learn(self.logits[2], np.zeros(len(e), dtype=np.int64), np.stack([first, second], axis=1), self.config.lr)
        self.block = []

    def _merge(self) -> None:
        """Move the recent tokens into the sorted arrays (and into the kept counts of their contexts)."""
        tokens = self.recent_next[: self.recent]
        for n in range(len(self.keys)):
            new = self.recent_keys[n, : self.recent]
            order = np.argsort(new, kind="stable")  # inserted in order, so that equal insertion points stay sorted
            at = np.searchsorted(self.keys[n], new[order])
            self.keys[n] = np.insert(self.keys[n], at, new[order])
            self.next[n] = np.insert(self.next[n], at, tokens[order])
            kept = self.kept[n]
            if kept:
                for h, t in zip(new.tolist(), tokens.tolist(), strict=True):
                    if h in kept:
                        kept[h][t] += 1
            self.recent_by_level[n].clear()
        self.recent = 0


class LocalWindow:
    """The counts of the local experts: for each of their orders, how often each token followed each context
    among the last `size` tokens fed (a token leaves the counts when it leaves the window)."""

    def __init__(self, orders: tuple[int, ...], size: int) -> None:
        self.size, self.top = size, max(orders, default=0)
        self.rows = np.array(sorted(orders), dtype=np.int64) - 1  # each order's row in the chain of orders 1..top
        self.counts: list[dict[int, dict[int, int]]] = [{} for _ in range(self.top + 1)]  # [order][context][token]
        self.fed: deque[tuple[list[int], int]] = deque()  # (context hashes, token) in the window, oldest first

    def experts(self, hashes: list[int], base: np.ndarray, discount: float) -> np.ndarray:
        """The local experts' distributions [orders, V] at the position whose context hashes are `hashes`, in order
        of their orders: the discounted estimator of the module docstring over the window, from `base` up. An order
        whose context is not in the window repeats the order below it (no longer context is in it either)."""
        counts = np.zeros((self.top, len(base)))
        for n in range(1, self.top + 1):
            seen = self.counts[n].get(hashes[n])
            if seen is None:
                break
            counts[n - 1, list(seen)] = list(seen.values())
        chain = discounted_chain(counts, counts.sum(axis=1), np.count_nonzero(counts, axis=1), discount, base)
        return chain[self.rows]

    def add(self, hashes: list[int], token: int) -> None:
        """Take a token (at the position whose context hashes are `hashes`) into the window."""
        if not self.top:
            return
        self._count(hashes, token, 1)
        self.fed.append((hashes, token))
        if len(self.fed) > self.size:
            self._count(*self.fed.popleft(), -1)

    def _count(self, hashes: list[int], token: int, step: int) -> None:
        for n in range(1, self.top + 1):
            seen = self.counts[n].setdefault(hashes[n], {})
            seen[token] = seen.get(token, 0) + step
            if not seen[token]:
                del seen[token]
                if not seen:
                    del self.counts[n][hashes[n]]
