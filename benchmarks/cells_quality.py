"""Every cell at the same budget on Shakespeare: validation bits per character after the same training time,
at (about) the same parameter count.

    .venv/bin/python benchmarks/cells_quality.py [--time 3m] [--params 400000] [--jobs 2] [--cells lstm gru ...]

Each cell gets a 2-layer model (embedding 64, or = hidden for the MUT cells; N=32, T=64, Adam 3e-3: the
small preset's schedule, in fp32 so that no cell's arithmetic differs) whose hidden size is chosen so that
its parameter count is as close as it gets to --params. Runs train on train.txt only, `--jobs` at a time
with one thread each, and are scored on the whole of valid.txt. Results: results/cells_quality.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ROOT, corpus, write_result
from rnnlab.config import ModelConfig, parse_duration
from rnnlab.lm.model import RNNLM
from rnnlab.nn import registry

STORE = ROOT / "benchmarks" / "results" / "cells_quality.json"  # every cell's latest row
VOCAB = 85  # Shakespeare's character vocabulary (the exact size barely moves the parameter count)


def embed_size(cell: str, hidden: int) -> int:
    """64, except for the MUT cells, which add their input un-weighted and so need D = H."""
    return hidden if cell.startswith("mut") else 64


def parameters(cell: str, hidden: int) -> int:
    """Parameters of the 2-layer model of `cell` with `hidden` units."""
    config = ModelConfig(vocab_size=VOCAB, cell=cell, layers=2, hidden=hidden, embed=embed_size(cell, hidden))
    return RNNLM(config).num_parameters()


def matched_hidden(cell: str, target: int) -> int:
    """The hidden size (a multiple of 8) whose model has the parameter count closest to `target`."""
    sizes = range(16, 641, 8)
    return min(sizes, key=lambda h: abs(parameters(cell, h) - target))


def _rnnlab(cell: str, *args: str) -> str:
    """Run `rnnlab ARGS` single-threaded; its stdout, or the benchmark stops with rnnlab's error."""
    done = subprocess.run([sys.executable, "-m", "rnnlab", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{cell}: rnnlab {args[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def run_one(cell: str, hidden: int, train: Path, valid: Path, budget: str, out: Path) -> dict:
    """Train one cell in a subprocess (one thread), then score valid.txt; returns the row's numbers."""
    flags = ["--preset", "small", "--precision", "fp32", "--cell", cell, "--hidden", str(hidden),
             "--embed", str(embed_size(cell, hidden)), "--max-time", budget, "--val-fraction", "0.02"]  # fmt: skip
    started = time.time()
    shutil.rmtree(out, ignore_errors=True)  # a fresh run each time (train refuses an existing run directory)
    _rnnlab(cell, "train", str(train), "--out", str(out), *flags)
    scored = _rnnlab(cell, "eval", str(out), str(valid), "--json")
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = max((m["step"] for m in metrics if "step" in m), default=0)
    bpc = json.loads(scored)["bits_per_char"]
    lr = json.loads((out / "config.json").read_text())["train"]["lr"]  # the preset's, or the cell's own cap
    print(f"{cell}: hidden {hidden}, {steps} steps, valid {bpc:.3f} bpc ({time.time() - started:.0f}s)", flush=True)
    row = {"cell": cell, "hidden": hidden, "params": parameters(cell, hidden), "steps": steps}
    return {**row, "lr": lr, "valid_bpc": bpc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", default="3m", help="training budget per cell")
    parser.add_argument("--params", type=int, default=400_000, help="parameter count to match")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--cells", nargs="+", default=list(registry.names()))
    args = parser.parse_args()
    train, valid = corpus("shakespeare", "train"), corpus("shakespeare", "valid")
    if train is None or valid is None:
        print("skipped: ../shared/data/shakespeare not found")
        return
    parse_duration(args.time)  # a bad budget fails here, not in every subprocess
    runs = ROOT / "benchmarks" / "runs" / "cells-quality"
    runs.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(run_one, cell, matched_hidden(cell, args.params), train, valid, args.time, runs / cell)
            for cell in args.cells
        ]
        rows = [f.result() for f in futures]
    run = {"budget": args.time, "jobs": args.jobs, "load": f"{load:.2f}-{os.getloadavg()[0]:.2f}"}
    kept = json.loads(STORE.read_text()) if STORE.exists() else {}  # rows of earlier runs (other --cells) stay
    kept.update({r["cell"]: {**r, **run, "date": time.strftime("%Y-%m-%d")} for r in rows})
    STORE.write_text(json.dumps(kept, indent=2) + "\n")
    print(write_result("cells_quality.md", "Every cell at the same budget on Shakespeare", report(kept, args.params)))


def report(kept: dict[str, dict], params: int) -> str:
    """The page: how the cells were trained, then one row per cell, best first."""
    table = [
        "| cell | hidden | parameters | lr | steps | valid bpc | budget | runs at once | load average |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(kept.values(), key=lambda r: r["valid_bpc"]):
        table.append(
            f"| {r['cell']} | {r['hidden']} | {r['params']:,} | {r['lr']:g} | {r['steps']:,} | "
            f"{r['valid_bpc']:.3f} | {r['budget']} | {r['jobs']} | {r['load']} |"
        )
    return (
        "Each cell: 2 layers, embedding 64 (MUT cells: = hidden, which they need), hidden size matched to "
        f"{params:,} parameters, trained for the budget on Shakespeare train.txt "
        "(`--preset small --precision fp32`: N=32, T=64, Adam at the preset's 3e-3, or the cell's lower default "
        "where it has one (the lr column), cosine over the time budget), one thread "
        "per run on this machine, several runs at once where the table says so; scored by `rnnlab eval` on all "
        "of valid.txt (static, no --dynamic or --mix). Equal time rewards fast cells: the steps column shows "
        "how many updates each managed. Rows are kept in results/cells_quality.json: rerunning some cells "
        "(`--cells`) replaces their rows only.\n\n" + "\n".join(table) + "\n"
    )


if __name__ == "__main__":
    main()
