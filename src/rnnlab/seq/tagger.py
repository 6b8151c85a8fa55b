"""Many-to-many: one output per input step (tagging).

    tokens (N, T) -> embedding, or frames (N, T, F) -> standardise, linear
    -> Recurrent (N, T, H) -> linear at every step -> tag logits (N, T, C)

The network reads left to right, so the tag at step t may depend on everything up to t (and never on the
padding after a sequence's end). `Tagger` trains on (tokens, tags) pairs (the built-in repeated-ones task
or a user JSONL) or on vector sequences with one tag per frame (the built-in video task or a user
NPZ/CSV, see rnnlab.seq.vectors), predicts and saves/loads (config.json's `inputs` says which it reads).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig, Vocab, fit, load_weights, pad, read_run, save_run
from rnnlab.seq.vectors import FeatureInput, VectorSequences, inputs_record, pad_vectors, recorded_features
from rnnlab.tasks.repeated_ones import make_repeated_ones

KIND = "tag"
IGNORE = -100
BATCH = 256  # sequences per forward pass when predicting
Tagged = list[tuple[list[str], list[str]]]
Examples = Tagged | VectorSequences  # (tokens, tags) pairs, or vector sequences with one tag per frame
Inputs = Sequence[list[str]] | Sequence[np.ndarray] | VectorSequences  # token lists, or (T, F) frame arrays


class SequenceTagger(nn.Module):
    """(N, T) token ids, or (N, T, F) frames when `features` = F -> (N, T, C) tag logits, one per step."""

    def __init__(self, config: SeqConfig, vocab_size: int, num_tags: int, features: int = 0) -> None:
        super().__init__()
        if features:
            self.embed: nn.Module = FeatureInput(features, config.embed)
        else:
            self.embed = nn.Embedding(vocab_size, config.embed, padding_idx=0)
        self.rnn = config.recurrent()
        self.head = nn.Linear(config.hidden, num_tags)

    def forward(self, tokens: Tensor) -> Tensor:
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out)


class Tagger:
    """A trained tagger with its tag names and what it reads: `vocab` for tokens, None for vector sequences
    (then `features` is F)."""

    def __init__(self, module: SequenceTagger, vocab: Vocab | None, tags: list[str], config: SeqConfig) -> None:
        self.module, self.vocab, self.tags, self.config = module, vocab, tags, config

    @property
    def features(self) -> int:
        """F, the features per frame, for a tagger of vector sequences; 0 for one of tokens."""
        embed = self.module.embed
        return embed.project.in_features if isinstance(embed, FeatureInput) else 0

    @classmethod
    def train(cls, examples: Examples, config: SeqConfig, log: Callable[[int, float], None] | None = None) -> Tagger:
        """Fit on (tokens, tags) pairs of equal length, or on vector sequences with one tag per frame; padding
        steps are not scored."""
        config.validate()
        given = _tags(examples)
        tags = sorted({tag for ts in given for tag in ts})
        torch.manual_seed(config.seed)
        if isinstance(examples, VectorSequences):
            module = SequenceTagger(config, 0, len(tags), examples.num_features)
            module.embed.fit(examples.features)  # type: ignore[operator]
            model = cls(module, None, tags, config)
            inputs: list = examples.features
        else:
            vocab = Vocab(tok for toks, _ in examples for tok in toks)
            model = cls(SequenceTagger(config, len(vocab), len(tags)), vocab, tags, config)
            inputs = model._encode([toks for toks, _ in examples])
        index = {tag: i for i, tag in enumerate(tags)}
        targets = [[index[t] for t in ts] for ts in given]

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(inputs), (config.batch_size,), generator=generator).tolist()
            x, _ = model._pad([inputs[i] for i in pick])
            y, _ = pad([targets[i] for i in pick], IGNORE)
            logits = model.module(x)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)

        fit(model.module, batch_loss, config, log=log)
        return model

    def _encode(self, inputs: Inputs) -> list:
        """Token id lists, or (T, F) float32 arrays for vector sequences, checked against what this tagger reads."""
        if self.vocab is not None:
            if isinstance(inputs, VectorSequences):
                raise RnnlabError("this tagger was trained on tokens, not on vector sequences")
            return [self.vocab.encode(tokens) for tokens in inputs]  # type: ignore[arg-type]
        data = inputs if isinstance(inputs, VectorSequences) else VectorSequences(list(inputs))  # type: ignore[arg-type]
        if data.check().num_features != self.features:
            raise RnnlabError(
                f"this tagger reads {self.features} features per frame, the sequences have {data.num_features}"
            )
        return data.features

    def _pad(self, items: list) -> tuple[Tensor, Tensor]:
        return pad(items) if self.vocab is not None else pad_vectors(items)

    @torch.no_grad()
    def predict(self, sequences: Inputs) -> list[list[str]]:
        """One tag per token (or frame) of each sequence."""
        self.module.eval()
        items, out = self._encode(sequences), []
        for start in range(0, len(items), BATCH):
            x, lengths = self._pad(items[start : start + BATCH])
            best = self.module(x).argmax(-1)
            out += [[self.tags[i] for i in row[:n]] for row, n in zip(best.tolist(), lengths.tolist(), strict=True)]
        return out

    def accuracy(self, examples: Examples) -> float:
        """Fraction of tokens (or frames) tagged correctly."""
        inputs = examples if isinstance(examples, VectorSequences) else [toks for toks, _ in examples]
        predicted = self.predict(inputs)
        pairs = [(p, t) for ps, ts in zip(predicted, _tags(examples), strict=True) for p, t in zip(ps, ts, strict=True)]
        return sum(p == t for p, t in pairs) / len(pairs)

    def save(self, out: Path) -> Path:
        reads = {"inputs": "tokens", "vocab": self.vocab.tokens} if self.vocab else inputs_record(self.features)
        return save_run(out, KIND, self.config, self.module, {**reads, "tags": self.tags})

    @classmethod
    def load(cls, run_dir: Path) -> Tagger:
        data, config = read_run(run_dir, KIND)
        features = recorded_features(data, run_dir)
        vocab = None if features else Vocab(data["vocab"])
        module = SequenceTagger(config, len(vocab) if vocab else 0, len(data["tags"]), features)
        return cls(load_weights(module, run_dir), vocab, data["tags"], config)  # type: ignore[arg-type]


def _tags(examples: Examples) -> list[list[str]]:
    """Each example's tags, checked: one per token (or frame)."""
    if not isinstance(examples, VectorSequences):
        _check(examples)
        return [ts for _, ts in examples]
    if examples.check().tags is None:
        raise RnnlabError("the vector sequences have no tags (an NPZ `tags` array, or a CSV `tag` column)")
    return examples.tags  # type: ignore[return-value]


def majority_rate(examples: Examples) -> float:
    """Accuracy of always answering the most common tag: the chance level a tagger must beat."""
    tags = [t for ts in _tags(examples) for t in ts]
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
