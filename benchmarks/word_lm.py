"""Word-level, BPE and character language models on Shakespeare, trained in the same run with the same
time budget and the same LSTM size: validation perplexity per token and bits per character of the
original text, beside a unigram model fitted on the word vocabulary.

train.txt is the only training text (its last 2% picks the best checkpoint); valid.txt is only scored.

    nice -n 19 .venv/bin/python benchmarks/word_lm.py [--max-time 5m] [--models word bpe char] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import rnnlab
from common import ROOT, corpus, write_result
from rnnlab.config import parse_duration
from rnnlab.data.tokenizers import WordTokenizer


def unigram_nats(tokenizer: WordTokenizer, train: str, valid: str) -> float:
    """Total nats of valid.txt (first token excluded) under add-one-smoothed token frequencies of train.txt."""
    counts = np.bincount(tokenizer.encode(train), minlength=tokenizer.vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[tokenizer.encode(valid)[1:]].sum())


def spelling_bits(tokenizer: WordTokenizer, train: str, valid: str) -> float:
    """Bits to spell out each `<unk>` piece of valid.txt (the first piece excluded, as the models score it)
    with a character unigram plus an end mark, fitted (add-one) on the out-of-vocabulary pieces of
    train.txt: the part of the text that the word-level model's bits leave unpaid."""

    def rare(text: str, skip: int = 0) -> list[str]:
        pieces, ids = tokenizer.pieces(text, normalise=True), tokenizer.encode(text)
        return [piece for piece, i in list(zip(pieces, ids, strict=True))[skip:] if i == 0]

    seen, asked = rare(train), rare(valid, skip=1)
    counts = Counter(c for piece in seen for c in piece)
    alphabet = set(counts) | {c for piece in asked for c in piece}
    total = sum(counts.values()) + len(seen) + len(alphabet) + 1  # + one end mark per piece, add-one

    def bits(n: int) -> float:
        return -math.log2((n + 1) / total)

    return sum(sum(bits(counts[c]) for c in piece) + bits(len(seen)) for piece in asked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", default="5m", help="training budget of each model")
    parser.add_argument("--models", nargs="+", default=["word", "bpe", "char"], choices=["word", "bpe", "char"])
    parser.add_argument("--vocab-size", type=int, default=4000, help="word vocabulary, <unk> included")
    parser.add_argument("--bpe-vocab-size", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, valid = corpus("shakespeare", "train"), corpus("shakespeare", "valid")
    if train is None or valid is None:
        raise SystemExit("shared Shakespeare data not found")
    load = Path("/proc/loadavg").read_text().split()[0]
    H = args.hidden
    common = {
        "cell": "lstm",
        "layers": 1,
        "hidden": H,
        "batch_size": 32,
        "lr": 3e-3,
        "warmup": 50,
        "val_fraction": 0.02,
        "eval_every": 200,
        "eval_tokens": 20000,
        "max_time": parse_duration(args.max_time),
    }
    # T is about 128 characters for each: ~4 characters per BPE token, ~2.3 per word-level piece
    specific = {
        "word": {
            "tokenizer": "word",
            "vocab_size_limit": args.vocab_size,
            "embed": H,
            "tie_weights": True,
            "seq_len": 56,
        },
        "bpe": {
            "tokenizer": "bpe",
            "vocab_size_limit": args.bpe_vocab_size,
            "embed": H,
            "tie_weights": True,
            "seq_len": 32,
        },
        "char": {"tokenizer": "char", "unknown": "unk", "embed": 32, "seq_len": 128},
    }
    rows, notes = [], []
    for name in args.models:
        out = ROOT / "benchmarks" / "runs" / f"{name}_lm"
        shutil.rmtree(out, ignore_errors=True)  # this script's own scratch run from an earlier time
        start = time.perf_counter()
        result = rnnlab.train([str(train)], out=out, progress=False, **common, **specific[name])
        lm = rnnlab.LanguageModel.load(out)
        score = lm.score_files([valid])
        seconds = time.perf_counter() - start
        label = {"word": "word-level LSTM", "bpe": "BPE LSTM", "char": "character LSTM"}[name]
        rows.append(
            f"| {label} | {lm.tokenizer.vocab_size} | {result.steps} | {score.perplexity:.1f} | "
            f"**{score.bits_per_char:.3f}** | {score.tokens} | {score.chars} |"
        )
        notes.append(f"- {name}: `{specific[name]}`, {seconds:.0f}s with scoring")
        print(rows[-1], flush=True)
        if name == "word":
            train_text, valid_text = Path(train).read_text(), Path(valid).read_text()
            nats = unigram_nats(lm.tokenizer, train_text, valid_text)
            ids = lm.tokenizer.encode(valid_text)
            unk = float(np.mean(ids == 0))
            tokens = len(ids) - 1
            rows.insert(
                0,
                f"| unigram (add-one, word vocabulary) | {lm.tokenizer.vocab_size} | - | "
                f"{math.exp(nats / tokens):.1f} | {nats / math.log(2) / score.chars:.3f} | {tokens} | {score.chars} |",
            )
            notes.append(f"- word: {unk:.1%} of valid.txt's word-level pieces are `<unk>`")
            spelled = score.bits_per_char * score.chars + spelling_bits(lm.tokenizer, train_text, valid_text)
            rows.append(
                f"| word-level LSTM + `<unk>` spelled out (character unigram) | - | - | - | "
                f"**{spelled / score.chars:.3f}** | - | {score.chars} |"
            )
    body = f"""
Each model: a 1-layer LSTM with H = {H}, trained on train.txt for {common["max_time"]:.0f}s (N = 32, Adam lr 3e-3,
cosine decay over the time budget, {args.threads} thread(s)); load average before the run {load}.
Word-level pieces are words, whitespace runs and punctuation marks (the text round-trips), the
{args.vocab_size - 1} most frequent plus `<unk>`; BPE is byte-level (Hugging Face `tokenizers`), no `<unk>`.
Word and BPE models tie embedding and output weights. Shared options: `{common}`.

| model on valid.txt | vocabulary | steps | perplexity (per own token) | bits per char | tokens | chars |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{chr(10).join(notes)}

Bits per character divide the total bits by the characters of the original valid.txt that the scored
tokens cover, so they compare models with different tokens; perplexities compare only models with the
same tokens. The word-level model scores `<unk>` as one outcome (it never spells a rare word out), which
makes its bits per character optimistic against the BPE and character models, which pay for every character;
the row "`<unk>` spelled out" adds the bits of spelling each `<unk>` piece with a character unigram fitted on
train.txt's out-of-vocabulary pieces, an honest (if crude) price for what the word model leaves out.
"""
    print(body)
    print(write_result("word_lm.md", "Word-level, BPE and character language models on Shakespeare", body))


if __name__ == "__main__":
    main()
