"""Per-character surprisal: how many bits the model needed for each character, and what it expected."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rnnlab.errors import RnnlabError
from rnnlab.lm.model import LanguageModel


@dataclass
class CharSurprisal:
    """One character: its surprisal in bits (None for the first, which has no context) and the top guesses."""

    char: str
    bits: float | None
    top: list[tuple[str, float]]


@torch.no_grad()
def surprisal(lm: LanguageModel, text: str, top_k: int = 5, max_chars: int | None = None) -> list[CharSurprisal]:
    """-log2 p(token | everything before it) for each character of `text`, with the `top_k` predictions.

    Under a byte tokenizer a character's bits are the sum over its bytes; its predictions are those made
    for its first byte.
    """
    if max_chars is not None:
        text = text[:max_chars]
    if not text:
        raise RnnlabError("nothing to score: the input text is empty")
    ids = lm.tokenizer.encode(text)
    tokens = torch.as_tensor(ids, device=lm.device).unsqueeze(0)
    logits, _, _ = lm.module.eval()(tokens)
    logp = torch.log_softmax(logits[0].double(), dim=-1).cpu()
    k = min(top_k, logp.shape[-1])
    top_p, top_i = logp.exp().topk(k, dim=-1)
    decode, piece_of = lm.tokenizer.decoder(), lm.tokenizer.decode
    out: list[CharSurprisal] = []
    bits, first = 0.0, None
    for t, token in enumerate(ids.tolist()):
        if t > 0:
            bits -= float(logp[t - 1, token]) / math.log(2)
            first = t - 1 if first is None else first
        piece = decode(token)
        if not piece:
            continue
        guesses = (
            []
            if first is None
            else [(piece_of([int(i)]), float(p)) for p, i in zip(top_p[first], top_i[first], strict=True)]
        )
        out.append(CharSurprisal(piece[0], bits if t > 0 else None, guesses))
        out.extend(CharSurprisal(ch, 0.0, []) for ch in piece[1:])
        bits, first = 0.0, None
    return out
