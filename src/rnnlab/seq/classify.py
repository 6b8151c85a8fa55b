"""Many-to-one: read a whole sequence, then classify it from the last hidden state.

    tokens (N, T) -> embedding (N, T, D), or frames (N, T, F) -> standardise, linear (N, T, D)
    -> Recurrent (N, T, H) -> h at each sequence's last step (N, H) -> linear -> class logits (N, C)

`Classifier` pairs the network with what it reads (a vocabulary, or F features per frame) and its labels:
train on (text, label) pairs (the built-in sentiment task or a user CSV/JSONL) or on labelled vector
sequences (the built-in video task or a user NPZ/NPY/CSV, see rnnlab.seq.vectors), predict, measure
accuracy, save and load a run directory (config.json's `inputs` says which; a run without it reads text).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig, Vocab, fit, last_output, load_weights, pad, read_run, save_run
from rnnlab.seq.vectors import FeatureInput, VectorSequences, inputs_record, pad_vectors, recorded_features
from rnnlab.tasks.sentiment import make_sentiment

KIND = "classify"
BATCH = 256  # sequences per forward pass when predicting
_WORD = re.compile(r"\w+|[^\w\s]")
Labelled = list[tuple[str, str]] | VectorSequences  # (text, label) pairs, or vector sequences with labels
Inputs = Sequence[str] | Sequence[np.ndarray] | VectorSequences  # texts, or (T, F) frame arrays


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: the classifier's tokens."""
    return _WORD.findall(text.lower())


