"""Candidate recipes for `--preset small` at equal wall time, judged on the training files' held-out tails
(never on valid.*): each candidate trains with `--preset small --val-fraction 0.02` plus its own flags, and
its best validation bits per character on the last 2% of the training file is its score.

    .venv/bin/python benchmarks/recipe.py [--time 6m] [--jobs 2] [--threads 1] [--corpora shakespeare linux]

Runs go `--jobs` at a time, `--threads` threads each: two at a time with one thread each share a 2-core machine
evenly; one at a time with two threads is how `--preset small` runs on it. Results: results/recipe.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rnnlab
from common import corpus, machine, write_result

# name -> the flags it adds to `--preset small`; both have about the same number of parameters
CANDIDATES = {
    "lstm 2x256": ["--cell", "lstm", "--hidden", "256"],
    "gru 2x300": ["--cell", "gru", "--hidden", "300"],
}
CORPUS_FLAGS = {"shakespeare": [], "linux": ["--tokenizer", "byte"]}


def train_one(train: Path, flags: list[str], budget: str, threads: int, out: Path) -> dict:
    """One `rnnlab train` run with `threads` threads: its parameters, steps and best validation bpc on the
    training file's tail."""
    command = [sys.executable, "-m", "rnnlab", "train", str(train), "--out", str(out), "--preset", "small"]
    command += ["--max-time", budget, "--val-fraction", "0.02", *flags]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"rnnlab train {' '.join(flags)} failed: {done.stderr.strip()[-500:]}")
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    scores = [line["val_bpc"] for line in lines if "val_bpc" in line]
    params = rnnlab.LanguageModel.load(out).module.num_parameters()
    return {"params": params, "steps": max(line["step"] for line in lines), "tail_bpc": min(scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", default="6m")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--corpora", nargs="+", choices=list(CORPUS_FLAGS), default=list(CORPUS_FLAGS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        for name in args.corpora:
            train = corpus(name, "train")
            if train is None:
                print(f"skipped {name}: ../shared/data/{name} not found")
                continue
            runs = {
                candidate: pool.submit(
                    train_one, train, flags + CORPUS_FLAGS[name], args.time, args.threads, Path(tmp) / candidate
                )
                for candidate, flags in CANDIDATES.items()
            }
            for candidate, run in runs.items():
                row = {"corpus": name, "candidate": candidate, **run.result()}
                print(row, flush=True)
                rows.append(f"| {name} | {candidate} | {row['params']:,} | {row['steps']:,} | {row['tail_bpc']:.3f} |")
    if not rows:
        return
    body = (
        f"Each candidate: `rnnlab train train.* --preset small --max-time {args.time} --val-fraction 0.02` plus its "
        f"flags (kernel C also `--tokenizer byte`), {args.jobs} run(s) at a time with {args.threads} thread(s) each "
        f"on {machine()}; "
        "the score is the best validation bits per character on the held-out last 2% of the training file.\n\n"
        "| corpus | candidate | parameters | steps | tail bpc |\n|---|---|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )
    print(write_result("recipe.md", "Recipes for --preset small at equal wall time", body))


if __name__ == "__main__":
    main()
