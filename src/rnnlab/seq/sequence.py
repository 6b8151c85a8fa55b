"""What the sequence architectures (classify, tagger, seq2seq, timeseries) share: the recurrent shape, a
token vocabulary, padding, their hooks over the shared training loop (`fit`), and run-directory save/load
with a `kind`.

Each architecture is a different way of wiring `rnnlab.nn.recurrent.Recurrent` (any `--cell`):
many-to-one (classify), many-to-many (tagger, timeseries), many-to-one + one-to-many (seq2seq).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnlab import rundir
from rnnlab.config import TrainConfig, max_time_opt, opt
from rnnlab.errors import RnnlabError
from rnnlab.nn import registry
from rnnlab.nn.recurrent import Recurrent, State, upgrade_state_dict
from rnnlab.rundir import WEIGHTS, atomic_save_tensors, load_state_dict, load_tensors, write_run_config
from rnnlab.train.loop import Loop
from rnnlab.train.optim import build_optimizer
from rnnlab.train.progress import Reporter
from rnnlab.ui import console

PAD, UNK, START, END = "<pad>", "<unk>", "<START>", "<END>"
LOG_EVERY = 100  # training steps between log lines, and between the copies a divergence rolls back to


@dataclass
class SeqConfig:
    """The recurrent part of every sequence model: cell, sizes and training budget."""

    cell: str = opt("gru", "Recurrent cell (any of `rnnlab train --cell`).", "Model", choices=registry.names)
    hidden: int = opt(64, "Hidden units H.", "Model")
    layers: int = opt(1, "Recurrent layers L.", "Model")
    embed: int = opt(32, "Embedding size D.", "Model")
    dropout: float = opt(0.0, "Dropout between layers.", "Model", flag=None)  # not offered on the command line
    steps: int = opt(500, "Training steps.", "Budget", flag="--max-steps")
    max_time: float = max_time_opt()
    batch_size: int = opt(32, "Batch size N.", "Optimisation")
    lr: float = opt(3e-3, "Adam learning rate.", "Optimisation")
    seed: int = opt(0, "Random seed (data and weights).", "Optimisation")

    def validate(self) -> None:
        """Raise RnnlabError for impossible values."""
        spec = registry.get(self.cell)
        for name in ("hidden", "layers", "embed", "steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise RnnlabError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.max_time < math.inf:
            raise RnnlabError(f"--max-time must be a finite duration >= 0, got {self.max_time}")
        if spec.same_width and self.embed != self.hidden:
            raise RnnlabError(f"--cell {self.cell} needs --embed equal to --hidden")
        if not 0.0 <= self.dropout < 1.0:
            raise RnnlabError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise RnnlabError(f"--lr must be > 0, got {self.lr}")

    def recurrent(self, input_size: int | None = None) -> Recurrent:
        """The L-layer recurrent stack these settings describe."""
        return Recurrent(self.cell, input_size or self.embed, self.hidden, self.layers, self.dropout)

    @property
    def state_size(self) -> int:
        """Numbers in one sequence's recurrent state: L x H for each of its parts (twice for the LSTM's (h, c))."""
        return len(registry.get(self.cell).state) * self.layers * self.hidden

    def vector_state(self, x: Tensor) -> State:
        """(N, state_size) -> tanh, shaped as the stack's state ((L, N, H), or (h, c) for the LSTM): a first
        state computed from one vector per sequence (an image, a class)."""
        parts, L, H = self.state_size // (self.layers * self.hidden), self.layers, self.hidden
        h = torch.tanh(x).view(x.shape[0], parts, L, H).permute(1, 2, 0, 3).contiguous()
        return (h[0], h[1]) if parts == 2 else h[0]


class Vocab:
    """Token strings <-> ids; `<pad>` is 0 and `<unk>` 1, then any extra specials, then the tokens."""

    def __init__(self, tokens: Iterable[str], specials: tuple[str, ...] = ()) -> None:
        head = [PAD, UNK, *specials]
        self.tokens = head + sorted(set(tokens) - set(head))
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.index.get(t, 1) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]


def pad(seqs: list[list[int]], value: int = 0) -> tuple[Tensor, Tensor]:
    """Right-pad id lists into (N, T) plus their lengths (N,)."""
    if not seqs or min(len(s) for s in seqs) == 0:
        raise RnnlabError("every sequence needs at least one token")
    T = max(len(s) for s in seqs)
    out = torch.full((len(seqs), T), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s)
    return out, torch.as_tensor([len(s) for s in seqs])


def last_output(out: Tensor, lengths: Tensor) -> Tensor:
    """(N, T, H) outputs -> (N, H) at each sequence's last real step (padding after it is ignored)."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
    return out.gather(1, index).squeeze(1)