class SequenceClassifier(nn.Module):
    """(N, T) token ids, or (N, T, F) frames when `features` = F, and their lengths -> (N, C) class logits, from
    the top layer's last real step (the stack reads left to right, so the padding after it changes nothing)."""

    def __init__(self, config: SeqConfig, vocab_size: int, num_classes: int, features: int = 0) -> None:
        super().__init__()
        if features:
            self.embed: nn.Module = FeatureInput(features, config.embed)
        else:
            self.embed = nn.Embedding(vocab_size, config.embed, padding_idx=0)
        self.rnn = config.recurrent()
        self.head = nn.Linear(config.hidden, num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        out, _ = self.rnn(self.embed(tokens))
        return self.head(last_output(out, lengths))


class Classifier:
    """A trained sequence classifier with its label names and what it reads: `vocab` for text, None for
    vector sequences (then `features` is F)."""

    def __init__(self, module: SequenceClassifier, vocab: Vocab | None, labels: list[str], config: SeqConfig) -> None:
        self.module, self.vocab, self.labels, self.config = module, vocab, labels, config

    @property
    def features(self) -> int:
        """F, the features per frame, for a classifier of vector sequences; 0 for one of text."""
        embed = self.module.embed
        return embed.project.in_features if isinstance(embed, FeatureInput) else 0

    @classmethod
    def train(
        cls, examples: Labelled, config: SeqConfig, log: Callable[[int, float], None] | None = None
    ) -> Classifier:
        """Fit on (text, label) pairs or labelled vector sequences: the vocabulary (or the features'
        standardisation) and the label set come from `examples`."""
        config.validate()
        given = _labels(examples)
        if len(given) < 2:
            raise RnnlabError("need at least 2 labelled examples to train a classifier")
        labels = sorted(set(given))
        if len(labels) < 2:
            raise RnnlabError(f"need at least 2 distinct labels, got only {labels[0]!r}")
        torch.manual_seed(config.seed)
        if isinstance(examples, VectorSequences):
            module = SequenceClassifier(config, 0, len(labels), examples.check().num_features)
            module.embed.fit(examples.features)  # type: ignore[operator]
            model = cls(module, None, labels, config)
            inputs: list = examples.features
        else:
            vocab = Vocab(w for text, _ in examples for w in words(text))
            model = cls(SequenceClassifier(config, len(vocab), len(labels)), vocab, labels, config)
            inputs = model._encode([text for text, _ in examples])
        index = {label: i for i, label in enumerate(labels)}
        targets = torch.as_tensor([index[label] for label in given])

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(inputs), (config.batch_size,), generator=generator)
            return F.cross_entropy(model.module(*model._pad([inputs[i] for i in pick])), targets[pick])

        fit(model.module, batch_loss, config, log=log)
        return model

    def _encode(self, inputs: Inputs) -> list:
        """Token id lists for texts, or (T, F) float32 arrays for vector sequences, checked against what this
        classifier reads."""
        if self.vocab is not None:
            if isinstance(inputs, VectorSequences):
                raise RnnlabError("this classifier was trained on text, not on vector sequences")
            # an empty text reads as one unknown word
            return [self.vocab.encode(words(text)) or [1] for text in inputs]  # type: ignore[arg-type]
        data = inputs if isinstance(inputs, VectorSequences) else VectorSequences(list(inputs))  # type: ignore[arg-type]
        if data.check().num_features != self.features:
            raise RnnlabError(
                f"this classifier reads {self.features} features per frame, the sequences have {data.num_features}"
            )
        return data.features

    def _pad(self, items: list) -> tuple[Tensor, Tensor]:
        return pad(items) if self.vocab is not None else pad_vectors(items)

    @torch.no_grad()
    def probabilities(self, inputs: Inputs) -> Tensor:
        """(len(inputs), C) class probabilities, in the order of `self.labels`, for texts or for vector sequences
        (a VectorSequences, or (T, F) arrays), whichever this classifier reads."""
        self.module.eval()
        items = self._encode(inputs)
        if not items:
            raise RnnlabError("nothing to classify")
        return torch.cat(
            [self.module(*self._pad(items[i : i + BATCH])).softmax(-1) for i in range(0, len(items), BATCH)]
        )

    def predict(self, inputs: Inputs) -> list[str]:
        return [self.labels[i] for i in self.probabilities(inputs).argmax(-1).tolist()]

    def accuracy(self, examples: Labelled) -> float:
        """Fraction of `examples` given their label."""
        inputs = examples if isinstance(examples, VectorSequences) else [text for text, _ in examples]
        predicted, given = self.predict(inputs), _labels(examples)
        return sum(p == label for p, label in zip(predicted, given, strict=True)) / len(given)

    def save(self, out: Path) -> Path:
        reads = {"inputs": "tokens", "vocab": self.vocab.tokens} if self.vocab else inputs_record(self.features)
        return save_run(out, KIND, self.config, self.module, {**reads, "labels": self.labels})

    @classmethod
    def load(cls, run_dir: Path) -> Classifier:
        data, config = read_run(run_dir, KIND)
        features = recorded_features(data, run_dir)
        vocab = None if features else Vocab(data["vocab"])
        module = SequenceClassifier(config, len(vocab) if vocab else 0, len(data["labels"]), features)
        return cls(load_weights(module, run_dir), vocab, data["labels"], config)  # type: ignore[arg-type]


def majority_rate(examples: Labelled) -> float:
    """Accuracy of always answering the most common label: the chance level a classifier must beat."""
    labels = _labels(examples)
    return max(labels.count(label) for label in set(labels)) / len(labels)


def _labels(examples: Labelled) -> list[str]:
    if not isinstance(examples, VectorSequences):
        return [label for _, label in examples]
    if examples.labels is None:
        raise RnnlabError("the vector sequences have no labels (an NPZ `labels` array, or a CSV `label` column)")
    return examples.labels


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(text, label) pairs from a CSV with `text` and `label` columns, or JSONL objects with those keys."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RnnlabError(f"cannot read {path}: {exc}") from None
    if Path(path).suffix == ".jsonl":
        rows = []
        for number, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise RnnlabError(f"{path}:{number}: not a JSON object") from None
    else:
        rows = list(csv.DictReader(raw.splitlines()))
    pairs = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or row.get("text") is None or row.get("label") is None:
            raise RnnlabError(f"{path}: row {number} needs 'text' and 'label'")
        pairs.append((str(row["text"]), str(row["label"])))
    if not pairs:
        raise RnnlabError(f"{path} has no labelled rows")
    return pairs


def demo(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """The built-in sentiment task (see rnnlab.tasks.sentiment)."""
    return make_sentiment(n, seed)
