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

Only the probability of the token that actually came is needed to score it, and all three counts
for that token are "how many earlier positions share this key", so they are computed for every
position at once with a stable sort per order (no Python loop over the text).

**The mixer** is a linear mixture p = Σₖ wₖ pₖ(x) of the network and several n-gram orders, with
softmax weights per context class. Two such mixers run side by side, one keyed by the longest order
whose context was seen before (and how often), one by the previous token; a third mixes their two
outputs (PAQ's two-layer mixing). Weights learn online by gradient descent on −ln p; they are updated
after each block of tokens from that block's losses only, so they never depend on a token they score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rnnlab.errors import RnnlabError

_PRIME = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier for the rolling context hash
_SALT = np.uint64(0xC2B2AE3D27D4EB4F)  # mixes the next token into the context hash


@dataclass(frozen=True)
class NgramConfig:
    """Orders of the n-gram experts, their discount d, and the mixer's step size and block length."""

    orders: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16)
    discount: float = 0.6
    lr: float = 0.6
    block: int = 64

    def validate(self) -> None:
        if not self.orders or min(self.orders) < 0 or len(set(self.orders)) != len(self.orders):
            raise RnnlabError(f"n-gram orders must be distinct and >= 0, got {self.orders}")
        if not 0 < self.discount <= 1:
            raise RnnlabError(f"--mix-discount must be in (0, 1], got {self.discount}")
        if not 0 <= self.lr < math.inf:
            raise RnnlabError(f"--mix-lr must be a finite number >= 0, got {self.lr}")
        if self.block < 1:
            raise RnnlabError(f"mixer block must be >= 1, got {self.block}")


def _prior_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each i, how many j < i have keys[j] == keys[i]; plus the stable sort order and, for each
    sorted slot, where its group of equal keys starts (for further per-group prefix sums)."""
    n = len(keys)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    counts = np.empty(n, dtype=np.int64)
    counts[order] = np.arange(n) - group_start
    return counts, order, group_start


def ngram_probs(
    history: np.ndarray, tokens: np.ndarray, vocab_size: int, config: NgramConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Probability of each token of `tokens` under each order in `config.orders`, given `history`
    followed by the tokens before it: an array [len(tokens), len(orders)]. Also returns, per token,
    the longest order ≤ max(orders) whose context occurred before and that context's count, which
    the mixer uses to pick its weights."""
    config.validate()
    seq = np.concatenate([np.asarray(history, dtype=np.uint64), np.asarray(tokens, dtype=np.uint64)])
    first = len(history)
    symbol = seq + np.uint64(1)
    context = np.zeros(len(seq), dtype=np.uint64)  # hash of the n tokens before each position
    p = np.full(len(tokens), 1.0 / vocab_size)
    columns = {}
    longest = np.zeros(len(tokens), dtype=np.int64)
    seen = np.zeros(len(tokens), dtype=np.int64)
    for n in range(max(config.orders) + 1):
        if n:
            context[n:] = context[n:] * _PRIME + symbol[:-n]
        c_full = _prior_counts((context ^ (symbol * _SALT)) * _PRIME + symbol)[0]
        c_ctx, order, group_start = _prior_counts(context)
        # u(ctx): earlier positions with this context whose (context, token) pair was new then.
        new_pair = (c_full == 0)[order].astype(np.int64)
        before = np.cumsum(new_pair) - new_pair
        distinct = np.empty(len(seq), dtype=np.int64)
        distinct[order] = before - before[group_start]
        c_full, c_ctx, distinct = c_full[first:], c_ctx[first:], distinct[first:]
        known = c_ctx > 0
        d = config.discount
        safe = np.maximum(c_ctx, 1)
        p = np.where(known, (np.maximum(c_full - d, 0) + d * distinct * p) / safe, p)
        longest = np.where(known, n, longest)
        seen = np.where(known, c_ctx, seen)
        if n in config.orders:
            columns[n] = p
    return np.stack([columns[n] for n in config.orders], axis=1), np.stack([longest, seen], axis=1)


def mix(experts: np.ndarray, classes: np.ndarray, n_classes: int, config: NgramConfig) -> np.ndarray:
    """Online softmax-weighted mixture of the expert probabilities [P, K]; returns p for each token.

    Block by block: score the block with the current weights, then take one gradient step on the
    block's summed −ln p (d/da_k of −ln Σ w p = w_k − w_k p_k / p).
    """
    P, K = experts.shape
    logits = np.zeros((n_classes, K))
    out = np.empty(P)
    for start in range(0, P, config.block):
        e, c = experts[start : start + config.block], classes[start : start + config.block]
        a = logits[c]
        w = np.exp(a - a.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        p = (w * e).sum(axis=1)
        out[start : start + config.block] = p
        grad = w - w * e / p[:, None]
        np.add.at(logits, c, -config.lr * grad)
    return out


def mixed_nats(
    network_nats: np.ndarray, history: np.ndarray, tokens: np.ndarray, vocab_size: int, config: NgramConfig
) -> np.ndarray:
    """−ln p of tokens[1:] under the mixture of the network (its per-token nats for tokens[1:]) and
    the n-gram experts over `history` + the text read so far."""
    experts, longest_seen = ngram_probs(history, tokens, vocab_size, config)
    network = np.exp(-np.asarray(network_nats, dtype=np.float64))[:, None]
    experts = np.concatenate([network, experts[1:]], axis=1)
    longest, seen = longest_seen[1:, 0], longest_seen[1:, 1]
    by_order = mix(experts, longest * 3 + np.digitize(seen, [2, 4]), (max(config.orders) + 1) * 3, config)
    by_token = mix(experts, np.asarray(tokens[:-1], dtype=np.int64), vocab_size, config)
    both = np.stack([by_order, by_token], axis=1)
    return -np.log(mix(both, np.zeros(len(both), dtype=np.int64), 1, config))
