"""CTC sequence labelling: read a text line image column by column and learn its text without alignments.

    line image (height, width) -> frames: each `window` columns of pixels, flattened (T = width / window)
    -> linear D -> recurrent stack (any --cell; bidirectional: a forward and a backward cell per layer)
    -> linear -> log-probabilities over blank + the alphabet at every frame (N, T, C)

Connectionist temporal classification (Graves et al. 2006) scores a text by summing the probability of every
frame path that collapses to it (merge repeats, then drop blanks), so training needs only (image, text) pairs:
`torch.nn.functional.ctc_loss`. Decoding is greedy (the best path, collapsed) or a prefix beam search, which
keeps the `width` most probable texts, each with the probability of all its paths split into those ending in
a blank and those ending in its last letter. Quality is the character error rate: edit distance over the
reference length, summed over held-out lines.

A user's folder holds line images (any format Pillow reads, any width; resized to the run's height) and
`labels.tsv`: one line per image, its file name, a TAB, its text. The alphabet is the transcripts' characters.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab import rundir
from rnnlab.errors import RnnlabError
from rnnlab.nn import registry
from rnnlab.nn.recurrent import Recurrent
from rnnlab.rundir import WEIGHTS, atomic_save_tensors, tensor_shapes, write_run_config
from rnnlab.seq.sequence import SeqConfig, fit, load_weights
from rnnlab.tasks.lines import TRANSCRIPT

KIND = "ctc"
BLANK = 0  # class 0 is the blank; class i + 1 is alphabet[i]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


# ---- frames ------------------------------------------------------------------------------------------


def load_line(path: Path, height: int) -> np.ndarray:
    """A line image file -> (height, width) uint8 grey levels, resized to `height` rows keeping its aspect ratio."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = image.convert("L")
            width = max(1, round(grey.width * height / grey.height))
            return np.asarray(grey.resize((width, height), Image.BILINEAR), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, ZeroDivisionError) as exc:
        raise RnnlabError(f"cannot read image {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def frames(pixels: np.ndarray, window: int) -> Tensor:
    """(height, width) grey image, dark ink on light paper -> (T, height * window) frames, T = ceil(width / window):
    ink (1 - grey), standardised per image so that paper tone and contrast do not matter."""
    ink = 1.0 - np.asarray(pixels, dtype=np.float32) / 255.0
    height, width = ink.shape
    T = -(-width // window)
    ink = np.pad(ink, ((0, 0), (0, T * window - width)), mode="edge")  # the last frame's missing columns: paper
    ink = (ink - ink.mean()) / (ink.std() + 1e-3)
    return torch.from_numpy(np.ascontiguousarray(ink.reshape(height, T, window).transpose(1, 0, 2)).reshape(T, -1))


def pad_frames(seqs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """(T_i, F) frame tensors -> (N, T, F) zero-padded, and their lengths (N,)."""
    lengths = torch.as_tensor([len(s) for s in seqs])
    return nn.utils.rnn.pad_sequence(list(seqs), batch_first=True), lengths


def frames_needed(labels: Sequence[int]) -> int:
    """The fewest frames a CTC path for `labels` has: one per label plus a blank between equal neighbours."""
    return len(labels) + sum(a == b for a, b in itertools.pairwise(labels))


# ---- the network -------------------------------------------------------------------------------------


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of (N, T, F) within its own length; padding stays where it is (an involution)."""
    t = torch.arange(x.shape[1]).unsqueeze(0)
    last = (lengths - 1).unsqueeze(1)
    index = torch.where(t <= last, last - t, t)
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class CTCNet(nn.Module):
    """(N, T, F) frames with lengths -> (N, T, C) log-probabilities over blank + alphabet at every frame."""

    def __init__(self, config: SeqConfig, features: int, classes: int, bidirectional: bool) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        H, L = config.hidden, config.layers
        self.project = nn.Linear(features, config.embed)
        if bidirectional:  # each layer reads both directions of the one below
            sizes = [config.embed] + [2 * H] * (L - 1)
            self.layers = nn.ModuleList(
                nn.ModuleList(Recurrent(config.cell, d, H, 1) for _ in ("forward", "backward")) for d in sizes
            )
        else:
            self.rnn = config.recurrent()
        self.head = nn.Linear(H * (2 if bidirectional else 1), classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = torch.tanh(self.project(x))
        if self.bidirectional:
            for forward, backward in self.layers:  # type: ignore[misc]
                back, _ = backward(reverse_padded(h, lengths))
                h = torch.cat([forward(h)[0], reverse_padded(back, lengths)], dim=-1)
        else:
            h, _ = self.rnn(h)
        return F.log_softmax(self.head(h), dim=-1)


def ctc_loss(log_probs: Tensor, lengths: Tensor, targets: Sequence[Sequence[int]]) -> Tensor:
    """Mean over the batch of -log p(target | frames) / target length: `torch.nn.functional.ctc_loss` on
    (N, T, C) log-probabilities, blank 0. A path that cannot fit its frames scores zero, not infinity."""
    flat = torch.as_tensor([c for t in targets for c in t], dtype=torch.long)
    target_lengths = torch.as_tensor([len(t) for t in targets])
    return F.ctc_loss(
        log_probs.transpose(0, 1), flat, lengths, target_lengths, blank=BLANK, reduction="mean", zero_infinity=True
    )


# ---- decoding and scoring ----------------------------------------------------------------------------


def collapse(path: Sequence[int]) -> list[int]:
    """A frame path -> its labelling: merge runs of the same class, then drop blanks."""
    return [c for i, c in enumerate(path) if c != BLANK and (i == 0 or path[i - 1] != c)]


def greedy_decode(log_probs: np.ndarray) -> list[int]:
    """Best path decoding: the most probable class at every frame (T, C), collapsed."""
    return collapse(np.asarray(log_probs).argmax(-1).tolist())


def _logadd(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def prefix_beam(log_probs: np.ndarray, width: int, min_prob: float = 1e-4) -> tuple[list[int], float]:
    """Prefix beam search over (T, C) log-probabilities: (the most probable labelling found, its log-probability,
    summed over all its paths). Keeps `width` prefixes per frame; a letter below `min_prob` at a frame does not
    extend a prefix there (0: every letter does, and with `width` at least the number of labellings the search is
    exact)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    floor = math.log(min_prob) if min_prob > 0 else -math.inf
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}  # prefix -> (log p ends in blank,
    for row in lp:  #                                                                        log p ends in a letter)
        row_list = row.tolist()
        letters = [c for c in range(1, len(row_list)) if row_list[c] >= floor]
        blank = row_list[BLANK]
        grown: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = _logadd(pb, pnb)
            here = grown.setdefault(prefix, [-math.inf, -math.inf])
            here[0] = _logadd(here[0], total + blank)
            last = prefix[-1] if prefix else None
            for c in letters:
                p = row_list[c]
                longer = grown.setdefault((*prefix, c), [-math.inf, -math.inf])
                if c == last:  # a repeat extends the text only after a blank; without one it merges
                    here[1] = _logadd(here[1], pnb + p)
                    longer[1] = _logadd(longer[1], pb + p)
                else:
                    longer[1] = _logadd(longer[1], total + p)
        ranked = sorted(grown.items(), key=lambda item: _logadd(*item[1]), reverse=True)[:width]
        beams = {prefix: (pb, pnb) for prefix, (pb, pnb) in ranked}
    best, (pb, pnb) = max(beams.items(), key=lambda item: _logadd(*item[1]))
    return list(best), _logadd(pb, pnb)


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions that turn `a` into `b`."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def cer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Character error rate: total edit distance over total reference length (the empty output scores 1.0)."""
    total = sum(len(r) for r in references)
    if total == 0:
        raise RnnlabError("the references have no characters to score against")
    return sum(edit_distance(h, r) for h, r in zip(hypotheses, references, strict=True)) / total


def baselines(train_texts: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Image-blind CERs a recogniser must beat: the empty output (1.0), and the training texts' most frequent
    character repeated their mean length."""
    chars = "".join(train_texts)
    common = max(set(chars), key=chars.count)
    guess = common * round(len(chars) / len(train_texts))
    return {
        "empty output": cer([""] * len(references), references),
        f"{common!r} x mean length": cer([guess] * len(references), references),
    }


def encode(text: str, alphabet: str) -> list[int]:
    """Text -> class ids (1 + index in `alphabet`); a character outside the alphabet is a clear error."""
    unknown = sorted(set(text) - set(alphabet))
    if unknown:
        raise RnnlabError(f"character(s) {''.join(unknown)!r} in {text!r} are not in the run's alphabet {alphabet!r}")
    return [alphabet.index(c) + 1 for c in text]


# ---- data --------------------------------------------------------------------------------------------


def read_folder(folder: Path, height: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(images resized to `height`, texts, file names) of a folder of line images with FOLDER/labels.tsv
    (NAME<TAB>TEXT per line). Every listed file must exist and every image file be listed, once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RnnlabError(f"{folder} is not a folder (want line images and {TRANSCRIPT})")
    transcript = folder / TRANSCRIPT
    if not transcript.is_file():
        raise RnnlabError(f"{folder} has no {TRANSCRIPT} (one line per image: file name, TAB, text)")
    try:
        lines = transcript.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RnnlabError(f"cannot read {transcript}: {exc}") from None
    texts: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        name, tab, text = line.partition("\t")
        if not tab or not text.strip():
            raise RnnlabError(f"{transcript}:{number}: expected a file name, a TAB and a non-empty text")
        if name in texts:
            raise RnnlabError(f"{transcript}:{number}: {name} is listed twice")
        texts[name] = text.strip()
    if not texts:
        raise RnnlabError(f"{transcript} lists no images")
    missing = [name for name in texts if not (folder / name).is_file()]
    if missing:
        raise RnnlabError(f"{transcript} lists {len(missing)} file(s) not in {folder}, e.g. {missing[0]}")
    on_disk = {p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
    unlisted = sorted(on_disk - set(texts))
    if unlisted:
        raise RnnlabError(f"{len(unlisted)} image(s) in {folder} have no line in {TRANSCRIPT}, e.g. {unlisted[0]}")
    names = list(texts)
    return [load_line(folder / name, height) for name in names], [texts[n] for n in names], names


# ---- the trained recogniser --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Reading:
    """How a run turns an image into frames: its height in pixels and columns per frame."""

    height: int = 32
    window: int = 2
    bidirectional: bool = True

    def validate(self) -> None:
        if not 8 <= self.height <= 256:
            raise RnnlabError(f"--height must be in 8..256 pixels, got {self.height}")
        if not 1 <= self.window <= 16:
            raise RnnlabError(f"--window must be in 1..16 columns, got {self.window}")


class LineReader:
    """A trained line recogniser: its network, alphabet and frame settings."""

    def __init__(self, module: CTCNet, alphabet: str, config: SeqConfig, reading: Reading) -> None:
        self.module, self.alphabet, self.config, self.reading = module, alphabet, config, reading

    @classmethod
    def train(
        cls,
        images: Sequence[np.ndarray],
        texts: Sequence[str],
        config: SeqConfig,
        reading: Reading,
        names: Sequence[str] | None = None,
        log: Callable[[int, float], None] | None = None,
    ) -> LineReader:
        """Fit on (image, text) pairs with the CTC loss; the alphabet is the texts' characters."""
        config.validate()
        reading.validate()
        if reading.bidirectional and config.layers > 1 and registry.get(config.cell).same_width:
            raise RnnlabError(f"--cell {config.cell} with --layers > 1 needs --no-bidirectional (input 2H, not H)")
        if not texts or len(images) != len(texts):
            raise RnnlabError("need at least one line image, each with its text")
        alphabet = "".join(sorted(set("".join(texts))))
        x = [frames(image, reading.window) for image in images]
        y = [encode(text, alphabet) for text in texts]
        for i, (f, labels) in enumerate(zip(x, y, strict=True)):
            if not labels:
                raise RnnlabError(f"line {names[i] if names else i + 1} has an empty text")
            if len(f) < frames_needed(labels):
                raise RnnlabError(
                    f"line {names[i] if names else i + 1} is too narrow for its text ({len(f)} frames for "
                    f"{len(labels)} characters); use a smaller --window or a larger --height"
                )
        torch.manual_seed(config.seed)
        module = CTCNet(config, reading.height * reading.window, len(alphabet) + 1, reading.bidirectional)

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(x), (config.batch_size,), generator=generator).tolist()
            batch, lengths = pad_frames([x[i] for i in pick])
            return ctc_loss(module(batch, lengths), lengths, [y[i] for i in pick])

        fit(module, batch_loss, config, log=log)
        return cls(module, alphabet, config, reading)

    def encode(self, text: str) -> list[int]:
        return encode(text, self.alphabet)

    def text(self, labels: Sequence[int]) -> str:
        return "".join(self.alphabet[c - 1] for c in labels)

    @torch.no_grad()
    def log_probs(self, images: Sequence[np.ndarray], batch: int = 64) -> list[np.ndarray]:
        """Per-frame log-probabilities (T_i, C) of each image (each `height` rows, any width)."""
        for image in images:
            if np.ndim(image) != 2 or np.shape(image)[0] != self.reading.height:
                raise RnnlabError(f"a line image must have {self.reading.height} rows, got shape {np.shape(image)}")
        self.module.eval()
        out: list[np.ndarray] = []
        for start in range(0, len(images), batch):
            x, lengths = pad_frames([frames(image, self.reading.window) for image in images[start : start + batch]])
            lp = self.module(x, lengths).numpy()
            out += [row[:n] for row, n in zip(lp, lengths.tolist(), strict=True)]
        return out

    def decode(self, images: Sequence[np.ndarray], beam: int = 1) -> list[str]:
        """The text of each line image: best path when `beam` is 1, else prefix beam search of that width."""
        if beam < 1:
            raise RnnlabError(f"--beam must be >= 1, got {beam}")
        scores = self.log_probs(images)
        if beam == 1:
            return [self.text(greedy_decode(lp)) for lp in scores]
        return [self.text(prefix_beam(lp, beam)[0]) for lp in scores]

    def cer(self, images: Sequence[np.ndarray], texts: Sequence[str], beam: int = 1) -> float:
        """Character error rate of `decode(images, beam)` against `texts`."""
        return cer(self.decode(images, beam), texts)

    def save(self, out: Path, task: str, extra: dict[str, Any] | None = None) -> Path:
        """Write OUT/config.json (kind ctc: shape, frame settings, alphabet) and OUT/model.safetensors."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(out / WEIGHTS, self.module.state_dict())
        model = dataclasses.asdict(self.config) | dataclasses.asdict(self.reading)
        write_run_config(out, KIND, model, {"alphabet": self.alphabet, "task": task, **(extra or {})})
        return out

    @classmethod
    def load(cls, run_dir: Path) -> LineReader:
        data = rundir.read_run(Path(run_dir), KIND)
        model = data["model"]
        try:
            config = SeqConfig(**{f.name: model[f.name] for f in dataclasses.fields(SeqConfig)})
            reading = Reading(**{f.name: model[f.name] for f in dataclasses.fields(Reading)})
            alphabet = str(data["alphabet"])
        except (KeyError, TypeError) as exc:
            raise RnnlabError(f"{Path(run_dir) / rundir.CONFIG} is not a ctc run's config (missing {exc})") from None
        config.validate()
        reading.validate()
        module = CTCNet(config, reading.height * reading.window, len(alphabet) + 1, reading.bidirectional)
        return cls(load_weights(module, run_dir), alphabet, config, reading)  # type: ignore[arg-type]


def plot_lines(
    images: Sequence[np.ndarray],
    decoded: Sequence[str],
    path: Path,
    references: Sequence[str] | None = None,
    log_probs: Sequence[np.ndarray] | None = None,
    alphabet: str = "",
    window: int = 2,
) -> Path:
    """Save a PNG of line images, each with its decoded text (and reference) under it; with `log_probs`, the
    per-frame best class too, written under the frame it belongs to (a dot for blank, a gap for space)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widest = max(image.shape[1] for image in images)
    height = images[0].shape[0]
    fig, axes = plt.subplots(
        len(images), 1, figsize=(min(max(4.0, widest / 28), 16.0), len(images) * (height / 28 + 0.9)), squeeze=False
    )
    for i, ax in enumerate(axes[:, 0]):
        image = images[i]
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xlim(-0.5, widest - 0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        label = [f"decoded: {decoded[i]}"] + ([f"reference: {references[i]}"] if references is not None else [])
        if log_probs is not None:
            best = np.asarray(log_probs[i]).argmax(-1)
            for t, c in enumerate(best.tolist()):
                x = (t + 0.5) * window - 0.5
                text, colour = ("·", "0.6") if c == BLANK else (alphabet[c - 1] if c <= len(alphabet) else "?", "C3")
                ax.text(x, height + 1, text, ha="center", va="top", fontsize=7, color=colour, family="monospace")
            ax.set_ylim(height + height * 0.5, -0.5)
        ax.set_xlabel("\n".join(label), fontsize=9, family="monospace", loc="left")
        for side in ax.spines.values():
            side.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def describe(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """`rnnlab info` lines of a ctc run: the network, its size, the alphabet and frame settings, training."""
    m = config["model"]
    both = m.get("bidirectional", True)
    stack = f"{m.get('layers', '?')} x {'bidirectional ' if both else ''}{m.get('cell', '?')} {m.get('hidden', '?')}"
    alphabet = str(config.get("alphabet", ""))
    window, height = m.get("window", "?"), m.get("height", "?")
    weights = Path(run_dir) / WEIGHTS
    params = f"{sum(math.prod(s) for s in tensor_shapes(weights).values()):,}" if weights.exists() else "?"
    held_out = config.get("held_out_cer")
    lines = [
        f"model        frames of {window} columns x {height} px -> linear {m.get('embed', '?')} -> {stack} -> "
        f"blank + {len(alphabet)} characters (CTC)",
        f"parameters   {params}",
        f"data         {config.get('task') or 'user data'}; alphabet {alphabet!r}",
        f"training     Adam lr {m.get('lr', '?')}, batch {m.get('batch_size', '?')}, "
        f"{m.get('steps', '?')} steps at most, seed {m.get('seed', '?')}",
    ]
    if isinstance(held_out, dict):
        lines.append(
            f"held-out CER {held_out.get('cer', '?')} greedy on {held_out.get('lines', '?')} lines (empty output 1.0)"
        )
    return lines
