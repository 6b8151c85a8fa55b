"""Many-to-one: read a whole sequence, then classify it from the last hidden state.

    tokens (N, T) -> embedding (N, T, D) -> Recurrent (N, T, H) -> h at each sequence's last step (N, H)
    -> linear -> class logits (N, C)

`Classifier` pairs the network with its vocabulary and labels: train on (text, label) pairs (the built-in
sentiment task or a user CSV/JSONL), predict, measure accuracy, save and load a run directory.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig, Vocab, fit, last_output, load_weights, pad, read_run, save_run
from rnnlab.tasks.sentiment import make_sentiment

KIND = "classify"
_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: the classifier's tokens."""
    return _WORD.findall(text.lower())


class SequenceClassifier(nn.Module):
    """(N, T) token ids and their lengths -> (N, C) class logits, from the top layer's last real step."""

    def __init__(self, config: SeqConfig, vocab_size: int, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.embed, padding_idx=0)
        self.rnn = config.recurrent()
        self.head = nn.Linear(config.hidden, num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        out, _ = self.rnn(self.embed(tokens))
        return self.head(last_output(out, lengths))


class Classifier:
    """A trained sequence classifier with its vocabulary and label names."""

    def __init__(self, module: SequenceClassifier, vocab: Vocab, labels: list[str], config: SeqConfig) -> None:
        self.module, self.vocab, self.labels, self.config = module, vocab, labels, config

    @classmethod
    def train(
        cls,
        examples: list[tuple[str, str]],
        config: SeqConfig,
        log: Callable[[int, float], None] | None = None,
    ) -> Classifier:
        """Fit on (text, label) pairs: the vocabulary and label set come from `examples`."""
        config.validate()
        if len(examples) < 2:
            raise RnnlabError("need at least 2 labelled examples to train a classifier")
        labels = sorted({label for _, label in examples})
        if len(labels) < 2:
            raise RnnlabError(f"need at least 2 distinct labels, got only {labels[0]!r}")
        vocab = Vocab(w for text, _ in examples for w in words(text))
        torch.manual_seed(config.seed)
        module = SequenceClassifier(config, len(vocab), len(labels))
        model = cls(module, vocab, labels, config)
        ids = [model._ids(text) for text, _ in examples]
        targets = torch.as_tensor([labels.index(label) for _, label in examples])

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(ids), (config.batch_size,), generator=generator)
            tokens, lengths = pad([ids[i] for i in pick])
            return F.cross_entropy(module(tokens, lengths), targets[pick])

        fit(module, batch_loss, config, log=log)
        return model

    def _ids(self, text: str) -> list[int]:
        return self.vocab.encode(words(text)) or [1]  # an empty text reads as one unknown word

    @torch.no_grad()
    def probabilities(self, texts: list[str]) -> Tensor:
        """(len(texts), C) class probabilities, in the order of `self.labels`."""
        self.module.eval()
        tokens, lengths = pad([self._ids(t) for t in texts])
        return self.module(tokens, lengths).softmax(-1)

    def predict(self, texts: list[str]) -> list[str]:
        return [self.labels[i] for i in self.probabilities(texts).argmax(-1).tolist()]

    def accuracy(self, examples: list[tuple[str, str]]) -> float:
        predicted = self.predict([text for text, _ in examples])
        return sum(p == label for p, (_, label) in zip(predicted, examples, strict=True)) / len(examples)

    def save(self, out: Path) -> Path:
        return save_run(out, KIND, self.config, self.module, {"vocab": self.vocab.tokens, "labels": self.labels})

    @classmethod
    def load(cls, run_dir: Path) -> Classifier:
        data, config = read_run(run_dir, KIND)
        vocab = Vocab(data["vocab"])
        module = SequenceClassifier(config, len(vocab), len(data["labels"]))
        return cls(load_weights(module, run_dir), vocab, data["labels"], config)  # type: ignore[arg-type]


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
