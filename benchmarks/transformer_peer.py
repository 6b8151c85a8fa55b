"""The peer most people would train instead today: a small decoder-only Transformer (x-transformers, not written
here) on the same tokens as an rnnlab run, for a wall-clock budget on the same machine, with about the same
number of parameters, scored on the held-out file with every scored token seeing at least half a context window.

    .venv/bin/pip install x-transformers
    .venv/bin/python benchmarks/transformer_peer.py RUN_DIR VALID_FILE --time 20m [--threads 1] [--json OUT]
    .venv/bin/python benchmarks/transformer_peer.py RUN_DIR --tail --time 20m

RUN_DIR is a finished `rnnlab train` run: its tokenizer encodes the text and its token store's training split
is the training data (the same tokens the network saw; its held-out tail picks nothing here). The model's width
is chosen so that its parameter count is closest to the run's network. Training: AdamW, a linear warm-up then
a cosine decay over the time budget, random windows of the training tokens, in the precision rnnlab's own
`--precision auto` picks on this machine (bf16 autocast where the CPU computes bf16 natively), so that neither
model has a faster arithmetic than the other. Scoring: windows of the context
length L with stride L/2, each scoring only its second half (the first window scores all of it), so every
scored token after the first L sees between L/2 and L tokens before it; the first token is context only, as in
`rnnlab eval`. Prints bits per character of VALID_FILE; `quality.py` calls it for its Transformer column. With
`--tail` it scores the run's own held-out tail instead (the token store's validation split, which neither model
trains on): the peer's figure on the text a recipe may be chosen by, where the validation file may not be used.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import rnnlab
from rnnlab.config import parse_duration
from rnnlab.data.prepare import TokenStore
from rnnlab.train.precision import Precision

LN2 = math.log(2)


def build(vocab: int, dim: int, depth: int, context: int) -> torch.nn.Module:
    """A GPT-style decoder: token and learned position embeddings, `depth` pre-norm blocks of `dim` wide."""
    from x_transformers import Decoder, TransformerWrapper

    layers = Decoder(dim=dim, depth=depth, heads=max(dim // 32, 1), attn_dim_head=32, ff_mult=4)
    return TransformerWrapper(num_tokens=vocab, max_seq_len=context, attn_layers=layers)


def matching_width(vocab: int, depth: int, context: int, params: int) -> int:
    """The width (a multiple of 32) whose model's parameter count is closest to `params`."""
    widths = range(32, 1025, 32)
    return min(widths, key=lambda d: abs(sum(p.numel() for p in build(vocab, d, depth, context).parameters()) - params))


def train(
    model: torch.nn.Module, tokens: np.ndarray, args: argparse.Namespace, seconds: float, precision: Precision
) -> int:
    """Train for `seconds` of wall time under `precision`'s autocast; returns the number of steps taken."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    data = torch.from_numpy(tokens.astype(np.int64))
    generator = torch.Generator().manual_seed(0)
    model.train()
    start, step = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - start) < seconds:
        progress = elapsed / seconds
        warm = min(1.0, (step + 1) / args.warmup)
        scale = warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimiser.param_groups:
            group["lr"] = args.lr * scale
        starts = torch.randint(len(data) - args.context - 1, (args.batch_size,), generator=generator)
        batch = torch.stack([data[s : s + args.context + 1] for s in starts.tolist()])
        with precision.autocast():
            logits = model(batch[:, :-1]).float()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step}  loss {loss.item() / LN2:.3f} bits/token  {elapsed:.0f}s", flush=True)
    return step


@torch.no_grad()
def token_nats(model: torch.nn.Module, ids: np.ndarray, context: int, batch: int = 32) -> np.ndarray:
    """-ln p(ids[i + 1] | before it) for every i, in order: windows of `context` tokens, stride context/2, each
    scoring its second half (the first window all of it)."""
    model.eval()
    data = torch.from_numpy(ids.astype(np.int64))
    half = context // 2
    windows = []  # (start, first position scored within the window, end)
    for start in range(0, max(len(data) - 1, 1), half):
        end = min(start + context, len(data) - 1)
        first = 0 if start == 0 else half
        if end - start > first:
            windows.append((start, first, end))
        if end == len(data) - 1:
            break
    nats = np.zeros(max(len(data) - 1, 0))
    for i in range(0, len(windows), batch):
        group = windows[i : i + batch]
        width = max(end - start for start, _, end in group)
        x = torch.zeros(len(group), width, dtype=torch.long)
        for row, (start, _, end) in enumerate(group):
            x[row, : end - start] = data[start:end]
        logp = F.log_softmax(model(x).double(), dim=-1)
        for row, (start, first, end) in enumerate(group):
            targets = data[start + first + 1 : end + 1]
            nats[start + first : end] = -logp[row, first : end - start].gather(1, targets[:, None])[:, 0].numpy()
    return nats


def score(model: torch.nn.Module, ids: np.ndarray, context: int, batch: int = 32) -> tuple[float, int]:
    """Total nats of ids[1:], and how many tokens that is (`token_nats`)."""
    nats = token_nats(model, ids, context, batch)
    return float(nats.sum()), len(nats)


def arguments() -> argparse.ArgumentParser:
    """The command line, whose defaults are the peer's settings (benchmarks/copy_gap.py reuses them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished rnnlab run: its tokenizer and training tokens")
    parser.add_argument("valid", type=Path, nargs="?", help="the held-out file to score")
    parser.add_argument("--tail", action="store_true", help="score the run's held-out tail instead of VALID")
    parser.add_argument("--time", default="20m", help="wall-clock training budget")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--precision", default="auto", help="auto (as rnnlab's training picks), fp32 or bf16")
    parser.add_argument("--json", type=Path, help="write the result here as JSON")
    return parser


def main() -> None:
    parser = arguments()
    args = parser.parse_args()
    if (args.valid is None) == (not args.tail):
        parser.error("give either VALID or --tail")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lm = rnnlab.LanguageModel.load(args.run)
    vocab, params = lm.tokenizer.vocab_size, lm.module.num_parameters()
    tokens = np.asarray(TokenStore.open(args.run).train.tokens)
    width = matching_width(vocab, args.depth, args.context, params)
    model = build(vocab, width, args.depth, args.context)
    own = sum(p.numel() for p in model.parameters())
    print(f"transformer: depth {args.depth}, width {width}, {own:,} parameters (rnnlab's network: {params:,})")
    precision = Precision(args.precision, torch.device("cpu"))
    print(f"precision: {precision.name}")
    steps = train(model, tokens, args, parse_duration(args.time), precision)
    if args.tail:
        ids = np.asarray(TokenStore.open(args.run).val.tokens)
        text = lm.tokenizer.decode(ids.tolist())
    else:
        text = args.valid.read_bytes() if lm.tokenizer.kind == "byte" else args.valid.read_text()
        ids = lm.tokenizer.encode_bytes(text) if isinstance(text, bytes) else lm.tokenizer.encode(text)
    nats, scored = score(model, np.asarray(ids), args.context)
    chars = len(text.decode("utf-8", errors="replace")) if isinstance(text, bytes) else len(text)
    bpc = nats / LN2 / (chars - 1)  # the first token (one character or byte) is context only, as in rnnlab eval
    result = {
        "bpc": bpc,
        "tokens_scored": scored,
        "params": own,
        "width": width,
        "depth": args.depth,
        "context": args.context,
        "steps": steps,
        "precision": precision.name,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
