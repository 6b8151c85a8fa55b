"""An HMM with N states remembers at most log2 N bits about the past; an LSTM is not bounded that way.

    taskset -c 1 python benchmarks/hmm_memory.py [--bits 8] [--train 200000] [--test 100000]

The task: a text over M = 2^K symbols (one character each) where each symbol copies the one before it with
probability 1 - eps and is drawn uniformly otherwise, so a predictor gains up to about K bits per symbol by
remembering the previous symbol. "Bits of the past used" is the scored text's own unigram entropy minus the
model's cross-entropy on it (bits per symbol, scored as `rnnlab eval` scores: the first symbol is context only).

Why log2 N bounds an HMM: its prediction is a mixture sum_s w(s) B[s, x] of its N emission rows, so it never
exceeds m(x) = max_s B[s, x], and sum_x m(x) <= N. For any text with unigram frequencies p,
cross-entropy >= sum_x p(x) (-log2 m(x)) >= H(p) - log2 sum_x m(x) >= H(p) - log2 N (Gibbs' inequality), so
the bits used are at most log2 N, whatever the weights, the training or the text. An LSTM's prediction is a
softmax of its hidden state, with no such limit. HMMs: Baum-Welch (rnnlab.baselines.hmm, the code behind
`rnnlab hmm train`) from three seeds, keeping the best training likelihood (EM finds local optima). LSTM:
`rnnlab train` with a fixed number of steps, scored by `rnnlab eval`. Times are CPU seconds of one core.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import write_result
from rnnlab.baselines.hmm import HMMConfig, fit

EPS = 0.05
FIRST_CHAR = 0x100  # the symbols are the characters U+0100 ... (one token each under the char tokenizer)
SEEDS = (1, 2, 3)
LSTMS = ((8, 1500), (32, 1500))  # hidden units, training steps


def copy_text(length: int, symbols: int, rng: np.random.Generator) -> np.ndarray:
    """Symbol ids: each copies its predecessor with probability 1 - EPS, else is uniform over `symbols`."""
    fresh = rng.random(length) < EPS
    fresh[0] = True
    draws = rng.integers(0, symbols, length)
    last_fresh = np.maximum.accumulate(np.where(fresh, np.arange(length), 0))
    return draws[last_fresh]


def unigram_entropy(ids: np.ndarray, symbols: int) -> float:
    p = np.bincount(ids, minlength=symbols) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def grouping_bits(ids: np.ndarray, symbols: int, states: int) -> float:
    """Bits used by the N-state predictor that knows which of N equal groups the previous symbol is in (what an
    HMM whose states are those groups predicts): a reference for what N states can reach on this task."""
    size = symbols // states
    same_group = ids[1:] // size == ids[:-1] // size
    p = np.where(same_group, (1 - EPS) / size + EPS / symbols, EPS / symbols)
    return unigram_entropy(ids[1:], symbols) + float(np.log2(p).mean())


def lstm_bits(train: Path, test: Path, hidden: int, steps: int, folder: Path) -> tuple[float, float]:
    """Train a one-layer LSTM with `rnnlab train`, score it with `rnnlab eval --json`: (bits per symbol, CPU s)."""
    out = folder / f"lstm{hidden}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    rnnlab = [sys.executable, "-m", "rnnlab"]
    train_cmd = [*rnnlab, "train", str(train), "--out", str(out), "--cell", "lstm", "--layers", "1"]
    train_cmd += ["--hidden", str(hidden), "--embed", "32", "--batch-size", "32", "--seq-len", "64"]
    train_cmd += ["--lr", "3e-3", "--max-steps", str(steps), "--val-fraction", "0.02", "--sample-every", "0"]
    subprocess.run(train_cmd, check=True, capture_output=True)
    scored = subprocess.run([*rnnlab, "eval", str(out), str(test), "--json"], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return json.loads(scored.stdout)["bits_per_char"], cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=8, help="K: the task has 2^K symbols")
    parser.add_argument("--train", type=int, default=200_000, help="training symbols")
    parser.add_argument("--test", type=int, default=100_000, help="held-out symbols")
    parser.add_argument("--max-states", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    symbols = 2**args.bits
    rng = np.random.default_rng(0)
    train, test = copy_text(args.train, symbols, rng), copy_text(args.test, symbols, rng)
    h_test = unigram_entropy(test[1:], symbols)
    ideal = grouping_bits(test, symbols, symbols)

    rows = []
    states = 1
    while states <= args.max_states:
        start = time.process_time()
        best = None
        for seed in SEEDS[: 1 if states == 1 else None]:
            result = fit(train, None, symbols, HMMConfig(states=states, max_iters=60, tol=1e-5, seed=seed))
            log_likelihood = -result.history[-1].train_nats if len(result.history) > 1 else -math.inf
            if best is None or log_likelihood > best[0]:
                best = (log_likelihood, result)
        model = best[1].model
        cross_entropy = float(model.token_nats(test)[1:].mean()) / math.log(2)
        used = h_test - cross_entropy
        rows.append((states, used, grouping_bits(test, symbols, states), time.process_time() - start))
        print(f"HMM {states:4d} states: {used:.3f} bits used (bound {math.log2(states):.0f})", flush=True)
        states *= 2

    lstm_rows = []
    with tempfile.TemporaryDirectory() as folder:
        train_file, test_file = Path(folder) / "train.txt", Path(folder) / "test.txt"
        for ids, path in ((train, train_file), (test, test_file)):
            path.write_text("".join(chr(FIRST_CHAR + int(i)) for i in ids), encoding="utf-8")
        for hidden, steps in LSTMS:
            bpc, cpu = lstm_bits(train_file, test_file, hidden, steps, Path(folder))
            lstm_rows.append((hidden, steps, h_test - bpc, cpu))
            print(f"LSTM {hidden} units: {h_test - bpc:.3f} bits used", flush=True)

    within = all(used <= math.log2(n) + 1e-9 for n, used, _, _ in rows)
    lines = [
        f"Task: {symbols} symbols (K = {args.bits} bits), each copying the previous symbol with probability "
        f"{1 - EPS:.2f}, else uniform; {args.train:,} training and {args.test:,} held-out symbols. "
        "Bits of the past used = the held-out text's unigram entropy "
        f"({h_test:.3f} bits) minus the model's cross-entropy on it, per symbol. The best any predictor can use "
        f"here (knowing the previous symbol, as the true process does) is {ideal:.3f} bits.",
        "",
        "| model | log2 N (the bound) | bits of the past used | N-state grouping predictor | CPU s |",
        "|---|---:|---:|---:|---:|",
    ]
    for n, used, grouping, cpu in rows:
        label = f"HMM, {n} state{'s' * (n > 1)}"
        lines.append(f"| {label} | {math.log2(n):.0f} | {used:.3f} | {grouping:.3f} | {cpu:.1f} |")
    for hidden, steps, used, cpu in lstm_rows:
        lines.append(f"| LSTM, {hidden} units ({steps} steps) | none | {used:.3f} | | {cpu:.1f} |")
    best_hmm = max(rows, key=lambda row: row[1])
    gains = [later[1] - earlier[1] for earlier, later in itertools.pairwise(rows)]
    lines += [
        "",
        f"Every HMM stays within its bound of log2 N bits: {'yes' if within else 'NO'}. Each doubling of the states "
        f"adds {min(gains):.2f} to {max(gains):.2f} bits; the largest HMM here "
        f"({best_hmm[0]} states, {best_hmm[0] * (best_hmm[0] + symbols):,} probabilities) uses {best_hmm[1]:.3f} bits, "
        f"while the LSTMs use {', '.join(f'{used:.3f}' for _, _, used, _ in lstm_rows)} bits with "
        f"{', '.join(str(h) for h, _, _, _ in lstm_rows)} hidden units. "
        "HMM: EM from a class bigram start (`--init bigram`, the default), best training likelihood of seeds "
        f"{', '.join(map(str, SEEDS))}, at most 60 EM iterations (tol 1e-5 nats/token), emission prior 1; the "
        "grouping column is the N-state predictor that knows which of N equal groups the previous symbol is in, "
        "a reference for what N states can reach (EM does not always find it). LSTM: one layer, embedding 32, "
        "batch 32 x 64, Adam 3e-3.",
    ]
    path = write_result("hmm_memory.md", "HMM memory: at most log2 N bits of the past", "\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
