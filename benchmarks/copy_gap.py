"""Where the recurrent network loses its bits to the Transformer: per-byte losses on a run's held-out tail,
grouped by how far back the text last repeated itself.

    .venv/bin/python benchmarks/copy_gap.py RUN [RUN ...] [--time 20m] [--threads 2] [--out copy_gap.md]

Each RUN is a finished byte-level `rnnlab train` run on the same training file with `--val-fraction` (all of them
are scored on the first run's held-out tail, which none trains on). The Transformer of
benchmarks/transformer_peer.py trains on the first run's training tokens for `--time`, alone on the machine, and
is scored on the same tail with the same windows as its peer column. Every byte of the tail falls into one group:
the distance back to the most recent earlier occurrence, within 4,096 bytes, of the 4 bytes before it together
with it (so a model that copies from that place predicts it), or "no repeat" when there is none. Per group:
its share of the tail, bits per byte of the Transformer and of each network, and what the group adds to each
network's gap (share x difference; the column sums to the network's overall difference). Results:
results/copy_gap.md.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

import rnnlab
import transformer_peer as peer
from common import write_result
from rnnlab.config import parse_duration
from rnnlab.data.prepare import TokenStore
from rnnlab.lm.model import token_nats
from rnnlab.train.precision import Precision

CONTEXT = 4  # bytes before the predicted one that must repeat with it
HORIZON = 4096  # how far back a repeat is looked for
GROUPS = ((0, 64), (64, 128), (128, 256), (256, 512), (512, 1024), (1024, HORIZON))


def repeat_distance(data: bytes) -> np.ndarray:
    """For each i, the distance back from data[i + 1 - CONTEXT : i + 2] to its most recent earlier occurrence
    starting within HORIZON bytes, or -1: the group of the prediction of data[i + 1]."""
    distance = np.full(len(data) - 1, -1)
    for i in range(CONTEXT - 1, len(data) - 1):
        start = i + 1 - CONTEXT
        found = data.rfind(data[start : i + 2], max(0, start - HORIZON), i + 1)
        if found >= 0:
            distance[i] = start - found
    return distance


def table(distance: np.ndarray, peer_nats: np.ndarray, runs: dict[str, np.ndarray]) -> str:
    """The markdown table: one row per group, then all bytes."""
    bits = 1 / math.log(2)
    names = list(runs)
    head = "| last repeat, bytes back | share | Transformer | " + " | ".join(names)
    head += " | " + " | ".join(f"adds to the gap of {name}" for name in names) + " |"
    rows = [head, "|---" + "|---:" * (2 + 2 * len(names)) + "|"]
    groups = [("no repeat", distance < 0)] + [(f"{lo}-{hi}", (distance >= lo) & (distance < hi)) for lo, hi in GROUPS]
    groups.append(("all", np.ones_like(distance, dtype=bool)))
    for label, sel in groups:
        cells = [label, f"{sel.mean():.3f}", f"{peer_nats[sel].mean() * bits:.3f}"]
        cells += [f"{nats[sel].mean() * bits:.3f}" for nats in runs.values()]
        cells += [f"{(nats[sel] - peer_nats[sel]).sum() / len(sel) * bits:+.4f}" for nats in runs.values()]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finished byte-level rnnlab runs on one training file")
    parser.add_argument("--time", default="20m", help="the Transformer's wall-clock training budget")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", default="copy_gap.md", help="results file under benchmarks/results/")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {run.name: rnnlab.LanguageModel.load(run) for run in args.runs}
    if len(models) < len(args.runs):
        raise SystemExit("error: give runs with different folder names: the table's columns are named by them")
    if any(lm.tokenizer.kind != "byte" for lm in models.values()):
        raise SystemExit("error: copy_gap.py needs byte-level runs (--tokenizer byte): it groups bytes")
    store = TokenStore.open(args.runs[0])
    tail = np.asarray(store.val.tokens)
    runs = {name: token_nats(lm.module, tail) for name, lm in models.items()}  # one stream, the state carried

    torch.manual_seed(0)
    first = models[args.runs[0].name]
    settings = peer.arguments().parse_args([str(args.runs[0]), "--tail"])  # transformer_peer.py's defaults
    width = peer.matching_width(256, settings.depth, settings.context, first.module.num_parameters())
    transformer = peer.build(256, width, settings.depth, settings.context)
    precision = Precision(settings.precision, torch.device("cpu"))
    steps = peer.train(transformer, np.asarray(store.train.tokens), settings, parse_duration(args.time), precision)
    peer_nats = peer.token_nats(transformer, tail, settings.context)

    distance = repeat_distance(bytes(tail.astype(np.uint8)))
    body = (
        f"The held-out tail of {args.runs[0]} ({len(tail):,} bytes), scored by each network with one stream (its "
        f"state carried) and by the Transformer peer (depth {settings.depth}, width {width}, trained {args.time} on "
        f"the same training tokens, {steps:,} steps). Bits per byte by group: the distance back to the most recent "
        f"earlier occurrence of the {CONTEXT} bytes before a byte together with it (within {HORIZON:,}).\n\n"
        + table(distance, peer_nats, runs)
    )
    print(body)
    print(write_result(args.out, "Where the network's bits go: losses by the distance of the last repeat", body))


if __name__ == "__main__":
    main()
