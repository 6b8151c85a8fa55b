"""Image captioning: a small CNN (trained from scratch, no downloaded weights) summarises the image in a
vector v, which enters the recurrent decoder at every step beside the previous word:

    h_t = f(W_xh x_t + W_hh h_{t-1} + W_ih v)      (for rnn-tanh f = tanh; any --cell works)

and also sets the first state, h_0 = tanh(W_0 v). Captions run <START> w1 ... wn <END>; decoding is
greedy or beam search (from rnnlab.seq.seq2seq) and quality is reported as corpus BLEU-1..4 and
exact-caption accuracy, each against all the true captions of an image (a shapes scene has two).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.metrics import corpus_bleu
from rnnlab.nn.recurrent import State
from rnnlab.seq.seq2seq import IGNORE, Seq2Seq
from rnnlab.seq.sequence import END, START, SeqConfig, Vocab, fit, load_weights, pad, read_run, save_run

KIND = "caption"


def image_encoder(hidden: int) -> nn.Sequential:
    """The small CNN that turns a (N, 3, 32, 32) image into an (N, H) vector (before its ReLU): two 3x3
    convolution + 2x2 max-pool stages, then one linear layer over the 8x8 map, which keeps where things are."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, hidden),
    )


def image_batch(images: list | np.ndarray) -> Tensor:
    """Images (each 3x32x32 RGB in [0, 1]) -> one float32 tensor; any other shape is a clear error."""
    try:
        batch = torch.as_tensor(np.stack([np.asarray(image, dtype=np.float32) for image in images]))
    except ValueError as exc:
        raise RnnlabError(f"images must be 3x32x32 RGB arrays: {exc}") from None
    if batch.ndim != 4 or batch.shape[1:] != (3, 32, 32):
        raise RnnlabError(f"images must be 3x32x32 RGB, got {tuple(batch.shape[1:])}")
    return batch


def read_image(path: Path) -> np.ndarray:
    """A 32x32 image file (PNG; RGB, RGBA or grey) -> (3, 32, 32) float32 in [0, 1], what the models read."""
    from matplotlib import image as mpimg

    try:
        pixels = np.asarray(mpimg.imread(path), dtype=np.float32)
    except (OSError, ValueError, SyntaxError) as exc:
        raise RnnlabError(f"cannot read {path} as an image: {exc}") from None
    if pixels.max(initial=0) > 1:  # 8-bit formats other than PNG
        pixels = pixels / 255.0
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[:2] != (32, 32) or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise RnnlabError(f"{path}: need a 32x32 RGB image, got shape {pixels.shape}")
    return np.ascontiguousarray(pixels[:, :, :3].transpose(2, 0, 1))


class CaptionNet(nn.Module):
    """CNN encoder (N, 3, 32, 32) -> v (N, H); decoder over [word embedding; v] -> next-word logits."""

    def __init__(self, config: SeqConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.cnn = image_encoder(config.hidden)
        self.init = nn.Linear(config.hidden, config.state_size)
        self.tgt_embed = nn.Embedding(vocab_size, config.embed, padding_idx=0)
        self.decoder = config.recurrent(input_size=config.embed + config.hidden)
        self.head = nn.Linear(config.hidden, vocab_size)

    def encode(self, images: Tensor) -> tuple[State, Tensor]:
        """Images -> (the decoder's first state, the image vector v)."""
        v = torch.relu(self.cnn(images))
        return self.config.vector_state(self.init(v)), v

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
        image_of: list[int] | None = None,
    ) -> Captioner:
        """Teacher forcing on (image, caption) pairs: caption k describes image `image_of[k]` (default k), so
        an image can have several captions without being copied."""
        config.validate()
        image_of = list(range(len(captions))) if image_of is None else image_of
        if not captions or len(image_of) != len(captions) or not all(0 <= i < len(images) for i in image_of):
            raise RnnlabError("need at least one caption, each naming one of the images")
        if any(not c for c in captions):
            raise RnnlabError("every caption needs at least one word")
        tgt = Vocab((w for c in captions for w in c), specials=(START, END))
        torch.manual_seed(config.seed)
        module = CaptionNet(config, len(tgt))
        pixels, index = image_batch(images), torch.as_tensor(image_of)
        inputs = [tgt.encode([START, *c]) for c in captions]
        targets = [tgt.encode([*c, END]) for c in captions]

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(captions), (config.batch_size,), generator=generator)
            x, _ = pad([inputs[i] for i in pick.tolist()])
            y, _ = pad([targets[i] for i in pick.tolist()], IGNORE)
            logits, _ = module.decode(x, *module.encode(pixels[index[pick]]))
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)

        fit(module, batch_loss, config, log=log)
        return cls(module, Vocab([]), tgt, config, max(map(len, captions)) + 5)  # type: ignore[arg-type]

    def _encode(self, sources: list) -> tuple[State, Tensor]:
        """Images (each 3x32x32) -> (first state, image vector v fed to every step)."""
        return self.module.encode(image_batch(sources))

    def describe(self, images: list | np.ndarray, beam: int = 1) -> list[list[str]]:
        """One caption per image: greedy decoding (batched) when `beam` is 1, else beam search of that width."""
        if beam > 1:
            return [self.beam(image, beam)[0] for image in images]
        return [out for out, _ in self.greedy(list(images))]

    def evaluate(
        self, images: np.ndarray, references: list[list[list[str]]], beam: int = 1
    ) -> tuple[list[float], float]:
        """(corpus BLEU-1..4, exact-caption accuracy) of `describe(images, beam)`, where `references[i]`
        lists every true caption of image i and a caption is exact when it equals one of them."""
        outputs = self.describe(images, beam)
        exact = sum(out in refs for out, refs in zip(outputs, references, strict=True)) / len(outputs)
        return corpus_bleu(outputs, references), exact

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
        lines = [captions[i]] if truths is None else [captions[i], f"(true: {truths[i]})"]
        ax.set_title("\n".join(textwrap.fill(line, 36) for line in lines), fontsize=8)  # long captions wrap
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
