"""Data-parallel training on CPU: 2 torchrun processes (gloo) vs 1 process, same global batch and seed.

Both use the machine's 2 cores: one process with 2 threads, or two processes with 1 thread each (and, for
reference, one process with one thread: one core). The figure is training tokens/s from rnnlab's own
metrics.jsonl (the median of the windows after the first), beside it the loss at the last step, which must
agree between the two-core setups (same global batch, dropout 0).

    python benchmarks/ddp_throughput.py [--steps 60] [--hidden 256] [--rounds 2]
    python benchmarks/ddp_throughput.py --preset small     # the quality recipe's model, precision and batch
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_result


def run(out: Path, corpus: Path, args: argparse.Namespace, procs: int, threads: int) -> tuple[float, float, float]:
    """(median tokens/s, last train loss, wall seconds) of one training run."""
    model = ["--preset", args.preset] if args.preset else [
        "--hidden", str(args.hidden), "--embed", "64", "--layers", "1", "--batch-size", str(args.batch_size),
        "--seq-len", "64"]  # fmt: skip
    flags = [*model, "--max-steps", str(args.steps), "--log-every", "10", "--eval-every", "100000",
             "--checkpoint-every", "100000", "--dropout", "0", "--device", "cpu", "--val-fraction", "0"]  # fmt: skip
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
    cmd = [*(launcher if procs > 1 else [sys.executable]), "-m", "rnnlab", "train", str(corpus), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run([*cmd, *flags], check=True, env=env, capture_output=True)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "train_loss" in r]
    return statistics.median(r["tokens_per_s"] for r in rows[1:]), rows[-1]["train_loss"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--preset", default="", help="train this preset instead (its model, batch and precision)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_text

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.py"
        corpus.write_text(make_text(200_000))
        setups = {(1, 2): "1 process, 2 threads", (2, 1): "torchrun, 2 processes × 1 thread (gloo DDP)"}
        if args.preset:
            setups[(1, 1)] = "1 process, 1 thread (one core, for reference)"
        results: dict[tuple[int, int], list[tuple[float, float, float]]] = {setup: [] for setup in setups}
        for i in range(args.rounds):  # interleaved, so changing load on the machine hits every setup
            for procs, threads in setups:
                results[procs, threads].append(run(Path(tmp) / f"{procs}-{threads}-{i}", corpus, args, procs, threads))
    medians = {k: tuple(statistics.median(column) for column in zip(*v, strict=True)) for k, v in results.items()}
    one, two = medians[1, 2], medians[2, 1]
    faster = "2 processes (DDP)" if two[0] > one[0] else "1 process with 2 threads"
    model = (
        f"`--preset {args.preset}` (its model, batch and precision)"
        if args.preset
        else f"LSTM, 1 layer, H = {args.hidden}, global batch N = {args.batch_size}"
    )
    rows = "\n".join(
        f"| {name} | {speed:,.0f} | {speed / one[0]:.2f} | {wall:.1f} s | {loss:.6f} |"
        for (speed, loss, wall), name in ((medians[k], name) for k, name in setups.items())
    )
    body = f"""
{model} (2 processes: half the streams each), {args.steps} steps, dropout 0, CPU; medians of {args.rounds}
interleaved rounds.

| setup | tokens/s (median) | relative | wall time (incl. start-up) | train loss at step {args.steps} |
|---|---|---|---|---|
{rows}

The two-core setups' losses differ by {abs(one[1] - two[1]):.1e} (the same global batch and seed; bf16
autocast, where a preset uses it, rounds the two differently). Faster here: {faster}, by
{max(one[0], two[0]) / min(one[0], two[0]):.2f}x. DDP splits the same cores differently and adds one gradient
all-reduce per step (plus a tiny one for the loss and the stop/elapsed agreement); one process's two threads
share each operation instead, which pays only for large enough matrices. Run it on an idle machine: other jobs
on the cores (even at `nice -n 19`) make the threads wait for each other at every parallel region.
"""
    print(body)
    name = f"ddp_{args.preset}.md" if args.preset else "ddp.md"
    print(write_result(name, "Distributed data-parallel training: 2 processes vs 1 (CPU)", body))


if __name__ == "__main__":
    main()
