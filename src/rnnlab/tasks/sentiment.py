"""A synthetic sentiment task for many-to-one classification: short reviews whose label needs the whole
sentence, because "not" flips the word after it ("the plot was not good" is negative)."""

from __future__ import annotations

import random

POSITIVE = ("good", "great", "excellent", "wonderful", "fun", "lovely", "superb")
NEGATIVE = ("bad", "awful", "boring", "terrible", "dull", "poor", "weak")
FILLER = ("the", "movie", "film", "plot", "acting", "was", "is", "really", "quite", "and", "story", "music", "very")
LABELS = ("negative", "positive")


def make_sentiment(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` (text, label) pairs: filler words with an odd number (1 or 3) of opinion words, each possibly
    negated; the label is the sign of the summed polarity, so the classes are balanced and never tied."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        total = 0
        for _ in range(rng.choice((1, 3))):
            polarity = rng.choice((-1, 1))
            opinion = [rng.choice(POSITIVE if polarity > 0 else NEGATIVE)]
            if rng.random() < 0.4:
                opinion.insert(0, "not")
                polarity = -polarity
            total += polarity
            at = rng.choice([i for i in range(len(words) + 1) if i == 0 or words[i - 1] != "not"])
            words[at:at] = opinion
        out.append((" ".join(words), LABELS[total > 0]))
    return out
