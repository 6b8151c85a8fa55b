"""Attention over an encoder's outputs: a decoder state (the query) scores every source position, a softmax
over the real positions turns the scores into weights, and the weighted sum of the encoder outputs is the
context the decoder reads at that step.

    additive (Bahdanau et al. 2015):   score(q, h_j) = vᵀ tanh(W_q q + W_h h_j + b)
    dot      (Luong et al. 2015):      score(q, h_j) = qᵀ W_a h_j   (his "general" score: a learnt W_a lets the
                                       decoder's and the encoder's spaces differ; W_a = I is the plain dot product)

The keys (W_h h_j, or W_a h_j) are projected once per source, not once per decoder step. Padding is masked
with -inf before the softmax, so its weights are exactly 0 and each row of weights sums to 1 over the real
positions; padding a source with more pad positions therefore changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from rnnlab.errors import RnnlabError

KINDS = ("none", "additive", "dot")


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax of (N, T, S) scores over S, with exactly 0 where the (N, S) `mask` is False."""
    return scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)


class Attention(nn.Module):
    """One score function (`additive` or `dot`) between queries of `query_size` and keys of `key_size`."""

    def __init__(self, kind: str, query_size: int, key_size: int) -> None:
        super().__init__()
        if kind not in KINDS[1:]:
            raise RnnlabError(f"unknown attention {kind!r}; choose one of: {', '.join(KINDS)}")
        self.kind = kind
        if kind == "additive":
            self.query = nn.Linear(query_size, query_size, bias=False)
            self.key = nn.Linear(key_size, query_size)
            self.v = nn.Linear(query_size, 1, bias=False)
        else:
            self.key = nn.Linear(key_size, query_size, bias=False)

    def keys(self, values: Tensor) -> Tensor:
        """(N, S, key_size) encoder outputs -> (N, S, query_size) projected keys, computed once per source."""
        return self.key(values)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Queries (N, T, Q) over projected `keys` (N, S, Q), `values` (N, S, K) and `mask` (N, S), True at real
        positions -> (context (N, T, K), weights (N, T, S))."""
        if self.kind == "additive":
            scores = self.v(torch.tanh(self.query(query)[:, :, None] + keys[:, None])).squeeze(-1)
        else:
            scores = query @ keys.transpose(1, 2)
        weights = masked_softmax(scores, mask)
        return weights @ values, weights


def plot_attention(weights: Tensor, source: list[str], output: list[str], path: Path, title: str = "") -> Path:
    """Save the (len(output), len(source)) attention `weights` as a PNG heat map: source tokens along x, output
    tokens down y, darker where the decoder looked while writing that output token."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = weights.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.38 * max(cols, 4), 1.0 + 0.34 * max(rows, 4)))
    ax.imshow(weights.detach().cpu().numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), [_label(t) for t in source], rotation=90, fontsize=8)
    ax.set_yticks(range(rows), [_label(t) for t in output], fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _label(token: str) -> str:
    """A token as a readable tick label (spaces made visible)."""
    return token.replace(" ", "␣") or "''"
