"""Candidate recipes for `--preset small` at equal wall time, judged on the training files' held-out tails
(never on valid.*): each candidate trains with `--preset small --val-fraction 0.02` plus its own flags, and
its best validation bits per character on the last 2% of the training file is its score.

    .venv/bin/python benchmarks/recipe.py [--time 6m] [--jobs 2] [--threads 1] [--corpora shakespeare linux]
        [--candidates "gru 2x300" "mlstm 3x128, T=128"] [--peer] [--out recipe.md]

Runs go `--jobs` at a time, `--threads` threads each: two at a time with one thread each share a 2-core machine
evenly; one at a time with two threads is how `--preset small` runs on it. `--peer` also trains the Transformer
of benchmarks/transformer_peer.py on the first candidate's training tokens for the same time, alone on the
machine, and scores it on the same tail: the ratio to it is what quality.py's goal asks of the network, measured
where a recipe may be chosen. Results: results/recipe.md.
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
    "mlstm 3x128, T=128": ["--cell", "mlstm", "--layers", "3", "--hidden", "128", "--seq-len", "128"],
    "mlstm 3x128, T=128, adamw 0.1, dropout 0.1": ["--cell", "mlstm", "--layers", "3", "--hidden", "128",
                                                   "--seq-len", "128", "--optimizer", "adamw", "--weight-decay", "0.1",
                                                   "--dropout", "0.1"],
    "mlstm 3x128, T=256, N=16": ["--cell", "mlstm", "--layers", "3", "--hidden", "128", "--seq-len", "256",
                                 "--batch-size", "16"],
    "mlstm 4x112, T=64, N=64, adamw, lr 5e-3": ["--cell", "mlstm", "--layers", "4", "--hidden", "112", "--seq-len",
                                                "64", "--batch-size", "64", "--optimizer", "adamw", "--weight-decay",
                                                "0.1", "--betas", "0.9", "0.95", "--lr", "5e-3"],
}  # fmt: skip
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


def peer(run: Path, budget: str, threads: int) -> dict:
    """benchmarks/transformer_peer.py on `run`'s training tokens for `budget`, scored on the run's held-out tail."""
    result = run / "transformer.json"
    command = [sys.executable, str(Path(__file__).with_name("transformer_peer.py")), str(run), "--tail"]
    command += ["--time", budget, "--threads", str(threads), "--json", str(result)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"transformer_peer.py failed: {done.stderr.strip()[-500:]}")
    return json.loads(result.read_text())


def table_row(corpus_name: str, candidate: str, params: int, steps: int, bpc: float, peer_bpc: float | None) -> str:
    ratio = f"{bpc / peer_bpc:.3f}x" if peer_bpc else "–"
    return f"| {corpus_name} | {candidate} | {params:,} | {steps:,} | {bpc:.3f} | {ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", default="6m")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--corpora", nargs="+", choices=list(CORPUS_FLAGS), default=list(CORPUS_FLAGS))
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--peer", action="store_true", help="also the Transformer peer, scored on the same tail")
    parser.add_argument("--out", default="recipe.md", help="results file under benchmarks/results/")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        for name in args.corpora:
            train = corpus(name, "train")
            if train is None:
                print(f"skipped {name}: ../shared/data/{name} not found")
                continue
            dirs = {candidate: Path(tmp) / f"{name}-{i}" for i, candidate in enumerate(args.candidates)}
            flags = {candidate: CANDIDATES[candidate] + CORPUS_FLAGS[name] for candidate in args.candidates}
            runs = {c: pool.submit(train_one, train, flags[c], args.time, args.threads, dirs[c]) for c in dirs}
            results = {candidate: run.result() for candidate, run in runs.items()}
            theirs = peer(dirs[args.candidates[0]], args.time, args.jobs * args.threads) if args.peer else None
            peer_bpc = theirs["bpc"] if theirs else None
            for candidate, result in results.items():
                print({"corpus": name, "candidate": candidate, **result}, flush=True)
                rows.append(table_row(name, candidate, result["params"], result["steps"], result["tail_bpc"], peer_bpc))
            if theirs:
                print({"corpus": name, "transformer": theirs}, flush=True)
                rows.append(table_row(name, "Transformer peer", theirs["params"], theirs["steps"], peer_bpc, peer_bpc))
    if not rows:
        return
    peer_note = ", and its ratio to the Transformer peer's on the same tail (trained after the candidates)"
    body = (
        f"Each candidate: `rnnlab train train.* --preset small --max-time {args.time} --val-fraction 0.02` plus its "
        f"flags (kernel C also `--tokenizer byte`), {args.jobs} run(s) at a time with {args.threads} thread(s) each "
        f"on {machine()}; "
        "the score is the best validation bits per character on the held-out last 2% of the training file"
        f"{peer_note if args.peer else ''}.\n\n"
        "| corpus | candidate | parameters | steps | tail bpc | / Transformer |\n|---|---|---:|---:|---:|---:|\n"
        + "\n".join(rows)
        + "\n"
    )
    print(write_result(args.out, "Recipes for --preset small at equal wall time", body))


if __name__ == "__main__":
    main()
