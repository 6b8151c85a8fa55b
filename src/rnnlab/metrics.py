"""Language-model scores: nats per token, bits per character, perplexity."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Score:
    """Exact scores of a text: every scored token counted once (the first token has no context)."""

    nats_per_token: float
    bits_per_char: float
    perplexity: float  # per token: exp(nats_per_token)
    tokens: int  # tokens scored
    chars: int  # characters of text those tokens cover

    @classmethod
    def from_totals(cls, total_nats: float, tokens: int, chars: int) -> Score:
        """Build scores from the summed negative log-likelihood in nats."""
        nats = total_nats / max(tokens, 1)
        return cls(
            nats_per_token=nats,
            bits_per_char=total_nats / LN2 / max(chars, 1),
            perplexity=math.exp(min(nats, 700.0)),
            tokens=tokens,
            chars=chars,
        )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)
