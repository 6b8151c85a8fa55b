"""Long-range tasks from the lectures, a small per-step sequence model, and a trainer with a success test.

Every task makes batches `(x, y, mask)`: inputs x (N, T, D), targets y (class ids (N, T) or values (N, T, 1))
and a mask (N, T) of the positions that are scored; the loss and the metric look only there.

- repeated-ones (the lectures' detector): one random bit per step; the target at step t is 1 when bits t − 1 and
  t are both 1. Always answering 0 scores 75%; solved when the per-step accuracy is ≥ 99%. The lectures'
  hand-built 3-unit ReLU RNN (`rnnlab.reference.examples`) solves it at any T without training.
- binary-addition: two bits per step, least-significant first, plus one padding step for the final carry;
  the target is the sum, bit by bit. Trained on `length`-bit numbers (8 by default); solved when whole-number
  exact match is ≥ 99% on 8-, 16-, 32- and 64-bit numbers (length generalisation).
- adding (Hochreiter & Schmidhuber 1997; the variant of Le et al. 2015): values in [0, 1] with two markers,
  one in each half of the T steps; the target at the last step is the sum of the two marked values.
  Predicting the mean (1) scores an MSE of var = 1/6 ≈ 0.167; solved when MSE < 0.01.
- copy (memory): 5 symbols out of 8, then T − 1 blanks and a "go" marker; the symbols must be reproduced in
  the next 5 steps. Chance is 12.5%; solved when recall accuracy is ≥ 99%.
- reverse: T symbols out of 8, a delimiter, then the T symbols in reverse order (an encoder reads, then
  emits). Chance is 12.5%; solved when accuracy over the emitted symbols is ≥ 99%.

Time limits and reported seconds are CPU seconds of this process's training steps (`time.process_time()`,
evaluation not counted): with one thread that is the training's own compute time, unaffected by other jobs
sharing the machine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.config import TrainConfig
from rnnlab.errors import RnnlabError
from rnnlab.nn import registry
from rnnlab.nn.init import esn_init_
from rnnlab.nn.recurrent import Recurrent
from rnnlab.train.hessian_free import HessianFree, masked_loss
from rnnlab.train.loop import Diverged, Loop
from rnnlab.train.optim import build_optimizer
from rnnlab.train.progress import Reporter
from rnnlab.ui import console

SYMBOLS = 8  # alphabet of the copy and reverse tasks
COPY_LENGTH = 5  # symbols to remember in the copy task
ADDITION_TEST_BITS = (8, 16, 32, 64)
OPTIMIZERS = ("sgd", "nesterov", "rmsprop", "adam", "hf")
INITS = ("default", "esn")


class Batch(NamedTuple):
    """Inputs (N, T, D), targets (N, T) or (N, T, 1), scored positions (N, T)."""

    x: Tensor
    y: Tensor
    mask: Tensor


def bits_to_ints(bits: Tensor) -> list[int]:
    """(N, B) bits, least-significant first -> N Python integers."""
    return [sum(int(b) << i for i, b in enumerate(row)) for row in bits.tolist()]


def binary_addition_batch(N: int, bits: int, generator: torch.Generator) -> Batch:
    """a + b for random `bits`-bit a, b: inputs (N, bits + 1, 2), targets the bits + 1 sum bits."""
    if bits < 1:
        raise RnnlabError(f"binary addition needs at least 1 bit, got {bits}")
    x = torch.zeros(N, bits + 1, 2)
    x[:, :bits] = torch.randint(0, 2, (N, bits, 2), generator=generator).float()
    carry, sums = torch.zeros(N), []
    for t in range(bits + 1):  # ripple-carry adder
        total = x[:, t, 0] + x[:, t, 1] + carry
        sums.append(total % 2)
        carry = torch.div(total, 2, rounding_mode="floor")
    return Batch(x, torch.stack(sums, 1).long(), torch.ones(N, bits + 1))


def repeated_ones_batch(N: int, T: int, generator: torch.Generator) -> Batch:
    """Random bits (N, T, 1); the target (N, T) is 1 where a bit and the one before it are both 1."""
    if T < 1:
        raise RnnlabError(f"the repeated-ones task needs T >= 1, got {T}")
    bits = torch.randint(0, 2, (N, T), generator=generator)
    previous = torch.cat([torch.zeros_like(bits[:, :1]), bits[:, :-1]], 1)
    return Batch(bits.unsqueeze(-1).float(), bits & previous, torch.ones(N, T))


def hand_built_repeated_ones(batch: Batch) -> float:
    """Per-step accuracy of the lectures' hand-built ReLU detector (`rnnlab.reference.examples`) on a batch."""
    from rnnlab.reference.examples import repeated_ones_detector

    outputs = torch.tensor([repeated_ones_detector(row) for row in batch.x[..., 0].long().tolist()])
    return float((outputs == batch.y).float().mean())


