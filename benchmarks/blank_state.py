"""Does a model predict well from a fresh state? Two ratios (issue 23, item 6), for models trained 60 s with
`--preset tiny` at several seeds and for a `--preset small` model (trained here, or given with --small-run):

(a) bits per character of short held-out passages (30 characters) scored from a fresh state, divided by
    the same passages scored after the 600 characters before them (the first character of a passage is
    context in both, so both score the same 29 characters);
(b) samples drawn at temperature 1 from a fresh state after short primes, scored by the model itself from
    a fresh state, divided by its bits per character on the held-out text (one stream); the worst prime
    counts.

    python benchmarks/blank_state.py --corpus shakespeare --seeds 1337,1,2 --tiny-time 60s --small-time 20m

Models train on the training file (its last 2% held out for model selection) and are measured on the
validation file; `--measure tail` measures on that 2% tail instead (for tuning, so that valid stays unseen).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import corpus, write_result
from rnnlab.config import parse_duration
from rnnlab.lm.model import LanguageModel

PRIMES = ["ROMEO:", "HAMLET.", "the ", "T"]
PASSAGE, CONTEXT = 30, 600


def train(train_file: Path, out: Path, preset: str, seconds: float, seed: int, extra: list[str]) -> subprocess.Popen:
    """Start one training process on one thread (two run side by side on the 2-core machine)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rnnlab", "train", str(train_file), "--out", str(out), "--preset", preset,
           "--max-time", f"{seconds}s", "--seed", str(seed), "--val-fraction", "0.02", *extra]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@torch.no_grad()
def nats(lm: LanguageModel, rows: np.ndarray) -> np.ndarray:
    """-ln p of tokens[:, 1:] given everything before them in the row, each row from a fresh state."""
    tokens = torch.as_tensor(rows, dtype=torch.long)
    out = []
    for start in range(0, len(tokens), 64):
        batch = tokens[start : start + 64]
        logits, _, _ = lm.module(batch[:, :-1])
        out.append(F.cross_entropy(logits.double().transpose(1, 2), batch[:, 1:], reduction="none"))
    return torch.cat(out).numpy()


def passage_ratio(lm: LanguageModel, text: str, count: int = 400, seed: int = 0) -> float:
    """Ratio (a): fresh-state bits of 30-character passages over the same bits after 600 characters."""
    ids = lm.tokenizer.encode(text)
    starts = np.random.default_rng(seed).integers(CONTEXT, len(ids) - PASSAGE, size=count)
    fresh = nats(lm, np.stack([ids[s : s + PASSAGE] for s in starts]))
    warm = nats(lm, np.stack([ids[s - CONTEXT : s + PASSAGE] for s in starts]))[:, -(PASSAGE - 1) :]
    return float(fresh.sum() / warm.sum())


def sample_ratios(lm: LanguageModel, held_out_bpc: float, samples: int = 20, length: int = 300) -> dict[str, float]:
    """Ratio (b) per prime: bits per character of the model's own samples, scored from a fresh state."""
    out = {}
    for prime in PRIMES:
        total_nats, chars = 0.0, 0
        for i in range(samples):
            text = lm.generate(prime, length, temperature=1.0, seed=1000 + i)
            ids = lm.tokenizer.encode(prime + text)
            total_nats += float(nats(lm, ids[None])[0, len(prime) - 1 :].sum())
            chars += len(text)
        out[prime] = total_nats / math.log(2) / chars / held_out_bpc
    return out


def measure(run: Path, held_out: str) -> dict[str, object]:
    lm = LanguageModel.load(run)
    bpc = lm.score(held_out).bits_per_char
    samples = sample_ratios(lm, bpc)
    worst = max(samples, key=samples.get)
    return {"bpc": bpc, "a": passage_ratio(lm, held_out), "b": samples[worst], "worst": worst, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="shakespeare")
    parser.add_argument("--seeds", default="1337,1,2", help="seeds of the --preset tiny runs (1337: the default)")
    parser.add_argument("--tiny-time", default="60s")
    parser.add_argument("--small-time", default="20m", help="train a --preset small model this long ('0': none)")
    parser.add_argument("--small-run", type=Path, help="an existing --preset small run to measure instead")
    parser.add_argument("--measure", choices=("valid", "tail"), default="valid")
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    parser.add_argument("--result", default="blank_state", help="results/<name>.md ('-tail' added for tail)")
    parser.add_argument("extra", nargs="*", help="extra `rnnlab train` flags (after --), e.g. --reset-prob 0")
    args = parser.parse_args()
    train_file, valid_file = corpus(args.corpus, "train"), corpus(args.corpus, "valid")
    if train_file is None or valid_file is None:
        print(f"skipped: ../shared/data/{args.corpus} is absent")
        return
    torch.set_num_threads(2)
    if args.measure == "valid":
        held_out = valid_file.read_text()
    else:
        text = train_file.read_text()
        held_out = text[len(text) - int(len(text) * 0.02) + 1 :]
    folder = args.keep or Path(tempfile.mkdtemp(prefix="blank-state-"))
    folder.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Path, subprocess.Popen | None]] = []
    seeds = [int(s) for s in args.seeds.split(",") if s]
    for seed in seeds:
        out = folder / f"tiny-{seed}"
        jobs.append((f"tiny, seed {seed}, {args.tiny_time}", out, None))
    if args.small_run is not None:
        jobs.append(("small (given run)", args.small_run, None))
    elif parse_duration(args.small_time) > 0:
        jobs.append((f"small, seed 1337, {args.small_time}", folder / "small", None))
    pending = [j for j in jobs if not (j[1] / "model.safetensors").exists()]
    running: list[subprocess.Popen] = []
    for label, out, _ in pending:  # two at a time, one thread each
        if len(running) == 2:
            running.pop(0).wait()
        preset, seconds = ("small", args.small_time) if label.startswith("small") else ("tiny", args.tiny_time)
        seed = int(label.split("seed ")[1].split(",")[0]) if "seed" in label else 1337
        running.append(train(train_file, out, preset, parse_duration(seconds), seed, args.extra))
    for proc in running:
        proc.wait()
    rows, results = [], {}
    for label, out, _ in jobs:
        result = measure(out, held_out)
        results[label] = result
        samples = ", ".join(f"{p.strip() or repr(p)} {r:.2f}" for p, r in result["samples"].items())
        rows.append(
            f"| {label} | {result['bpc']:.3f} | {result['a']:.3f} | {result['b']:.3f} ({result['worst'].strip()}) "
            f"| {samples} |"
        )
        print(rows[-1], flush=True)
    body = (
        f"Held-out text: {args.measure} ({valid_file.name if args.measure == 'valid' else 'last 2% of train'}). "
        f"Extra train flags: `{' '.join(args.extra) or 'none'}`. Goals: (a) <= 1.10, (b) <= 1.3.\n\n"
        "| model | held-out bpc | (a) fresh / in-context, 30-char passages | (b) worst prime | (b) per prime |\n"
        "|---|---:|---:|---:|---|\n" + "\n".join(rows) + "\n\n```json\n" + json.dumps(results, indent=1) + "\n```\n"
    )
    suffix = "" if args.measure == "valid" else "-tail"
    print(write_result(f"{args.result}{suffix}.md", "Predicting from a fresh state", body))


if __name__ == "__main__":
    main()
