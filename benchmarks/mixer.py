"""What each stage of the n-gram mixer (`--mix`) gains, and what it costs, on the training file's held-out tail.

    python benchmarks/mixer.py [--tokens 30000] [--run shakespeare=benchmarks/runs/shakespeare ...]

Each run is a trained language model with its token store (benchmarks/quality.py leaves one per corpus in
benchmarks/runs/<corpus>). The text scored is the first --tokens tokens of the run's own held-out split (the
last 2% of the training file, never the corpus's valid file), read once by the static network; each row then
mixes those same network distributions: the network alone, the first stage (linear mixing of the experts),
both stages (binary logistic mixing and adaptive probability maps after it) without the local experts (n-gram
counts over the last 4,096 tokens read), the match model (the token that followed the latest earlier occurrence
of the last 4 or more tokens) and the word contexts (the word so far, alone and after the word before it), then
without the match model, without the word contexts, with all (the default), and the default with the maps frozen.
Speed is tokens per second of the mixer alone (the network's cost is the same for all rows), in one thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import rnnlab
from common import ROOT, write_result
from rnnlab.data.prepare import TokenStore
from rnnlab.lm.model import token_logits
from rnnlab.lm.ngram import NgramConfig, mixed_nats
from rnnlab.lm.words import word_mask

ROWS = {  # name -> (settings, with the word contexts)
    "first stage (linear: n-gram orders, local experts, word contexts)": (NgramConfig(second_stage=False), True),
    "both stages, no local experts, match model or word contexts": (NgramConfig(local_orders=(), match_len=0), False),
    "both stages, no match model": (NgramConfig(match_len=0), True),
    "both stages, no word contexts": (NgramConfig(), False),
    "both stages (the default)": (NgramConfig(), True),
    "both stages, maps frozen": (NgramConfig(map_rate=0.0), True),
}


def measure(run: Path, tokens: int) -> list[tuple[str, float, float]]:
    """(row, bits per token, mixer tokens/s) on the first `tokens` tokens of the run's held-out split."""
    lm = rnnlab.LanguageModel.load(run)
    held_out = TokenStore.open(run).val
    if held_out is None:
        raise SystemExit(f"{run} has no held-out split to measure on")
    ids = np.asarray(held_out.tokens[:tokens])
    probs = np.concatenate([torch.softmax(c.double(), -1).numpy() for c in token_logits(lm.module, ids)])
    network = -np.log(probs[np.arange(len(ids) - 1), ids[1:]]).mean() / np.log(2)
    rows = [("network alone", network, float("nan"))]
    history, mask = lm.training_tokens(), word_mask(lm.tokenizer)
    for name, (config, with_words) in ROWS.items():
        start = time.perf_counter()
        nats = mixed_nats([probs], history, ids, lm.tokenizer.vocab_size, config, None, mask if with_words else None)
        rows.append((name, nats.mean() / np.log(2), (len(ids) - 1) / (time.perf_counter() - start)))
        print(f"{run.name}: {name}: {rows[-1][1]:.4f} bits/token, {rows[-1][2]:,.0f} tokens/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=30_000)
    parser.add_argument("--run", action="append", default=[], help="name=run directory (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = dict(item.split("=", 1) for item in args.run) or {
        name: str(ROOT / "benchmarks" / "runs" / name) for name in ("shakespeare", "linux")
    }
    lines = [
        "| run | row | bits/token | vs first stage | mixer tokens/s (incl. loading the memory) |",
        "|---|---|---:|---:|---:|",
    ]
    for name, path in runs.items():
        if not (Path(path) / "tokens").is_dir():
            print(f"skipped {name}: no run at {path} (run benchmarks/quality.py first)")
            continue
        rows = measure(Path(path), args.tokens)
        first = rows[1][1]
        for row, bits, speed in rows:
            speed_text = "-" if np.isnan(speed) else f"{speed:,.0f}"
            lines.append(f"| {name} | {row} | {bits:.4f} | {bits / first:.3f}x | {speed_text} |")
    body = (
        __doc__.split("\n\n", 2)[2]
        + f"\nFirst {args.tokens:,} tokens of each run's held-out training tail.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print(write_result("mixer.md", "The n-gram mixer's stages on the training tail", body))


if __name__ == "__main__":
    main()