def adding_batch(N: int, T: int, generator: torch.Generator) -> Batch:
    """Values and two markers (one per half) -> the sum of the marked values at the last step."""
    if T < 2:
        raise RnnlabError(f"the adding problem needs T >= 2, got {T}")
    values = torch.rand(N, T, generator=generator)
    rows = torch.arange(N)
    markers = torch.zeros(N, T)
    markers[rows, torch.randint(0, T // 2, (N,), generator=generator)] = 1
    markers[rows, torch.randint(T // 2, T, (N,), generator=generator)] = 1
    y = torch.zeros(N, T, 1)
    y[:, -1, 0] = (values * markers).sum(1)
    mask = torch.zeros(N, T)
    mask[:, -1] = 1
    return Batch(torch.stack([values, markers], -1), y, mask)


def _symbol_batch(symbols: Tensor, delay: int, recall: Tensor) -> Batch:
    """One-hot inputs [symbols, delay − 1 blanks, go, blanks while recalling]; targets `recall` at the end."""
    N, S = symbols.shape
    R = recall.shape[1]
    blank, go = SYMBOLS, SYMBOLS + 1
    ids = torch.full((N, S + delay + R), blank)
    ids[:, :S] = symbols
    ids[:, S + delay - 1] = go
    y = torch.zeros_like(ids)
    y[:, -R:] = recall
    mask = torch.zeros(ids.shape)
    mask[:, -R:] = 1
    return Batch(F.one_hot(ids, SYMBOLS + 2).float(), y, mask)


def copy_batch(N: int, T: int, generator: torch.Generator) -> Batch:
    """5 random symbols, T steps of delay ending in a go marker, then the 5 symbols as targets."""
    if T < 1:
        raise RnnlabError(f"the copy task needs a delay T >= 1, got {T}")
    symbols = torch.randint(0, SYMBOLS, (N, COPY_LENGTH), generator=generator)
    return _symbol_batch(symbols, T, symbols)


def reverse_batch(N: int, T: int, generator: torch.Generator) -> Batch:
    """T random symbols, a delimiter, then the T symbols reversed as targets."""
    if T < 1:
        raise RnnlabError(f"the reverse task needs T >= 1, got {T}")
    symbols = torch.randint(0, SYMBOLS, (N, T), generator=generator)
    return _symbol_batch(symbols, 1, symbols.flip(1))


@dataclass(frozen=True)
class Task:
    """A task: its batches, sizes, loss and success test."""

    name: str
    batch: Callable[[int, int, torch.Generator], Batch]
    input_size: int
    output_size: int
    loss: str  # "cross_entropy" | "mse"
    default_length: int
    criterion: str  # the success test, in words


TASKS = {
    "repeated-ones": Task(
        "repeated-ones", repeated_ones_batch, 1, 2, "cross_entropy", 10, "accuracy >= 99% per step (all 0: 75%)"
    ),
    "binary-addition": Task(
        "binary-addition", binary_addition_batch, 2, 2, "cross_entropy", 8, "exact match >= 99% at 8-64 bits"
    ),
    "adding": Task("adding", adding_batch, 2, 1, "mse", 100, "MSE < 0.01 (predicting 1: 0.167)"),
    "copy": Task("copy", copy_batch, SYMBOLS + 2, SYMBOLS, "cross_entropy", 100, "recall accuracy >= 99%"),
    "reverse": Task("reverse", reverse_batch, SYMBOLS + 2, SYMBOLS, "cross_entropy", 10, "accuracy >= 99%"),
}


class SequenceModel(nn.Module):
    """A recurrent layer of any cell and a linear readout at every step: (N, T, D) -> (outputs, hidden)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int, *, fused: bool = True) -> None:
        super().__init__()
        self.rnn = Recurrent(cell, input_size, hidden_size, fused=fused)
        self.readout = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Outputs (N, T, O) and the hidden states (N, T, H) that HF's structural damping needs."""
        hidden, _ = self.rnn(x)
        return self.readout(hidden), hidden


@torch.no_grad()
def evaluate(task: Task, model: nn.Module, batches: dict[str, Batch]) -> tuple[dict[str, float], bool]:
    """The task's metric on each held-out batch, and whether the success test passes."""
    metrics = {}
    for label, b in batches.items():
        outputs, _ = model(b.x)
        if task.loss == "mse":
            metrics[label] = float(masked_loss("mse", outputs, b.y, b.mask))
        elif task.name == "binary-addition":  # whole-number exact match
            metrics[label] = float((outputs.argmax(-1) == b.y).all(1).float().mean())
        else:
            correct = (outputs.argmax(-1) == b.y).float()
            metrics[label] = float((correct * b.mask).sum() / b.mask.sum())
    if task.loss == "mse":
        return metrics, all(v < 0.01 for v in metrics.values())
    return metrics, all(v >= 0.99 for v in metrics.values())


def eval_batches(task: Task, length: int, N: int, generator: torch.Generator) -> dict[str, Batch]:
    """Held-out batches: 8/16/32/64-bit numbers for binary addition, else one batch at the training length."""
    if task.name == "binary-addition":
        return {f"{bits}-bit": task.batch(N, bits, generator) for bits in ADDITION_TEST_BITS}
    return {f"T={length}": task.batch(N, length, generator)}


DEFAULT_LR = {"sgd": 0.05, "nesterov": 0.01, "rmsprop": 1e-3, "adam": 1e-2}
ESN_RADIUS = 1.1  # ρ(W_hh) for --init esn: Sutskever et al. (2013) found 1.1 best for tanh units
HF_BATCH = 256  # sequences per HF update (gradient batch)
HF_CURVATURE_FRACTION = 0.25  # of them for the curvature products
HF_MAX_CG = 100  # CG iterations per update at most
HF_STRUCTURAL_DAMPING = 0.3


@dataclass
class TaskResult:
    """How a training run went: solved or not, after how many steps and seconds, and the last metrics."""

    task: str
    cell: str
    optimizer: str
    init: str
    length: int
    solved: bool
    steps: int
    seconds: float
    metrics: dict[str, float]
    history: list[tuple[int, float, dict[str, float]]] = field(default_factory=list)  # (step, seconds, metrics)


def make_model(task: Task, cell: str, hidden: int, init: str, seed: int) -> SequenceModel:
    """The sequence model for `task`, with the requested initialisation (ESN: spectral radius `ESN_RADIUS`)."""
    if init not in INITS:
        raise RnnlabError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")
    torch.manual_seed(seed)
    model = SequenceModel(cell, task.input_size, hidden, task.output_size)
    if init == "esn":
        try:
            esn_init_(model.rnn, ESN_RADIUS, generator=torch.Generator().manual_seed(seed))
        except ValueError as exc:
            raise RnnlabError(f"--init esn: {exc} (--cell {cell})") from None
    return model


def train_task(
    name: str,
    *,
    cell: str = "lstm",
    optimizer: str = "adam",
    init: str = "default",
    length: int | None = None,
    steps: int = 2000,
    seed: int = 0,
    hidden: int = 64,
    batch_size: int | None = None,
    lr: float | None = None,
    clip_norm: float = 1.0,
    time_limit: float | None = None,
    eval_every: int | None = None,
    callback: Callable[[int, float, dict[str, float]], None] | None = None,
) -> TaskResult:
    """Train on fresh batches until the success test passes, `steps` updates, or `time_limit` CPU seconds.

    First-order optimisers take `batch_size` (64) sequences per step and are evaluated every `eval_every`
    (25) steps, with the gradient norm clipped to `clip_norm`; HF takes 256 per step (a quarter of them for the
    curvature, structural damping μ = 0.3) and is evaluated every step. Training runs in rnnlab's training loop
    (rnnlab.train.loop): a non-finite loss or weight rolls back to the last evaluated step and halves the rate.
    """
    if name not in TASKS:
        raise RnnlabError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    if optimizer not in OPTIMIZERS:
        raise RnnlabError(f"unknown optimizer {optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    registry.get(cell)  # an unknown cell is an error before any work
    task = TASKS[name]
    length = task.default_length if length is None else length
    if steps < 1 or hidden < 1:
        raise RnnlabError("--steps and --hidden must be >= 1")
    hf = optimizer == "hf"
    eval_every = eval_every or (1 if hf else 25)
    settings = TrainConfig(
        optimizer=optimizer,
        lr=lr or DEFAULT_LR.get(optimizer, 1.0),  # HF has no learning rate
        momentum=0.0 if optimizer == "sgd" else 0.9,  # plain SGD; Nesterov and RMSprop with momentum 0.9
        clip_norm=clip_norm,
        warmup=0,
        decay="none",
        max_steps=steps,
        max_time=time_limit or 0.0,
        eval_every=eval_every,
        checkpoint_every=eval_every,
        batch_size=batch_size or (HF_BATCH if hf else 64),
        seq_len=1,  # the reporter counts sequences
        seed=seed,
    )
    model = make_model(task, cell, hidden, init, seed)
    held_out = eval_batches(task, length, 512, torch.Generator().manual_seed(seed + 1))
    loop = _TaskLoop(task, model, settings, length, held_out, callback)
    loop.run()
    p = loop.progress
    return TaskResult(
        name, cell, optimizer, init, length, loop.goal_reached, p.step, p.elapsed, loop.metrics, loop.history
    )


class _TaskLoop(Loop):
    """The long-range tasks' hooks over the training loop: fresh batches from the task's generator, its masked
    loss, Hessian-free's own step, and the success test on held-out batches as the goal."""

    evaluates = True

    def __init__(
        self,
        task: Task,
        model: SequenceModel,
        config: TrainConfig,
        length: int,
        held_out: dict[str, Batch],
        callback: Callable[[int, float, dict[str, float]], None] | None,
    ) -> None:
        optimizer: torch.optim.Optimizer | HessianFree
        if config.optimizer == "hf":
            optimizer = HessianFree(
                model,
                task.loss,
                structural_damping=HF_STRUCTURAL_DAMPING,
                curvature_fraction=HF_CURVATURE_FRACTION,
                max_cg_iters=HF_MAX_CG,
            )
        else:
            optimizer = build_optimizer(model, config)
        show = callback is not None and console.is_terminal  # a progress bar beside the callback's lines
        reporter = Reporter(None, config, config.max_steps, show, unit="seq")
        super().__init__(model, optimizer, config, reporter=reporter, clock=time.process_time)
        self.task, self.length, self.held_out, self.callback = task, length, held_out, callback
        self.generator = torch.Generator().manual_seed(config.seed)
        self.metrics: dict[str, float] = {}
        self.history: list[tuple[int, float, dict[str, float]]] = []

    def batch(self, step: int) -> Batch:
        return self.task.batch(self.config.batch_size, self.length, self.generator)

    def loss(self, batch: Batch) -> Tensor:
        outputs, _ = self.model(batch.x)
        return masked_loss(self.task.loss, outputs, batch.y, batch.mask)

    def update(self, batch: Batch) -> float:
        """HF: one step that ends by the time budget (CPU seconds); the others: the loop's first-order step."""
        if not isinstance(self.optimizer, HessianFree):
            return super().update(batch)
        budget = self.config.max_time
        deadline = self.clock() + budget - self.progress.elapsed if budget else None
        loss = self.optimizer.step(batch.x, batch.y, batch.mask, deadline).loss_before
        if not math.isfinite(loss):
            raise Diverged(loss)
        return loss

    def evaluate(self) -> None:
        """The task's metrics on the held-out batches; a passed success test ends training."""
        p = self.progress
        self.metrics, self.goal_reached = evaluate(self.task, self.model, self.held_out)
        self.history.append((p.step, p.elapsed, self.metrics))
        if self.callback is not None:
            self.callback(p.step, p.elapsed, self.metrics)
