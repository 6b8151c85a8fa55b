"""Reference trainer (N = 32 streams) vs the batch-1 min-char-rnn loop: characters per second, same data, same run.

    .venv/bin/python benchmarks/reference_speed.py [--iters 300]

Writes benchmarks/results/reference.md. Trains on /work/shared/data/shakespeare/train.txt (its first 1 MB).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from rnnlab.reference import CharRNN, train
from rnnlab.reference.optim import Adagrad

DATA = Path("/work/shared/data/shakespeare/train.txt")
RESULTS = Path(__file__).parent / "results" / "reference.md"
H, T, LR = 100, 25, 0.1


def min_char_rnn_chars_per_s(tokens: np.ndarray, V: int, iters: int) -> float:
    """Karpathy's loop (column vectors, one step at a time, B = 1), timed over `iters` iterations."""
    rng = np.random.default_rng(0)
    Wxh, Whh, Why = (
        rng.standard_normal((H, V)) * 0.01,
        rng.standard_normal((H, H)) * 0.01,
        rng.standard_normal((V, H)) * 0.01,
    )
    bh, by = np.zeros((H, 1)), np.zeros((V, 1))
    mem = [np.zeros_like(p) for p in (Wxh, Whh, Why, bh, by)]
    hprev, p = np.zeros((H, 1)), 0
    start = time.perf_counter()
    for _ in range(iters):
        if p + T + 1 >= len(tokens):
            hprev, p = np.zeros((H, 1)), 0
        inputs, targets = tokens[p : p + T], tokens[p + 1 : p + T + 1]
        xs, hs, ps = {}, {-1: hprev}, {}
        for t in range(T):
            xs[t] = np.zeros((V, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
            y = Why @ hs[t] + by
            ps[t] = np.exp(y) / np.sum(np.exp(y))
        grads = [np.zeros_like(q) for q in (Wxh, Whh, Why, bh, by)]
        dhnext = np.zeros((H, 1))
        for t in reversed(range(T)):
            dy = ps[t].copy()
            dy[targets[t]] -= 1
            grads[2] += dy @ hs[t].T
            grads[4] += dy
            dhraw = (1 - hs[t] * hs[t]) * (Why.T @ dy + dhnext)
            grads[3] += dhraw
            grads[0] += dhraw @ xs[t].T
            grads[1] += dhraw @ hs[t - 1].T
            dhnext = Whh.T @ dhraw
        for param, g, m in zip((Wxh, Whh, Why, bh, by), grads, mem, strict=True):
            np.clip(g, -5, 5, out=g)
            m += g * g
            param -= LR * g / np.sqrt(m + 1e-8)
        hprev = hs[T - 1]
        p += T
    return iters * T / (time.perf_counter() - start)


def reference_chars_per_s(tokens: np.ndarray, V: int, N: int, iters: int) -> float:
    model = CharRNN("rnn-tanh", V, H, rng=np.random.default_rng(0))
    start = time.perf_counter()
    train(model, tokens, Adagrad(model.params, lr=LR), batch_size=N, seq_len=T, max_iters=iters)
    return iters * N * T / (time.perf_counter() - start)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=300)
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"skipped: {DATA} is not here")
        return
    text = DATA.read_text(encoding="utf-8")[:1_000_000]
    chars = sorted(set(text))
    tokens = np.searchsorted(np.array([ord(c) for c in chars]), np.array([ord(c) for c in text]))
    V = len(chars)
    baseline = min_char_rnn_chars_per_s(tokens, V, args.iters)
    rows = [
        ("min-char-rnn loop", 1, baseline),
        ("rnnlab.reference", 1, reference_chars_per_s(tokens, V, 1, args.iters)),
    ]
    rows.append(("rnnlab.reference", 32, reference_chars_per_s(tokens, V, 32, args.iters)))
    lines = [
        "# NumPy reference trainer speed",
        "",
        f"hidden {H}, seq {T}, vocabulary {V}, Adagrad lr {LR}, clip ±5, float64, {args.iters} iterations each,",
        f"first 1 MB of {DATA}.",
        "",
        "| trainer | batch N | chars/s | vs min-char-rnn |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {n} | {cps:,.0f} | {cps / baseline:.1f}x |" for name, n, cps in rows),
        "",
        "Command: `OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "
        f".venv/bin/python benchmarks/reference_speed.py --iters {args.iters}` (one BLAS thread: with default"
        " threading, contention on the shared 2-core machine made N = 32 no faster than N = 1)",
        "",
        f"Machine: {cpu_model()}, nproc {os.cpu_count()}, Python {sys.version.split()[0]}, NumPy {np.__version__}"
        " (shared with other jobs while measured).",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
