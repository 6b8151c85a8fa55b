"""Image captioning: a small CNN (trained from scratch, no downloaded weights) summarises the image in a
vector v, which enters the recurrent decoder at every step beside the previous word:

    h_t = f(W_xh x_t + W_hh h_{t-1} + W_ih v)      (for rnn-tanh f = tanh; any --cell works)

and also sets the first state, h_0 = tanh(W_0 v). Captions run <START> w1 ... wn <END>; decoding is
greedy or beam search (from rnnlab.models.seq2seq) and quality is reported as corpus BLEU-1..4.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.metrics import corpus_bleu
from rnnlab.models.seq2seq import IGNORE, Seq2Seq
from rnnlab.models.sequence import END, START, SeqConfig, Vocab, fit, load_weights, pad, read_run, save_run
from rnnlab.nn.recurrent import State

KIND = "caption"


class CaptionNet(nn.Module):
    """CNN encoder (N, 3, 32, 32) -> v (N, H); decoder over [word embedding; v] -> next-word logits."""

    def __init__(self, config: SeqConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.parts = 2 if config.cell == "lstm" else 1
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, config.hidden),
        )
        self.init = nn.Linear(config.hidden, self.parts * config.layers * config.hidden)
        self.tgt_embed = nn.Embedding(vocab_size, config.embed, padding_idx=0)
        self.decoder = config.recurrent(input_size=config.embed + config.hidden)
        self.head = nn.Linear(config.hidden, vocab_size)

    def encode(self, images: Tensor) -> tuple[State, Tensor]:
        """Images -> (the decoder's first state, the image vector v)."""
        v = torch.relu(self.cnn(images))
        L, H, N = self.config.layers, self.config.hidden, images.shape[0]
        h0 = torch.tanh(self.init(v)).view(N, self.parts, L, H).permute(1, 2, 0, 3).contiguous()
        return ((h0[0], h0[1]) if self.parts == 2 else h0[0]), v

    def decode(self, tokens: Tensor, state: State, v: Tensor) -> tuple[Tensor, State]:
        x = self.tgt_embed(tokens)
        out, state = self.decoder(torch.cat([x, v[:, None].expand(-1, x.shape[1], -1)], dim=-1), state)
        return self.head(out), state


class Captioner(Seq2Seq):
    """A trained captioner: `greedy(images)` and `beam(image)` as for Seq2Seq, with images as sources."""

    @classmethod
    def train_captions(
        cls,
        images: np.ndarray,
        captions: list[list[str]],
        config: SeqConfig,
        log: Callable[[int, float], None] | None = None,
    ) -> Captioner:
        """Teacher forcing on (image, caption) pairs."""
        config.validate()
        if len(images) != len(captions) or not captions:
            raise RnnlabError("need one caption per image")
        tgt = Vocab((w for c in captions for w in c), specials=(START, END))
        torch.manual_seed(config.seed)
        module = CaptionNet(config, len(tgt))
        pixels = torch.as_tensor(images, dtype=torch.float32)
        inputs = [tgt.encode([START, *c]) for c in captions]
        targets = [tgt.encode([*c, END]) for c in captions]

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(captions), (config.batch_size,), generator=generator)
            x, _ = pad([inputs[i] for i in pick.tolist()])
            y, _ = pad([targets[i] for i in pick.tolist()], IGNORE)
            logits, _ = module.decode(x, *module.encode(pixels[pick]))
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)

        fit(module, batch_loss, config, log=log)
        return cls(module, Vocab([]), tgt, config, max(map(len, captions)) + 5)  # type: ignore[arg-type]

    def _encode(self, sources: list) -> tuple[State, Tensor]:
        """Images (each 3x32x32) -> (first state, image vector v fed to every step)."""
        images = torch.as_tensor(np.stack([np.asarray(s, dtype=np.float32) for s in sources]))
        if images.shape[1:] != (3, 32, 32):
            raise RnnlabError(f"images must be 3x32x32 RGB, got {tuple(images.shape[1:])}")
        return self.module.encode(images)

    def bleu(self, images: np.ndarray, captions: list[list[str]]) -> list[float]:
        """Corpus BLEU-1..4 of greedy captions against the true ones."""
        outputs = [out for out, _ in self.greedy(list(images))]
        return corpus_bleu(outputs, [[c] for c in captions])

    def save(self, out: Path, task: str = "shapes") -> Path:
        extra = {"tgt_vocab": self.tgt.tokens, "max_len": self.max_len, "task": task}
        return save_run(out, KIND, self.config, self.module, extra)

    @classmethod
    def load(cls, run_dir: Path) -> Captioner:
        data, config = read_run(run_dir, KIND)
        tgt = Vocab(data["tgt_vocab"], specials=(START, END))
        module = load_weights(CaptionNet(config, len(tgt)), run_dir)
        return cls(module, Vocab([]), tgt, config, int(data["max_len"]))  # type: ignore[arg-type]


def render_grid(images: np.ndarray, captions: list[str], path: Path, truths: list[str] | None = None) -> Path:
    """Save a PNG grid of images, each titled with its generated caption (and the true one below it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images, strict=False)):
        ax.imshow(np.transpose(image, (1, 2, 0)), interpolation="nearest")
        title = captions[i] if truths is None else f"{captions[i]}\n(true: {truths[i]})"
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
