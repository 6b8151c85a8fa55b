"""Visual question answering on the synthetic shapes: held-out answer accuracy, overall and per question
form, beside two image-blind baselines, and a PNG grid of held-out questions with the model's answers.

    nice -n 19 .venv/bin/python benchmarks/vqa.py [--steps 4000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import torch

from common import RESULTS, write_result
from rnnlab.seq.caption import render_grid
from rnnlab.seq.sequence import SeqConfig
from rnnlab.seq.vqa import VQA
from rnnlab.tasks.shape_questions import EXAMPLES, FORMS, form, majority_baselines, make_questions
from rnnlab.tasks.shapes import make_scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--scenes", type=int, default=4000)
    parser.add_argument("--per-scene", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = Path("/proc/loadavg").read_text().split()[0]
    images, scenes = make_scenes(args.scenes, seed=0)
    train = make_questions(scenes, args.per_scene, seed=0)
    test_images, test_scenes = make_scenes(1000, seed=1)
    test = make_questions(test_scenes, 4, seed=1)
    config = SeqConfig(cell=args.cell, hidden=args.hidden, embed=16, steps=args.steps, batch_size=64, lr=5e-3, seed=0)
    start = time.perf_counter()
    model = VQA.train(images, train, config, log=lambda s, loss: print(f"step {s} loss {loss:.4f}", flush=True))
    seconds = time.perf_counter() - start
    predicted = []
    for i in range(0, len(test), 500):
        chunk = test[i : i + 500]
        predicted += model.predict(test_images[[j for j, _, _ in chunk]], [q for _, q, _ in chunk])
    right, asked = Counter(), Counter()
    for (_, question, answer), guess in zip(test, predicted, strict=True):
        asked[form(question)] += 1
        right[form(question)] += guess == answer
    accuracy = sum(right.values()) / len(test)
    majority, per_form = majority_baselines(train, test)
    forms = "\n".join(
        f'| `{name}`, e.g. "{example}" | {asked[name]} | {right[name] / asked[name]:.3f} |'
        for name, example in zip(FORMS, EXAMPLES, strict=True)
    )
    shown = test[::4][:16]
    png = render_grid(
        test_images[[i for i, _, _ in shown]],
        [f"{q} {p}" for (_, q, _), p in zip(shown, predicted[::4], strict=False)],
        RESULTS / "vqa_samples.png",
        [a for _, _, a in shown],
    )
    body = f"""
Synthetic shapes (`rnnlab.tasks.shapes`) with generated questions (`rnnlab.tasks.shape_questions`, six
forms drawn equally often, one-word answers from {len(model.answers)}): {len(train)} training questions
about {args.scenes} images, {len(test)} held-out questions about 1000 unseen images (another seed).
Model (`rnnlab.seq.vqa`): the captioner's CNN image vector v, a {args.cell.upper()} (H={args.hidden}, D=16)
reading the question with v at every step and h_0 = tanh(W v), answer from the last step. Adam lr 5e-3,
cosine decay over {args.steps} steps, N=64; trained {seconds:.0f}s on {args.threads} thread(s), load average
before the run {load}.

| answerer | held-out accuracy |
|---|---|
| majority answer (always "{Counter(a for _, _, a in train).most_common(1)[0][0]}") | {majority:.3f} |
| majority answer of the question's form (image-blind) | {per_form:.3f} |
| **VQA model** | **{accuracy:.3f}** |

| question form | held-out questions | accuracy |
|---|---|---|
{forms}

Held-out images with a question, the model's answer after it, and the true answer in brackets:
`{png.relative_to(RESULTS.parent.parent)}`.
"""
    print(body)
    print(write_result("vqa.md", "Visual question answering on synthetic shapes", body))


if __name__ == "__main__":
    main()
