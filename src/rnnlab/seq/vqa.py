"""Visual question answering: the captioner's network (rnnlab.seq.caption) reads the question where the
captioner writes its caption: the CNN turns the image into a vector v, which sets the first state and
enters every step beside the question's words; the answer is read from the last real step:

    v = relu(CNN(image)),   h_0 = tanh(W_0 v),   h_t = f(W_xh x_t + W_hh h_{t-1} + W_ih v)   (any --cell)
    answer = softmax(W_a h_T + b) over the answers seen in training

Because the image is there while the question is read, the state can keep what the question asks about
this image. (Reading the question alone and multiplying its vector with v, as Antol et al. 2015 did, learnt
much slower on the shapes in a trial with the same budget.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.seq.caption import CaptionNet, image_batch
from rnnlab.seq.sequence import SeqConfig, Vocab, fit, last_output, load_weights, pad, read_run, save_run
from rnnlab.tasks.shape_questions import words

KIND = "vqa"
Questions = list[tuple[int, str, str]]  # (image index, question, answer)


class VQANet(CaptionNet):
    """The captioner's network reading a question instead of writing a caption: (N, 3, 32, 32) images,
    (N, T) right-padded question ids and their lengths -> (N, A) answer logits at each question's last word."""

    def __init__(self, config: SeqConfig, vocab_size: int, num_answers: int) -> None:
        super().__init__(config, vocab_size)
        self.head = nn.Linear(config.hidden, num_answers)

    def forward(self, images: Tensor, tokens: Tensor, lengths: Tensor) -> Tensor:
        logits, _ = self.decode(tokens, *self.encode(images))
        return last_output(logits, lengths)


class VQA:
    """A trained question answerer with its question vocabulary and answer list."""

    def __init__(self, module: VQANet, vocab: Vocab, answers: list[str], config: SeqConfig) -> None:
        self.module, self.vocab, self.answers, self.config = module, vocab, answers, config

    @classmethod
    def train(
        cls,
        images: np.ndarray,
        questions: Questions,
        config: SeqConfig,
        log: Callable[[int, float], None] | None = None,
    ) -> VQA:
        """Fit on (image index, question, answer) triples about `images`; vocabulary and answers come from them."""
        config.validate()
        if not questions:
            raise RnnlabError("need at least one (image, question, answer) example to train")
        if any(not 0 <= i < len(images) for i, _, _ in questions):
            raise RnnlabError(f"question image indices must be in [0, {len(images)})")
        answers = sorted({a for _, _, a in questions})
        vocab = Vocab(w for _, q, _ in questions for w in words(q))
        torch.manual_seed(config.seed)
        model = cls(VQANet(config, len(vocab), len(answers)), vocab, answers, config)
        pixels = image_batch(images)
        ids = [model._ids(q) for _, q, _ in questions]
        image_of = torch.as_tensor([i for i, _, _ in questions])
        targets = torch.as_tensor([answers.index(a) for _, _, a in questions])

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(questions), (config.batch_size,), generator=generator)
            tokens, lengths = pad([ids[i] for i in pick.tolist()])
            return F.cross_entropy(model.module(pixels[image_of[pick]], tokens, lengths), targets[pick])

        fit(model.module, batch_loss, config, log=log)
        return model

    def _ids(self, question: str) -> list[int]:
        tokens = words(question)
        if not tokens:
            raise RnnlabError(f"the question {question!r} has no words")
        unknown = sorted({w for w in tokens if w not in self.vocab.index})
        if unknown:
            raise RnnlabError(f"word(s) not seen in training questions: {' '.join(unknown[:10])}")
        return self.vocab.encode(tokens)

    def unanswerable(self, question: str) -> str | None:
        """Why the model cannot read `question` (no words, or words it never saw), or None when it can."""
        try:
            self._ids(question)
        except RnnlabError as exc:
            return str(exc)
        return None

    @torch.no_grad()
    def probabilities(self, images: list | np.ndarray, questions: list[str]) -> Tensor:
        """(len(questions), A) answer probabilities, in the order of `self.answers`; question i is about image i."""
        if len(images) != len(questions):
            raise RnnlabError(f"need one image per question, got {len(images)} images for {len(questions)}")
        self.module.eval()
        tokens, lengths = pad([self._ids(q) for q in questions])
        return self.module(image_batch(images), tokens, lengths).softmax(-1)

    def predict(self, images: list | np.ndarray, questions: list[str]) -> list[str]:
        return [self.answers[i] for i in self.probabilities(images, questions).argmax(-1).tolist()]

    def accuracy(self, images: np.ndarray, questions: Questions, batch_size: int = 512) -> float:
        """Fraction of (image index, question, answer) triples answered exactly."""
        hits = 0
        for start in range(0, len(questions), batch_size):
            chunk = questions[start : start + batch_size]
            predicted = self.predict(images[[i for i, _, _ in chunk]], [q for _, q, _ in chunk])
            hits += sum(p == a for p, (_, _, a) in zip(predicted, chunk, strict=True))
        return hits / len(questions)

    def save(self, out: Path, task: str = "shapes") -> Path:
        extra = {"vocab": self.vocab.tokens, "answers": self.answers, "task": task}
        return save_run(out, KIND, self.config, self.module, extra)

    @classmethod
    def load(cls, run_dir: Path) -> VQA:
        data, config = read_run(run_dir, KIND)
        vocab = Vocab(data["vocab"])
        module = VQANet(config, len(vocab), len(data["answers"]))
        return cls(load_weights(module, run_dir), vocab, list(data["answers"]), config)  # type: ignore[arg-type]
