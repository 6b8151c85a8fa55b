"""Guards the default recipe (`--preset small`, what benchmarks/quality.py trains) against regressions: at a
small scale, on a fixed generated text, it must keep reaching the validation loss it reached when recorded.

The bound is the recorded value plus a margin for different CPUs' float rounding; a change to the cell, the
trainer, the schedule or the preset that makes learning slower fails here in seconds, long before a
20-minute benchmark would show it."""

from __future__ import annotations

import random
from pathlib import Path

import torch

import rnnlab

# Recorded on 2026-12-07 (AMD EPYC, torch 2.13.0) for the GRU recipe: 0.529 bits/char after 800 steps, against a
# unigram entropy of 4.34. The same run with --lr 1e-3 instead of the preset's 3e-3 reached 0.911, and at 400
# steps the recipe was at 0.771: the margin is far below what a slower recipe loses. (The LSTM 2x256 recipe
# before it reached 1.008 here.)
RECORDED_BPC = 0.529
MARGIN = 0.1


def _text(chars: int, seed: int = 0) -> str:
    """Sentences from a fixed random bigram grammar over 60 made-up words: structure an RNN can learn."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwyp"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 7))) for _ in range(60)]
    follows = {w: rng.sample(words, 4) for w in words}
    out, word = [], words[0]
    while sum(map(len, out)) < chars:
        sentence = [word.capitalize()]
        for _ in range(rng.randint(3, 9)):
            word = rng.choice(follows[word])
            sentence.append(word)
        out.append(" ".join(sentence) + (".\n" if rng.random() < 0.3 else ". "))
        word = rng.choice(follows[word])
    return "".join(out)


def test_the_default_recipe_still_learns_as_fast_as_recorded(tmp_path: Path) -> None:
    corpus = tmp_path / "grammar.txt"
    corpus.write_text(_text(120_000))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the recorded figure is single-threaded
    try:
        result = rnnlab.train(
            [str(corpus)], out=tmp_path / "run", preset="small", progress=False,
            hidden=64, embed=16, precision="fp32",  # small scale, and the same rounding on every CPU
            max_steps=800, eval_every=800, eval_tokens=20_000, val_fraction=0.1,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert result.best_val_bpc < RECORDED_BPC + MARGIN
