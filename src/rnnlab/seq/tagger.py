"""Many-to-many: one output per input step (tagging).

    tokens (N, T) -> embedding -> Recurrent (N, T, H) -> linear at every step -> tag logits (N, T, C)

The network reads left to right, so the tag at step t may depend on everything up to t. `Tagger` trains
on (tokens, tags) pairs (the built-in repeated-ones task or a user JSONL), predicts and saves/loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig, Vocab, fit, load_weights, pad, read_run, save_run
from rnnlab.tasks.repeated_ones import make_repeated_ones

KIND = "tag"
IGNORE = -100
Tagged = list[tuple[list[str], list[str]]]


class SequenceTagger(nn.Module):
    """(N, T) token ids -> (N, T, C) tag logits, one per step."""

    def __init__(self, config: SeqConfig, vocab_size: int, num_tags: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.embed, padding_idx=0)
        self.rnn = config.recurrent()
        self.head = nn.Linear(config.hidden, num_tags)

    def forward(self, tokens: Tensor) -> Tensor:
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out)


class Tagger:
    """A trained tagger with its token vocabulary and tag names."""

    def __init__(self, module: SequenceTagger, vocab: Vocab, tags: list[str], config: SeqConfig) -> None:
        self.module, self.vocab, self.tags, self.config = module, vocab, tags, config

    @classmethod
    def train(
        cls,
        examples: Tagged,
        config: SeqConfig,
        log: Callable[[int, float], None] | None = None,
    ) -> Tagger:
        """Fit on (tokens, tags) pairs of equal length; padding steps are not scored."""
        config.validate()
        _check(examples)
        tags = sorted({tag for _, ts in examples for tag in ts})
        vocab = Vocab(tok for toks, _ in examples for tok in toks)
        torch.manual_seed(config.seed)
        module = SequenceTagger(config, len(vocab), len(tags))
        ids = [vocab.encode(toks) for toks, _ in examples]
        targets = [[tags.index(t) for t in ts] for _, ts in examples]

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(ids), (config.batch_size,), generator=generator).tolist()
            tokens, _ = pad([ids[i] for i in pick])
            y, _ = pad([targets[i] for i in pick], IGNORE)
            logits = module(tokens)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)

        fit(module, batch_loss, config, log=log)
        return cls(module, vocab, tags, config)

    @torch.no_grad()
    def predict(self, sequences: list[list[str]]) -> list[list[str]]:
        """One tag per token of each sequence."""
        self.module.eval()
        tokens, lengths = pad([self.vocab.encode(s) for s in sequences])
        best = self.module(tokens).argmax(-1)
        return [[self.tags[i] for i in row[:n]] for row, n in zip(best.tolist(), lengths.tolist(), strict=True)]

    def accuracy(self, examples: Tagged) -> float:
        """Fraction of tokens tagged correctly."""
        predicted = self.predict([toks for toks, _ in examples])
        pairs = [(p, t) for ps, (_, ts) in zip(predicted, examples, strict=True) for p, t in zip(ps, ts, strict=True)]
        return sum(p == t for p, t in pairs) / len(pairs)

    def save(self, out: Path) -> Path:
        return save_run(out, KIND, self.config, self.module, {"vocab": self.vocab.tokens, "tags": self.tags})

    @classmethod
    def load(cls, run_dir: Path) -> Tagger:
        data, config = read_run(run_dir, KIND)
        vocab = Vocab(data["vocab"])
        module = SequenceTagger(config, len(vocab), len(data["tags"]))
        return cls(load_weights(module, run_dir), vocab, data["tags"], config)  # type: ignore[arg-type]


def majority_rate(examples: Tagged) -> float:
    """Accuracy of always answering the most common tag: the chance level a tagger must beat."""
    tags = [t for _, ts in examples for t in ts]
    return max(tags.count(t) for t in set(tags)) / len(tags)


def read_tagged(path: Path) -> Tagged:
    """JSONL lines {"tokens": [...], "tags": [...]}, one tag per token."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RnnlabError(f"cannot read {path}: {exc}") from None
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            examples.append(([str(t) for t in row["tokens"]], [str(t) for t in row["tags"]]))
        except (ValueError, KeyError, TypeError):
            raise RnnlabError(f'{path}:{number}: expected {{"tokens": [...], "tags": [...]}}') from None
    _check(examples)
    return examples


def _check(examples: Tagged) -> None:
    if not examples:
        raise RnnlabError("no tagged examples")
    for i, (toks, tags) in enumerate(examples, 1):
        if not toks or len(toks) != len(tags):
            raise RnnlabError(f"example {i}: needs one tag per token ({len(toks)} tokens, {len(tags)} tags)")


def demo(n: int, seed: int = 0) -> Tagged:
    """The built-in repeated-ones task (see rnnlab.tasks.repeated_ones)."""
    return make_repeated_ones(n, seed=seed)
