"""Image captioning on the synthetic shapes: held-out BLEU-1..4 and exact-caption accuracy for several
training budgets, greedy against beam search, and a PNG grid of held-out images with their captions.

Every scene has two true captions ("a red circle above a blue square" = "a blue square below a red
circle"); scores are against both, and, to show what scoring against one alone does, against the one the
generator drew.

    nice -n 19 .venv/bin/python benchmarks/caption.py [--steps 150 600 1500 3000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import RESULTS, write_result
from rnnlab.seq.caption import Captioner, render_grid
from rnnlab.seq.sequence import SeqConfig
from rnnlab.tasks.shapes import make_scenes


def row(name: str, scores: tuple[list[float], float]) -> str:
    bleu, exact = scores
    return f"| {name} | " + " | ".join(f"{b:.3f}" for b in bleu) + f" | {exact:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[150, 600, 1500, 3000])
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = Path("/proc/loadavg").read_text().split()[0]
    images, scenes = make_scenes(args.examples, seed=0)
    test_images, test_scenes = make_scenes(args.test, seed=1)
    both = [s.captions() for s in test_scenes]
    drawn = [[s.caption()] for s in test_scenes]
    rows, seconds = [], {}
    for steps in args.steps:
        config = SeqConfig("gru", hidden=64, embed=16, steps=steps, batch_size=32, lr=5e-3, seed=0)
        start = time.perf_counter()
        model = Captioner.train_captions(images, [s.caption() for s in scenes], config)
        seconds[steps] = time.perf_counter() - start
        one_bleu, one_exact = model.evaluate(test_images, drawn)
        rows.append(
            row(f"{steps} steps ({seconds[steps]:.0f}s), greedy", model.evaluate(test_images, both))
            + f" {one_bleu[3]:.3f} | {one_exact:.3f} |"
        )
        print(rows[-1], flush=True)
    greedy_one = row("greedy, scored against the drawn caption only", model.evaluate(test_images, drawn))
    beam_both = row(f"beam {args.beam}", model.evaluate(test_images, both, beam=args.beam))
    greedies = [model.greedy([image])[0][1] for image in test_images]
    beams = [model.beam(image, args.beam)[1] for image in test_images]
    higher = sum(b > g + 1e-9 for b, g in zip(beams, greedies, strict=True))
    lower = sum(b < g - 1e-9 for b, g in zip(beams, greedies, strict=True))
    shown = test_images[:16]
    png = render_grid(
        shown,
        [" ".join(c) for c in model.describe(shown)],
        RESULTS / "caption_samples.png",
        [" ".join(s.caption()) for s in test_scenes[:16]],
    )
    last = args.steps[-1]
    body = f"""
Synthetic shapes (`rnnlab.tasks.shapes`): {args.examples} training images, {args.test} held-out images from
another seed. Captioner: the CNN image encoder + GRU decoder (H=64, D=16), the image vector entering every
step; Adam lr 5e-3 with cosine decay over the step budget, N=32, {args.threads} thread(s), load average
before the run {load}. Scores are corpus BLEU and exact-caption accuracy against both true captions of each
image unless the row says otherwise.

| model | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | exact caption | BLEU-4, drawn caption only | exact, drawn only |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

With the {last}-step model:

| decoding | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | exact caption |
|---|---|---|---|---|---|
{row("greedy", model.evaluate(test_images, both))}
{beam_both}
{greedy_one}

Beam (width {args.beam}) vs greedy log-probability on {len(beams)} held-out images: higher on {higher}, lower on
{lower} (must be 0).

An earlier record of BLEU-4 0.37 after 150 steps had two causes: too few steps (the first table), and
scoring against the drawn caption only, which no model can tell from the other true caption of the same
picture, so about half of the right captions counted as wrong (the last two columns). Held-out images with
their greedy captions (the drawn true caption in brackets): `{png.relative_to(RESULTS.parent.parent)}`.
"""
    print(body)
    print(write_result("caption.md", "Image captioning on synthetic shapes", body))


if __name__ == "__main__":
    main()
