"""Memorisation check: what fraction of generated n-grams occur verbatim in the training text.

n-grams are compared as token ids (characters for a char tokenizer) through 64-bit rolling hashes,
sorted once, so a corpus of millions of tokens is checked with a binary search and no Python sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.data.prepare import TokenStore
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import LanguageModel

_BASE = np.uint64(1_000_003)


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """Hash of every n-gram of `tokens` (len - n + 1 values; empty when the sequence is shorter than n)."""
    tokens = np.asarray(tokens, dtype=np.uint64)
    count = len(tokens) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _BASE + tokens[j : j + count] + np.uint64(1)
    return h


def fraction_seen(corpus_sorted: np.ndarray, queries: np.ndarray) -> float:
    """Fraction of `queries` hashes present in the sorted array `corpus_sorted` (nan when no queries)."""
    if len(queries) == 0 or len(corpus_sorted) == 0:
        return float("nan") if len(queries) == 0 else 0.0
    pos = np.minimum(np.searchsorted(corpus_sorted, queries), len(corpus_sorted) - 1)
    return float((corpus_sorted[pos] == queries).mean())


@dataclass
class Novelty:
    """For each n: fraction of generated n-grams found in train, and the same for validation text."""

    n: list[int]
    generated: list[float]
    validation: list[float] | None
    samples: int
    length: int


def novelty(
    run_dir: str | Path,
    samples: int = 5,
    length: int = 500,
    ns: tuple[int, ...] = (5, 10, 20),
    temperature: float = 1.0,
    seed: int = 0,
) -> Novelty:
    """Sample `samples` x `length` tokens from the model in `run_dir` and look their n-grams up in its training
    tokens. The validation split (when the run has one) gives the baseline: how often unseen real text
    repeats training n-grams."""
    if samples < 1 or length < 1:
        raise RnnlabError("--samples and --length must be >= 1")
    if not ns or min(ns) < 1:
        raise RnnlabError("--n must list positive n-gram sizes, e.g. 5,10,20")
    run_dir = Path(run_dir)
    lm = LanguageModel.load(run_dir)
    store = TokenStore.open(run_dir)
    train = np.asarray(store.train.tokens)
    generated = [
        lm.tokenizer.encode(lm.generate("", length, temperature=temperature, seed=seed + i)) for i in range(samples)
    ]
    val = np.asarray(store.val.tokens) if store.val is not None and len(store.val.tokens) else None
    seen_gen, seen_val = [], []
    for n in ns:
        corpus = np.sort(ngram_hashes(train, n))
        seen_gen.append(fraction_seen(corpus, np.concatenate([ngram_hashes(g, n) for g in generated])))
        if val is not None:
            seen_val.append(fraction_seen(corpus, ngram_hashes(val, n)))
    return Novelty(list(ns), seen_gen, seen_val if val is not None else None, samples, length)
