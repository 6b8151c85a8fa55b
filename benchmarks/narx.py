"""A delay-tap (NARX) network against the Elman network on a task that needs memory beyond the window.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/narx.py [--steps 1500] [--seeds 3] [--max-distance 16]

The task (a delayed latch with distractors): a sequence of noise symbols holds one signal bit (A or B) d steps
before a query symbol at the end; the answer at the query is the bit. d is drawn uniformly from 1..max-distance in
training and each d is tested on its own, on fresh sequences. The NARX cell sees the last k + 1 inputs, x_{t-k..t}
(`--cell narx`, rnnlab.nn.cells.NARXCell), and nothing older; the Elman cell (`--cell rnn-tanh`) carries its
previous hidden state. Expected: NARX(k) answers when d <= k and guesses (50%) when d > k; Elman answers at every
d. Every model: embedding 8 -> one cell of H = 32 -> a linear read-out at the query, Adam 3e-3 with clipping in
rnnlab's training loop, the same batches (seeded), one thread.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common import write_result
from rnnlab.config import TrainConfig
from rnnlab.nn.cells import NARX_DELAYS, NARXCell, make_cell
from rnnlab.train.loop import Loop

SIGNALS, NOISE, QUERY = (0, 1), (2, 3, 4), 5  # symbols: the bit, the distractors, the query
V, D, H, N = 6, 8, 32, 64
TEST = 4000  # test sequences per distance and seed


def latch_batch(n: int, longest: int, g: torch.Generator, d: int | None = None) -> tuple[Tensor, Tensor]:
    """n sequences of length longest + 1: noise, the bit d steps before the end, the query last; and the bits."""
    x = torch.randint(NOISE[0], NOISE[-1] + 1, (n, longest + 1), generator=g)
    delay = torch.randint(1, longest + 1, (n,), generator=g) if d is None else torch.full((n,), d)
    bits = torch.randint(0, 2, (n,), generator=g)
    x[torch.arange(n), longest - delay] = bits
    x[:, -1] = QUERY
    return x, bits


class Net(nn.Module):
    """tokens (N, T) -> logits of the bit at the last step."""

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.embed, self.cell, self.head = nn.Embedding(V, D), cell, nn.Linear(H, 2)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.cell(self.embed(x))
        return self.head(out[:, -1])


class _Train(Loop):
    """rnnlab's loop over fresh latch batches."""

    def __init__(self, net: Net, config: TrainConfig, longest: int, seed: int) -> None:
        super().__init__(net, torch.optim.Adam(net.parameters(), lr=config.lr), config)
        self.longest, self.generator = longest, torch.Generator().manual_seed(seed)

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        return latch_batch(N, self.longest, self.generator)

    def loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, bits = batch
        return F.cross_entropy(self.model(x), bits)


def accuracy_by_distance(cell: nn.Module, steps: int, seed: int, longest: int) -> tuple[list[float], float]:
    """Train a fresh net around `cell`; its test accuracy at each distance 1..longest, and the CPU seconds."""
    torch.manual_seed(seed)
    net = Net(cell)
    config = TrainConfig(lr=3e-3, warmup=0, clip_norm=1.0, max_steps=steps, batch_size=N, seq_len=longest + 1)
    start = time.process_time()
    _Train(net, config, longest, seed).run()
    seconds = time.process_time() - start
    g = torch.Generator().manual_seed(10_000 + seed)  # test sequences no training batch drew
    net.eval()
    with torch.no_grad():
        accuracy = []
        for d in range(1, longest + 1):
            x, bits = latch_batch(TEST, longest, g, d)
            accuracy.append(float((net(x).argmax(1) == bits).float().mean()))
    return accuracy, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps per model")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-distance", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    longest = args.max_distance
    models = {  # label -> a fresh cell
        "NARX k=4": lambda: NARXCell(D, H, delays=4),
        f"NARX k={NARX_DELAYS} (--cell narx)": lambda: make_cell("narx", D, H),
        "Elman (--cell rnn-tanh)": lambda: make_cell("rnn-tanh", D, H),
    }
    results: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    for label, build in models.items():
        runs = [accuracy_by_distance(build(), args.steps, seed, longest) for seed in range(args.seeds)]
        results[label] = [acc for acc, _ in runs]
        seconds[label] = sum(s for _, s in runs) / len(runs)
        print(label, " ".join(f"{sum(a) / len(a):.2f}" for a in zip(*results[label], strict=True)), flush=True)

    header = "| distance d | " + " | ".join(models) + " |"
    lines = [header, "|" + "---|" * (len(models) + 1)]
    for d in range(1, longest + 1):
        cells = []
        for label in models:
            accs = [run[d - 1] for run in results[label]]
            cells.append(f"{sum(accs) / len(accs):.3f} (min {min(accs):.3f})")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")

    def mean(label: str, lo: int, hi: int) -> str:
        values = [run[d - 1] for run in results[label] for d in range(lo, min(hi, longest) + 1)]
        return f"{sum(values) / len(values):.3f}" if values else "-"

    summary = [
        "| model | mean accuracy, d <= k | mean accuracy, d > k | CPU s per model |",
        "|---|---|---|---|",
    ]
    for label, k in zip(models, (4, NARX_DELAYS, None), strict=True):
        if k is None:
            summary.append(f"| {label} | {mean(label, 1, longest)} (all d) | - | {seconds[label]:.1f} |")
        else:
            summary.append(f"| {label} | {mean(label, 1, k)} | {mean(label, k + 1, longest)} | {seconds[label]:.1f} |")
    body = f"""
Delayed latch with distractors: one signal bit among noise symbols, asked for by a query d steps later (d drawn
from 1..{longest} in training; {TEST} fresh test sequences per d). Every model: embedding {D} -> one cell, H = {H}
-> read-out at the query; Adam 3e-3, clip 1, batch {N}, {args.steps} steps; {args.seeds} seeds (mean, and the
worst seed). Chance is 0.5; a guesser's accuracy on {TEST} sequences has a standard error of {0.5 / TEST**0.5:.3f}.

{chr(10).join(lines)}

{chr(10).join(summary)}

The NARX cell sees x_(t-k..t) and nothing older (tests/nn/test_narx.py checks it), so once the bit is more than
k steps back it can only guess; the Elman network keeps the bit in its hidden state for as long as it is needed.
"""
    path = write_result("narx.md", "NARX (delay taps) against Elman (previous hidden state)", body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
