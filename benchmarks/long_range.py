"""Which training methods solve the lectures' tasks, and how fast: a table of updates and CPU seconds.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/long_range.py [--cap 60] [--lengths 10 30 100 200]
        [--tasks repeated-ones binary-addition adding copy reverse]

For each task and length T, every method trains on fresh batches until the task's success test passes on
held-out data or the per-run cap of CPU seconds runs out (one thread, seed 0, H = 64). CPU seconds of this
process (`time.process_time()`), not wall-clock seconds, so that other jobs on a shared machine do not
decide the outcome. Binary addition has no delay: each method trains once on 8-bit numbers, and its rows
are the test widths 8, 16, 32 and 64 bits (length generalisation).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from common import write_result
from rnnlab.lab import long_range as lr
from rnnlab.lab.long_range import TASKS, TaskResult, eval_batches, hand_built_repeated_ones, train_task

# (label, cell, optimizer, init, learning rate; None for HF, which has none)
METHODS = [
    ("rnn-tanh + SGD", "rnn-tanh", "sgd", "default", 0.2),
    ("rnn-tanh + ESN init + Nesterov", "rnn-tanh", "nesterov", "esn", 0.01),
    ("rnn-tanh + HF", "rnn-tanh", "hf", "default", None),
    ("lstm + Adam", "lstm", "adam", "default", 0.01),
    ("gru + Adam", "gru", "adam", "default", 0.01),
    ("mingru + Adam", "mingru", "adam", "default", 0.01),
]
ADDITION_ROWS = lr.ADDITION_TEST_BITS  # binary addition: one training run, one row per test width


def loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def metric_name(task: str) -> str:
    return "MSE" if TASKS[task].loss == "mse" else "acc"


def cell_text(result: TaskResult) -> str:
    """✓ updates / CPU seconds when solved, else ✗ with the last held-out metric."""
    if result.solved:
        return f"✓ {result.steps} upd, {result.seconds:.1f} s"
    (value,) = result.metrics.values()
    return f"✗ {metric_name(result.task)} {value:.3f} ({result.steps} upd, {result.seconds:.0f} s)"


def addition_cell(result: TaskResult, bits: int) -> str:
    """When `bits`-bit exact match first reached 99% during the run, else the last value."""
    label = f"{bits}-bit"
    for step, seconds, metrics in result.history:
        if metrics[label] >= 0.99:
            return f"✓ {step} upd, {seconds:.1f} s"
    return f"✗ acc {result.metrics[label]:.3f} ({result.steps} upd, {result.seconds:.0f} s)"


def hand_built_cell(task: str, T: int) -> str:
    """The lectures' hand-built detector exists for repeated-ones only; it is scored on the same held-out data."""
    if task != "repeated-ones":
        return "—"
    (batch,) = eval_batches(TASKS[task], T, 512, torch.Generator().manual_seed(1)).values()
    accuracy = hand_built_repeated_ones(batch)
    return f"{'✓' if accuracy >= 0.99 else '✗'} acc {accuracy:.3f}, no training"


def warm_up() -> None:
    """The first `vmap` of a process costs seconds of one-time set-up; pay it before any HF run is timed."""
    train_task("adding", cell="rnn-tanh", optimizer="hf", length=3, steps=1, hidden=4, batch_size=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=60.0, help="CPU seconds per run")
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 30, 100, 200])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--steps", type=int, default=1_000_000, help="most updates per run (the cap binds first)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before, wall, cpu = loadavg(), time.perf_counter(), time.process_time()
    warm_up()
    rows = []
    for task in args.tasks:
        lengths = [8] if task == "binary-addition" else args.lengths
        for T in lengths:
            results = []
            for label, cell, optimizer, init, rate in METHODS:
                result = train_task(
                    task, cell=cell, optimizer=optimizer, init=init, length=T, lr=rate, steps=args.steps,
                    time_limit=args.cap,
                )  # fmt: skip
                results.append(result)
                shown = cell_text(result) if task != "binary-addition" else str(result.metrics)
                print(f"{task:16s} T={T:<4d} {label:32s} {shown}", flush=True)
            if task == "binary-addition":
                for bits in ADDITION_ROWS:
                    cells = [addition_cell(r, bits) for r in results]
                    rows.append(f"| {task} (test width) | {bits} | — | " + " | ".join(cells) + " |")
            else:
                cells = [cell_text(r) for r in results]
                rows.append(f"| {task} | {T} | {hand_built_cell(task, T)} | " + " | ".join(cells) + " |")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    header = (
        "| task | T | hand-built | " + " | ".join(m[0] for m in METHODS) + " |\n|---|---|---|" + "---|" * len(METHODS)
    )
    criteria = "\n".join(f"- **{name}**: {TASKS[name].criterion}" for name in args.tasks)
    rates = ", ".join(f"{m[0]} {m[4]}" for m in METHODS if m[4] is not None)
    body = f"""
Run as `OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "?")} nice -n 19 python benchmarks/long_range.py`
on a machine shared with other jobs: load average {load_before} at the start, {loadavg()} at the end.
Whole table: {cpu / 60:.1f} CPU minutes ({wall / 60:.1f} minutes of wall-clock time).

Each cell: ✓ when the success test passed on held-out data (512 fresh sequences), with the updates and the
CPU seconds it took (this process's own compute time, one thread; other jobs on the machine do not count);
✗ when the cap of {args.cap:.0f} CPU seconds ran out, with the last held-out metric. One run per cell (seed 0),
H = 64 hidden units, so a ✗ means "not within {args.cap:.0f} CPU seconds", not "cannot learn".

- First-order methods: {64} sequences per update, gradient norm clipped to 1.0, evaluated every 25 updates;
  learning rates: {rates}. Nesterov momentum 0.9 after the ESN initialisation (spectral radius of W_hh
  {lr.ESN_RADIUS}, input weights N(0, 1/D), biases 0; Sutskever et al. 2013). SGD has no momentum.
- HF (Martens & Sutskever 2011): {lr.HF_BATCH} sequences per update, the first {lr.HF_CURVATURE_FRACTION:g} of
  them for the Gauss-Newton curvature products, at most {lr.HF_MAX_CG} CG iterations, structural damping
  μ = {lr.HF_STRUCTURAL_DAMPING}, evaluated after every update. The one-time `vmap` set-up of the process is
  paid before the table starts.
- Learning rates were chosen on copy (T = 10) and adding (T = 30) with another seed (1), not on these runs.
- Binary addition trains on 8-bit numbers (T = 9 steps); its rows are the widths of the *test* numbers, and a
  ✓ there is the first evaluation at which that width reached 99% whole-number exact match (training stops
  when all four pass at once).
- hand-built: the lectures' 3-unit ReLU detector of two 1s in a row, scored on the same held-out data.

Success tests:
{criteria}

{header}
{chr(10).join(rows)}
"""
    path = write_result("long_range.md", "Long-range tasks: which method solves them, and how fast", body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
