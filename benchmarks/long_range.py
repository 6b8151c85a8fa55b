"""Which training methods solve the lectures' long-range tasks, and how fast: a table of steps and seconds.

    python benchmarks/long_range.py [--cap 25] [--lengths 10 30 100 200] [--tasks adding copy reverse]

For each task and length T, every method trains on fresh batches until the task's success test passes or
the per-run time cap runs out (one thread, seed 0, H = 64). Binary addition has no delay: it trains on
8-bit numbers and must reach ≥ 99% whole-number exact match on 8-, 16-, 32- and 64-bit numbers.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import write_result
from rnnlab.nn.cells import CELL_NAMES
from rnnlab.tasks.long_range import TASKS, TaskResult, train_task

# (label, cell, optimizer, init)
METHODS = [
    ("rnn-tanh + SGD", "rnn-tanh", "sgd", "default"),
    ("rnn-tanh + ESN init + Nesterov", "rnn-tanh", "nesterov", "esn"),
    ("rnn-tanh + HF", "rnn-tanh", "hf", "default"),
    ("lstm + Adam", "lstm", "adam", "default"),
    ("gru + Adam", "gru", "adam", "default"),
    ("mingru + Adam", "mingru", "adam", "default"),
]


def cell_text(result: TaskResult) -> str:
    """✓ steps / seconds when solved, else ✗ with the last metric (the worst of the held-out batches)."""
    worst = max(result.metrics.values()) if TASKS[result.task].loss == "mse" else min(result.metrics.values())
    name = "MSE" if TASKS[result.task].loss == "mse" else "acc"
    if result.solved:
        return f"✓ {result.steps} steps, {result.seconds:.0f} s"
    return f"✗ {name} {worst:.3f} ({result.steps} steps, {result.seconds:.0f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=25.0, help="seconds per run")
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 30, 100, 200])
    parser.add_argument("--tasks", nargs="+", default=["binary-addition", "adding", "copy", "reverse"])
    parser.add_argument("--steps", type=int, default=100_000, help="most updates per run (the cap usually binds)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = [m for m in METHODS if m[1] in CELL_NAMES]
    skipped = [m[0] for m in METHODS if m[1] not in CELL_NAMES]
    rows = []
    started = time.perf_counter()
    for task in args.tasks:
        for T in [8] if task == "binary-addition" else args.lengths:
            cells = []
            for label, cell, optimizer, init in methods:
                result = train_task(
                    task, cell=cell, optimizer=optimizer, init=init, length=T, steps=args.steps, time_limit=args.cap
                )
                cells.append(cell_text(result))
                print(f"{task:16s} T={T:<4d} {label:32s} {cells[-1]}", flush=True)
            rows.append(f"| {task} | {T} | " + " | ".join(cells) + " |")
    total = time.perf_counter() - started
    header = "| task | T | " + " | ".join(m[0] for m in methods) + " |\n|---|---|" + "---|" * len(methods)
    criteria = "\n".join(f"- **{name}**: {TASKS[name].criterion}" for name in args.tasks)
    body = f"""
Each cell: ✓ when the success test passed on held-out data (512 sequences), with the updates and seconds it
took; ✗ when the {args.cap:.0f} s cap (or {args.steps} updates) ran out, with the last held-out metric (the
worst over binary addition's 8/16/32/64-bit sets). One run per cell (seed 0), H = 64, one thread, under
`nice -n 19` on a shared machine. First-order methods: 64 sequences per update, gradient-norm clip 1.0,
evaluated every 25 updates; SGD lr 0.05; Nesterov momentum 0.9, lr 0.01, after the ESN initialisation
(spectral radius 1.1); Adam lr 0.01. HF: 256 sequences per update, a quarter of them for the curvature,
structural damping μ = 0.3, evaluated after every update. Binary addition trains on 8-bit numbers (T = 9).

Success tests:
{criteria}

{header}
{chr(10).join(rows)}

Whole table: {total / 60:.1f} minutes.{" Not run (cell absent): " + ", ".join(skipped) + "." if skipped else ""}
"""
    path = write_result("long_range.md", "Long-range tasks: which method solves them, and how fast", body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
