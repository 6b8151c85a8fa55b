"""Interpretable cells on real corpora: train an LSTM on Linux kernel C and on Shakespeare, probe a slice of each
training text, and record the units best correlated with each per-character feature (Karpathy et al. 2015).

    nice -n 10 .venv/bin/python benchmarks/probe.py [--train-time 8m] [--layers 2 --hidden 256] [--chars N] [--retrain]
    .venv/bin/python benchmarks/probe.py --quality-runs   # probe the 20-minute models of benchmarks/quality.py

Each model trains on its corpus's train file only (the valid file is used for validation scores, never for
training). Runs go to benchmarks/runs/probe-<corpus>/ (reused unless --retrain), with the HTML report
cells.html beside them; the table goes to results/probe.md. A missing corpus is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import rnnlab
from common import ROOT, corpus, write_result
from rnnlab.analysis.cells import UnitScore, rank_all, record
from rnnlab.analysis.features import compute_features, regex_feature
from rnnlab.analysis.render import cells_html
from rnnlab.config import parse_duration
from rnnlab.data.corpus import read_text
from rnnlab.lm.model import LanguageModel

# corpus -> extra regex features
CORPORA = {"linux": {}, "shakespeare": {"speaker_line": r"(?m)^[A-Z][A-Z' ]+\.$"}}
MODEL = {"preset": "small", "embed": 64, "batch_size": 32, "seq_len": 128, "unknown": "unk"}  # plus layers, hidden
SLICE_START = 200_000  # characters into the training text: past any licence header at the top


def train_model(name: str, train: Path, valid: Path | None, args: argparse.Namespace) -> tuple[Path, str]:
    """The run directory for `name` (trained now unless a finished run is there) and a one-line summary."""
    # --quality-runs: the models benchmarks/quality.py trained (20 minutes, the default recipe)
    out = ROOT / "benchmarks" / "runs" / (name if args.quality_runs else f"probe-{name}")
    finished = (out / "model.safetensors").is_file()
    if args.quality_runs and not finished:
        raise SystemExit(f"no finished run in {out}: run benchmarks/quality.py --corpus {name} first")
    if not args.quality_runs and (args.retrain or not finished):
        shutil.rmtree(out, ignore_errors=True)
        rnnlab.train(
            [str(train)],
            out=out,
            val_files=[str(valid)] if valid else None,
            max_time=parse_duration(args.train_time),
            layers=args.layers,
            hidden=args.hidden,
            eval_every=250,
            eval_tokens=100_000,
            seed=0,
            progress=False,
            **MODEL,
        )
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    logs = [m for m in metrics if "tokens_per_s" in m]
    vals = [m["val_bpc"] for m in metrics if m.get("val_bpc") is not None]
    where = "the train file's last 2%" if args.quality_runs else "the valid file"
    best = f", best validation {min(vals):.3f} bits/char on {where}" if vals else ""
    if not logs:
        return out, f"trained{best}"
    last = logs[-1]
    return out, f"{last['step']} steps in {last['elapsed']:.0f}s at {last['tokens_per_s']:.0f} tokens/s{best}"


def cell(scores: list[UnitScore], i: int) -> str:
    return f"{scores[i].layer}[{scores[i].unit}] {scores[i].r:+.2f}" if i < len(scores) else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-time", default="8m", help="Training time per corpus, e.g. 8m.")
    parser.add_argument("--chars", type=int, default=6000, help="Characters of training text to probe.")
    parser.add_argument("--layers", type=int, default=2, help="LSTM layers L.")
    parser.add_argument("--hidden", type=int, default=256, help="Hidden units H per layer.")
    parser.add_argument("--retrain", action="store_true", help="Train again even if a run exists.")
    parser.add_argument(
        "--quality-runs", action="store_true", help="Probe benchmarks/runs/<corpus> from quality.py instead."
    )
    args = parser.parse_args()
    sections = []
    for name, extra in CORPORA.items():
        train, valid = corpus(name, "train"), corpus(name, "valid")
        if train is None:
            sections.append(f"## {name}\n\nskipped: no training text under shared/data/{name}.\n")
            print(f"{name}: skipped (no data)")
            continue
        run_dir, summary = train_model(name, train, valid, args)
        text = read_text(train)
        start = text.index("\n", SLICE_START) + 1
        lm = LanguageModel.load(run_dir)
        cfg = lm.module.config
        recording = record(lm, text[start : start + args.chars])
        features = compute_features(recording.text, {k: regex_feature(v) for k, v in extra.items()})
        ranking = rank_all(recording, features, top=3)
        (run_dir / "cells.html").write_text(cells_html(recording, ranking, title=f"Cells of the {name} LSTM"))
        rows = ["| feature | best unit, r | 2nd | 3rd |", "|---|---|---|---|"]
        for feature, scores in ranking.items():
            rows.append(f"| {feature} | {cell(scores, 0)} | {cell(scores, 1)} | {cell(scores, 2)} |")
        sections.append(
            f"## {name}\n\nLSTM {cfg.layers}x{cfg.hidden} (embed {cfg.embed}) trained on `{train.name}` "
            f"(train file only): {summary}. "
            f"Probed on {len(recording.text)} characters of `{train.name}` from character {start}; "
            f"units are h and c of every layer ({2 * cfg.layers * cfg.hidden}).\n\n" + "\n".join(rows) + "\n"
        )
        print(f"{name}: {summary}\n" + "\n".join(rows[2:]))
    body = (
        "Units with the largest |Pearson r| between their activation after each character and each feature "
        "(`rnnlab.analysis.features`). `hL`/`cL`: hidden/cell state of layer L. Reproduce a report with "
        "`rnnlab probe cells benchmarks/runs/probe-linux SLICE.c --out report.html`.\n\n" + "\n".join(sections)
    )
    print(f"wrote {write_result('probe.md', 'Interpretable cells: top correlations per feature', body)}")


if __name__ == "__main__":
    main()
