"""The repeated-ones task for many-to-many tagging: a random bit string is read one bit at a time, and at
every step the tag says whether two 1s in a row have appeared so far. The answer at step t depends on the
whole prefix, so a tagger must carry one bit of memory across time."""

from __future__ import annotations

import random


def make_repeated_ones(
    n: int, length: int = 20, p_one: float = 0.3, seed: int = 0
) -> list[tuple[list[str], list[str]]]:
    """`n` (bits, tags) pairs of `length` steps; tags are "yes" from the first "1 1" on, "no" before it."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        bits = ["1" if rng.random() < p_one else "0" for _ in range(length)]
        seen, tags = False, []
        for t, bit in enumerate(bits):
            seen = seen or (t > 0 and bit == "1" and bits[t - 1] == "1")
            tags.append("yes" if seen else "no")
        out.append((bits, tags))
    return out
