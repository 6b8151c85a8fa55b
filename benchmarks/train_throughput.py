"""Tokens/s of `rnnlab train` vs a plain PyTorch loop (nn.Embedding + nn.LSTM + nn.Linear, Adam), same sizes.

Both run in this process, interleaved (plain, rnnlab, plain, rnnlab, ...) so machine noise hits both;
the figure is the ratio of medians. rnnlab's number is measured by its own trainer (metrics.jsonl
windows, which include clipping, the data stream from the memmap and logging).

    python benchmarks/train_throughput.py [--steps 30] [--rounds 2] [--hidden 512]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import rnnlab
from common import corpus, write_result


def plain_loop(V: int, args: argparse.Namespace, tokens: torch.Tensor) -> list[float]:
    """The baseline: the loop everyone writes first. Returns tokens/s per window of 10 steps."""
    torch.manual_seed(0)
    embed, lstm = nn.Embedding(V, args.embed), nn.LSTM(args.embed, args.hidden, args.layers, batch_first=True)
    head = nn.Linear(args.hidden, V)
    params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    N, T = args.batch_size, args.seq_len
    S = len(tokens) // N
    grid = tokens[: N * S].view(N, S)
    state, rates, start = None, [], time.perf_counter()
    for step in range(args.steps):
        c = (step * T) % (S - T - 1)
        x, y = grid[:, c : c + T], grid[:, c + 1 : c + T + 1]
        out, state = lstm(embed(x), state)
        loss = nn.functional.cross_entropy(head(out).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        state = tuple(s.detach() for s in state)
        if (step + 1) % 10 == 0:
            now = time.perf_counter()
            rates.append(10 * N * T / (now - start))
            start = now
    return rates[1:]  # the first window includes one-off allocation


def rnnlab_loop(path: Path, args: argparse.Namespace, work: Path, round_: int) -> list[float]:
    out = work / f"run{round_}"
    rnnlab.train(
        [str(path)],
        out=out,
        cell="lstm",
        layers=args.layers,
        hidden=args.hidden,
        embed=args.embed,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lr=2e-3,
        val_fraction=0.0,
        max_steps=args.steps,
        log_every=10,
        checkpoint_every=10**9,
        progress=False,
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["tokens_per_s"] for r in rows if "tokens_per_s" in r][1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=128)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = corpus("shakespeare", "train")
        if path is None:  # shared data absent: any text of the right size does
            path = work / "text.txt"
            path.write_text("".join(chr(32 + (i * 7919) % 90) for i in range(2_000_000)))
        text = path.read_text()[:3_000_000]
        vocab = sorted(set(text))
        tokens = torch.tensor([vocab.index(c) for c in text[:1_000_000]], dtype=torch.long)
        plain, ours = [], []
        for r in range(args.rounds):
            plain += plain_loop(len(vocab), args, tokens)
            ours += rnnlab_loop(path, args, work, r)
            print(f"round {r}: plain {statistics.median(plain):,.0f} tok/s, rnnlab {statistics.median(ours):,.0f}")
    p, o = statistics.median(plain), statistics.median(ours)
    body = (
        f"LSTM {args.layers}x{args.hidden}, embed {args.embed}, batch {args.batch_size}, sequence {args.seq_len}, "
        f"{args.steps} steps x {args.rounds} rounds, interleaved; medians of 10-step windows.\n\n"
        "| loop | tokens/s | ratio |\n|---|---:|---:|\n"
        f"| plain PyTorch (Embedding + LSTM + Linear, Adam) | {p:,.0f} | 1.00 |\n"
        f"| `rnnlab train` | {o:,.0f} | **{o / p:.3f}** |\n\n"
        "Goal: ratio >= 0.95 (rnnlab adds gradient clipping, the memmap stream and logging).\n"
    )
    print(write_result("train_throughput.md", "Training throughput: rnnlab vs a plain PyTorch loop", body))
    print(body)


if __name__ == "__main__":
    main()
