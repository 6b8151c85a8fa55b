"""CTC line recognition on rendered text lines: held-out character error rate (CER), greedy and prefix beam
decoding, bidirectional against forward-only reading, beside image-blind baselines; and a PNG of held-out
lines with their decoded text and per-frame best class.

Training and held-out lines come from different seeds of `rnnlab.tasks.lines` (other random texts, sizes,
spacing and noise). Run it pinned to one core:

    taskset -c 1 .venv/bin/python benchmarks/ctc.py [--steps 2500] [--hidden 64] [--train 4000] [--test 500]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import RESULTS, write_result
from rnnlab.seq.ctc import LineReader, Reading, baselines, cer, plot_lines
from rnnlab.seq.sequence import SeqConfig
from rnnlab.tasks.lines import make_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--beam", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = Path("/proc/loadavg").read_text().split()[0]
    images, texts = make_lines(args.train, seed=0, height=32)
    test_images, test_texts = make_lines(args.test, seed=1, height=32)
    chars = sum(map(len, test_texts))
    rows, models = [], {}
    for bidirectional in (True, False):
        config = SeqConfig("gru", hidden=args.hidden, embed=args.hidden, steps=args.steps, batch_size=32, lr=3e-3)
        wall, cpu = time.perf_counter(), time.process_time()
        model = LineReader.train(images, texts, config, Reading(32, 2, bidirectional))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        greedy = model.cer(test_images, test_texts)
        start = time.process_time()
        beam = model.cer(test_images, test_texts, beam=args.beam)
        beam_cpu = time.process_time() - start
        seen = model.cer(images[: args.test], texts[: args.test])
        name = "bidirectional" if bidirectional else "forward only"
        rows.append(
            f"| {name} GRU {args.hidden} | {args.steps} | {cpu:.0f} ({wall:.0f}) | {greedy:.4f} | {beam:.4f} "
            f"({beam_cpu:.1f} s) | {seen:.4f} |"
        )
        models[name] = model
        print(rows[-1], flush=True)
    blind = baselines(texts, test_texts)
    blind_rows = [f"| image-blind: {name} | - | - | {value:.4f} | - | - |" for name, value in blind.items()]
    best = models["bidirectional"]
    decoded = best.decode(test_images[:12])
    examples = "\n".join(
        f"| `{ref}` | `{out}` | {cer([out], [ref]):.3f} |" for ref, out in zip(test_texts[:12], decoded, strict=True)
    )
    shown = [0, 1, 2]
    png = plot_lines(
        [test_images[i] for i in shown],
        [decoded[i] for i in shown],
        RESULTS / "ctc_line.png",
        [test_texts[i] for i in shown],
        best.log_probs([test_images[i] for i in shown]),
        best.alphabet,
        best.reading.window,
    )
    header = (
        f"| model | steps | training CPU s (wall s) | held-out CER, greedy | held-out CER, beam {args.beam} (CPU) "
        f"| CER on {args.test} training lines, greedy |"
    )
    body = f"""
Rendered text lines (`rnnlab.tasks.lines`, 32 px high, 1-16 characters of `a-z 0-9` and space, Pillow's own
scalable font at random sizes, random letter and word spacing, vertical jitter, uneven lighting and pixel
noise): {args.train} training lines (seed 0), {args.test} held-out lines (seed 1: other texts and noise),
{chars} held-out characters. Each frame is 2 pixel columns (64 values); a linear layer (D = H) and tanh,
then one GRU layer of H = {args.hidden} per direction, then blank + {len(best.alphabet)} characters.
`torch.nn.functional.ctc_loss`; Adam lr 3e-3 with cosine decay to 10%, batch 32, {args.steps} steps, clip 1.0,
seed 0; {args.threads} thread(s), load average before the run {load} (the 2-core machine was shared, so wall
time is several times the CPU time). CER = total edit distance / total reference length.

{header}
|---|---|---|---|---|---|
{chr(10).join(rows)}
{chr(10).join(blind_rows)}

The image-blind baselines: printing nothing (CER exactly 1.0: every reference character is a deletion), and
the training texts' most frequent character repeated the mean training length.

First held-out lines, bidirectional model, greedy:

| reference | decoded | CER |
|---|---|---|
{examples}

`{png.relative_to(RESULTS.parent.parent)}`: the first three held-out lines, each with its decoded text, the
reference, and under the image the per-frame best class (a dot: blank).
"""
    write_result("ctc.md", "CTC line recognition on rendered text lines", body)


if __name__ == "__main__":
    main()
