"""Length generalisation of encoder-decoders with no attention, additive (Bahdanau) and dot (Luong)
attention: trained on inputs of 1..L tokens, scored by input length up to 2L on two built-in tasks with known
answers, `spell` (digits -> their names, a monotone alignment) and `reverse` (digits backwards).

    taskset -c 1 .venv/bin/python benchmarks/seq2seq_attention.py [--length 8] [--steps 1200]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import write_result
from rnnlab.seq.seq2seq import Seq2Seq, score_outputs
from rnnlab.seq.sequence import SeqConfig
from rnnlab.tasks.seq2seq_toys import reverse, spell

ATTENTION = ("none", "additive", "dot")


def pairs(task: str, n: int, lengths: range, seed: int) -> list:
    """`n` pairs of each input length in `lengths`."""
    if task == "spell":
        return [p for k in lengths for p in spell(n, length=k, min_length=k, seed=seed * 1000 + k)]
    return [p for k in lengths for p in reverse(n, length=k, seed=seed * 1000 + k)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=8, help="L: the longest training input")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--per-length", type=int, default=200, help="held-out pairs per input length")
    parser.add_argument("--tasks", default="spell,reverse")
    args = parser.parse_args()
    torch.set_num_threads(1)
    L = args.length
    config = SeqConfig("lstm", hidden=args.hidden, embed=32, steps=args.steps, batch_size=64, lr=1e-2, seed=0)
    sections = []
    for task in args.tasks.split(","):
        train = pairs(task, 20_000 // L, range(1, L + 1), seed=0)
        test = {k: pairs(task, args.per_length, range(k, k + 1), seed=1) for k in range(1, 2 * L + 1)}
        results, seconds = {}, {}
        for attention in ATTENTION:
            start = time.process_time()
            model = Seq2Seq.train(train, config, attention=attention, bidirectional=True)
            seconds[attention] = time.process_time() - start
            outputs = {k: [o for o, _ in model.translate([s for s, _ in p])] for k, p in test.items()}
            results[attention] = {k: score_outputs(outputs[k], [t for _, t in test[k]]) for k in test}
            exact = [round(r.exact, 3) for r in results[attention].values()]
            print(task, attention, f"{seconds[attention]:.0f}s CPU", exact, flush=True)
        rows = ["| input length | " + " | ".join(ATTENTION) + " |", "|---|" + "---|" * len(ATTENTION)]
        for k in test:
            mark = " (longer than training)" if k > L else ""
            cells = [f"{results[a][k].exact:.3f} ({results[a][k].token_accuracy:.3f})" for a in ATTENTION]
            rows.append(f"| {k}{mark} | " + " | ".join(cells) + " |")
        for name, ks in (("mean 1..L", range(1, L + 1)), ("mean L+1..2L", range(L + 1, 2 * L + 1))):
            cells = [
                f"**{sum(results[a][k].exact for k in ks) / len(ks):.3f}** "
                f"({sum(results[a][k].token_accuracy for k in ks) / len(ks):.3f})"
                for a in ATTENTION
            ]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        cpu = ", ".join(f"{a} {seconds[a]:.0f}s" for a in ATTENTION)
        sections.append(f"### `{task}`\n\nTraining CPU time: {cpu}.\n\n" + "\n".join(rows))
    body = f"""
Each model: bidirectional LSTM encoder ({args.hidden // 2} units each way) and LSTM decoder of {args.hidden}
units, embed 32, Adam lr 0.01 with cosine decay, batch 64, {args.steps} steps, seed 0 (one seed per cell of the
table), trained on {20_000 // L} pairs of each input length 1..L = 1..{L}; held out: {args.per_length} new pairs
of each length 1..{2 * L}, greedy decoding (the output limit grows with the input). Cells: exact match (per-token
accuracy: target tokens right at their own position). `spell`: "407" -> "four zero seven"; `reverse`: "407" ->
"704".

{(chr(10) * 2).join(sections)}
"""
    print(body)
    print(write_result("seq2seq_attention.md", "Seq2seq: attention and length generalisation", body))


if __name__ == "__main__":
    main()
