"""Word-level language model on Shakespeare: validation perplexity (per word-level token) and bits per
character of the original text, beside a unigram model fitted on the same vocabulary.

train.txt is the only training text (its last 2% picks the best checkpoint); valid.txt is only scored.

    nice -n 19 .venv/bin/python benchmarks/word_lm.py [--max-time 7m] [--vocab-size 4000]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

import rnnlab
from common import ROOT, corpus, write_result
from rnnlab.config import parse_duration
from rnnlab.data.tokenizers import WordTokenizer


def unigram_nats(tokenizer: WordTokenizer, train: str, valid: str) -> float:
    """Total nats of valid.txt (first token excluded) under add-one-smoothed token frequencies of train.txt."""
    counts = np.bincount(tokenizer.encode(train), minlength=tokenizer.vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[tokenizer.encode(valid)[1:]].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", default="7m")
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    train, valid = corpus("shakespeare", "train"), corpus("shakespeare", "valid")
    if train is None or valid is None:
        raise SystemExit("shared Shakespeare data not found")
    out = ROOT / "benchmarks" / "runs" / "word_lm"
    start = time.perf_counter()
    options = {
        "tokenizer": "word",
        "vocab_size_limit": args.vocab_size,
        "cell": "lstm",
        "layers": 1,
        "hidden": args.hidden,
        "embed": args.hidden,
        "tie_weights": True,
        "batch_size": 32,
        "seq_len": 32,
        "lr": 3e-3,
        "warmup": 50,
        "val_fraction": 0.02,
        "eval_every": 200,
        "eval_tokens": 20000,
        "max_time": parse_duration(args.max_time),
    }
    result = rnnlab.train([str(train)], out=out, progress=False, **options)
    lm = rnnlab.LanguageModel.load(out)
    score = lm.score_files([valid])
    seconds = time.perf_counter() - start
    train_text, valid_text = Path(train).read_text(), Path(valid).read_text()
    nats = unigram_nats(lm.tokenizer, train_text, valid_text)
    tokens = len(lm.tokenizer.encode(valid_text)) - 1
    unk = float(np.mean(lm.tokenizer.encode(valid_text) == 0))
    unigram_ppl, unigram_bpc = math.exp(nats / tokens), nats / math.log(2) / score.chars
    body = f"""
Word-level LSTM (1 layer, H = D = {args.hidden}, tied embedding/output weights), vocabulary of the
{args.vocab_size - 1} most frequent pieces of train.txt plus `<unk>` (pieces are words, whitespace runs and
punctuation marks, so the text round-trips; {unk:.1%} of valid.txt's pieces are `<unk>`). Trained
{result.steps} steps ({options["max_time"]:.0f}s budget), N=32, T=32; {seconds:.0f}s in all with evaluation.
Options: `{options}`.

| model on valid.txt | perplexity (per token) | bits per char | tokens | chars |
|---|---|---|---|---|
| unigram (add-one, same vocabulary) | {unigram_ppl:.1f} | {unigram_bpc:.3f} | {tokens} | {score.chars} |
| word-level LSTM | {score.perplexity:.1f} | {score.bits_per_char:.3f} | {score.tokens} | {score.chars} |

Bits per character divide the total bits by the characters of the original valid.txt that the scored
tokens cover. `<unk>` tokens are scored as one outcome, so perplexity over a capped vocabulary is lower
than that of a model that must spell out rare words; bits per character compare fairly only among models
with the same `<unk>` treatment.
"""
    print(body)
    print(write_result("word_lm.md", "Word-level language model on Shakespeare", body))


if __name__ == "__main__":
    main()
