"""Language-model scores: nats per token, bits per character, perplexity; BLEU for generated captions."""

from __future__ import annotations

import json
import math
from collections import Counter
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

    def print(self, as_json: bool = False, **extra: float | int) -> None:
        """Print the scores as `rnnlab eval` does, one aligned line each, or as one JSON object (with `extra`)."""
        if as_json:
            print(json.dumps(self.to_dict() | extra, allow_nan=False))
            return
        print(f"bits per char   {self.bits_per_char:.4f}")
        print(f"nats per token  {self.nats_per_token:.4f}")
        print(f"perplexity      {self.perplexity:.3f}")
        print(f"tokens          {self.tokens}")
        print(f"chars           {self.chars}")


def corpus_bleu(hypotheses: list[list[str]], references: list[list[list[str]]], max_n: int = 4) -> list[float]:
    """Corpus BLEU-1..BLEU-`max_n` (Papineni et al. 2002): geometric mean of clipped n-gram precisions
    up to n, times the brevity penalty; each hypothesis has one or more reference token lists."""
    if len(hypotheses) != len(references):
        raise ValueError("one list of references per hypothesis")
    matched, total = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        hyp_len += len(hyp)
        ref_len += min((len(r) for r in refs), key=lambda n: (abs(n - len(hyp)), n))  # closest reference length
        for n in range(1, max_n + 1):
            grams = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
            best: Counter = Counter()
            for ref in refs:
                best |= Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
            matched[n - 1] += sum(min(c, best[g]) for g, c in grams.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    scores, log_sum = [], 0.0
    for n in range(max_n):
        if matched[n] == 0:
            scores += [0.0] * (max_n - n)
            break
        log_sum += math.log(matched[n] / total[n])
        scores.append(penalty * math.exp(log_sum / (n + 1)))
    return scores