def select_state(state: State, index: Tensor) -> State:
    """Pick batch rows of a state (L, N, H) or (h, c), e.g. to reorder beams."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


def fit(
    module: nn.Module,
    batch_loss: Callable[[torch.Generator], Tensor],
    config: SeqConfig,
    log: Callable[[int, float], None] | None = None,
) -> float:
    """Adam with global-norm clipping and a cosine decay to 10% of `config.lr` over `config.steps` steps
    or `config.max_time` seconds, whichever ends first; returns the mean loss of the last 10% of steps.
    `batch_loss(generator)` draws a batch and returns its loss; `log(step, mean loss)` hears every 100 steps.

    It runs in rnnlab's training loop (rnnlab.train.loop), with the language model's divergence policy: a
    non-finite loss, gradient or weight rolls back to a copy kept in memory every 100 steps and halves the
    learning rate, and after 8 rollbacks training stops with an RnnlabError. Ctrl-C ends training early
    and keeps the weights it has reached.
    """
    torch.manual_seed(config.seed)
    settings = TrainConfig(
        lr=config.lr,
        warmup=0,
        decay="cosine",
        min_lr_ratio=0.1,
        clip_norm=1.0,
        max_steps=config.steps,
        max_time=config.max_time,
        checkpoint_every=LOG_EVERY,
        batch_size=config.batch_size,
        seq_len=1,  # the reporter counts sequences
        seed=config.seed,
    )
    loop = _Fit(module, batch_loss, settings, log)
    module.train()
    loop.run()
    module.eval()
    return sum(loop.recent) / len(loop.recent)


class _Fit(Loop):
    """The sequence apps' hooks over the training loop: `batch_loss` draws and scores a batch; `log` hears
    the mean of the recent losses."""

    def __init__(
        self,
        module: nn.Module,
        batch_loss: Callable[[torch.Generator], Tensor],
        config: TrainConfig,
        log: Callable[[int, float], None] | None,
    ) -> None:
        show = log is not None and console.is_terminal  # a progress bar beside the log's lines
        reporter = Reporter(None, config, config.max_steps, show, unit="seq")
        super().__init__(module, build_optimizer(module, config), config, reporter=reporter)
        self.batch_loss, self.log = batch_loss, log
        self.generator = torch.Generator().manual_seed(config.seed)
        self.recent: deque[float] = deque(maxlen=max(config.max_steps // 10, 1))

    def batch(self, step: int) -> torch.Generator:
        """`batch_loss` draws the batch itself, from this generator."""
        return self.generator

    def loss(self, batch: torch.Generator) -> Tensor:
        return self.batch_loss(batch)

    def after_step(self, batch: torch.Generator, loss: float) -> None:
        self.recent.append(loss)
        step = self.progress.step
        if self.log is not None and (step % LOG_EVERY == 0 or step == self.config.max_steps):
            self.log(step, sum(self.recent) / len(self.recent))


def save_run(out: Path, kind: str, config: SeqConfig, module: nn.Module, extra: dict[str, Any]) -> Path:
    """Write `out/config.json` (kind, shape, vocabularies, ...) and `out/model.safetensors`, atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(out / WEIGHTS, module.state_dict())
    write_run_config(out, kind, dataclasses.asdict(config), extra)
    return out


def read_run(run_dir: Path, kind: str) -> tuple[dict[str, Any], SeqConfig]:
    """config.json of a `kind` run, with its SeqConfig; a run of another kind is a clear error."""
    data = rundir.read_run(Path(run_dir), kind)
    names = {f.name for f in dataclasses.fields(SeqConfig)}
    config = SeqConfig(**{k: v for k, v in data["model"].items() if k in names})
    config.validate()
    return data, config


def load_weights(module: nn.Module, run_dir: Path) -> nn.Module:
    """Load `run_dir/model.safetensors` strictly into `module` and put it in eval mode."""
    path = Path(run_dir) / WEIGHTS
    load_state_dict(module, upgrade_state_dict(load_tensors(path)), path)
    return module.eval()
