"""Single-stream sampling speed on one CPU thread: characters per second of `LanguageModel.stream` (what
`rnnlab sample` and the web server run) against the sampler it replaced, measured in the same run.

    .venv/bin/python benchmarks/sampling.py [--tokens 2000] [--rounds 5] [--vocab 84]

Models: the `--preset small` GRU (2x300, embed 64), the LSTM 2x256 it replaced, a 2x512 LSTM and a 2x512 GRU
(NumPy stepper), a gru-cho 2x256 (no NumPy equations: the module's one-step forward, `ModuleStepper`) and the
mLSTM 3x128 of the kernel C recipe (its block's own NumPy step, `CellStepper`).
Weights are PyTorch's random initialisation (their values do not change the work of a step); the vocabulary is
V characters.

Baseline ("module path"): the previous sampler, the module's forward for every token (`torch.lstm`/`gru` for a
(1, 1) input) and the token chosen in PyTorch (softmax, then `torch.multinomial`). Each round times the
baseline and then `stream` for every model and setting, so load from other processes hits the pair alike;
chars/s is the median over rounds, the speed-up the median of the rounds' paired ratios. One thread:
OMP/OpenBLAS/MKL threads are set to 1 before NumPy and PyTorch load, and torch.set_num_threads(1).
Results: results/sampling.md.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

# The imports come after the thread settings, which NumPy's BLAS and PyTorch read when they load.
import argparse  # noqa: E402
import statistics  # noqa: E402
import string  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import ROOT, write_result  # noqa: E402
from rnnlab.config import build_configs  # noqa: E402
from rnnlab.data.tokenizers import CharTokenizer  # noqa: E402
from rnnlab.lm.model import RNNLM, LanguageModel  # noqa: E402
from rnnlab.lm.stepper import make_stepper  # noqa: E402

PRIME = "The "

# name -> options of build_configs (preset first, explicit values override it)
MODELS: dict[str, dict] = {
    "gru 2x300 (--preset small)": {"preset": "small"},
    "lstm 2x256 (--preset small until 2026-12-07)": {"preset": "small", "hidden": 256, "cell": "lstm"},
    "lstm 2x512": {"preset": "small", "hidden": 512, "cell": "lstm"},
    "gru 2x512": {"preset": "small", "hidden": 512, "cell": "gru"},
    "gru-cho 2x256": {"preset": "small", "hidden": 256, "cell": "gru-cho"},
    "mlstm 3x128": {"preset": "small", "layers": 3, "hidden": 128, "cell": "mlstm"},
}

# setting -> stream options; the extra settings run on the first model only
SETTINGS: dict[str, dict] = {
    "temperature 1": {},
    "greedy": {"greedy": True},
    "temperature 0.8, top-k 40, top-p 0.95": {"temperature": 0.8, "top_k": 40, "top_p": 0.95},
}


def language_model(options: dict, vocab: int) -> LanguageModel:
    """A character model with random weights, in eval mode on the CPU."""
    tokenizer = CharTokenizer((string.ascii_letters + string.digits + " \n" + string.punctuation)[:vocab])
    config, _ = build_configs(vocab_size=tokenizer.vocab_size, **options)
    torch.manual_seed(0)
    return LanguageModel(RNNLM(config).eval(), tokenizer)


def old_next_token(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, greedy: bool, generator: torch.Generator
) -> int:
    """The previous `rnnlab.lm.generate.next_token`, in PyTorch (same filters, same order)."""
    if greedy or temperature == 0:
        return int(torch.argmax(logits))
    logits = logits.double() / temperature
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = (probs.cumsum(-1) - probs) >= top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator))


@torch.no_grad()
def module_path(lm: LanguageModel, length: int, options: dict) -> str:
    """The previous sampler's loop: prime through the module, then the module's forward for every token."""
    choice = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "greedy": False, **options}
    generator = torch.Generator().manual_seed(0)
    logits, state, _ = lm.module(torch.from_numpy(lm.tokenizer.encode(PRIME))[None])
    decode, pieces = lm.tokenizer.decoder(), []
    for _ in range(length):
        token = old_next_token(logits[0, -1].float().cpu(), generator=generator, **choice)
        pieces.append(decode(token))
        logits, state, _ = lm.module(torch.tensor([[token]]), state)
    return "".join(pieces)


def stream_path(lm: LanguageModel, length: int, options: dict) -> str:
    """The sampler now: `LanguageModel.stream`, piece by piece, as `rnnlab sample` consumes it."""
    return "".join(lm.stream(PRIME, length, seed=0, **options))


def chars_per_s(run: Callable[[LanguageModel, int, dict], str], lm: LanguageModel, length: int, options: dict) -> float:
    start = time.perf_counter()
    text = run(lm, length, options)
    return len(text) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per timed sample (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (default 5)")
    parser.add_argument("--vocab", type=int, default=84, help="characters in the vocabulary, 64-96 (default 84)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = Path("/proc/loadavg").read_text().split()[:3]

    cases = []  # (model name, setting name, language model, stream options)
    for i, (name, options) in enumerate(MODELS.items()):
        lm = language_model(options, args.vocab)
        for setting, stream_options in list(SETTINGS.items())[: len(SETTINGS) if i == 0 else 1]:
            cases.append((name, setting, lm, stream_options))
    old: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    new: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    for r in range(args.rounds):
        for i, (name, setting, lm, options) in enumerate(cases):
            old[i].append(chars_per_s(module_path, lm, args.tokens, options))
            new[i].append(chars_per_s(stream_path, lm, args.tokens, options))
            print(f"round {r + 1}: {name}, {setting}: {old[i][-1]:.0f} -> {new[i][-1]:.0f} chars/s", flush=True)
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    rows = [
        "| model | parameters | setting | stepper | module path chars/s | `stream` chars/s | speed-up |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for i, (name, setting, lm, _) in enumerate(cases):
        ratio = statistics.median(b / a for a, b in zip(old[i], new[i], strict=True))
        rows.append(
            f"| {name} | {lm.module.num_parameters():,} | {setting} | {type(make_stepper(lm.module)).__name__} | "
            f"{statistics.median(old[i]):,.0f} | {statistics.median(new[i]):,.0f} | {ratio:.1f}x |"
        )
    body = (
        f"Single-stream sampling, {args.tokens} tokens per timed sample after the prime {PRIME!r}, "
        f"{args.rounds} rounds (median), vocabulary of {args.vocab} characters, random weights, one thread "
        f"(torch {torch.__version__}, NumPy {np.__version__}). Load average (1, 5, 15 min) "
        f"{' '.join(load_before)} before, {' '.join(load_after)} after, on {os.cpu_count()} cores (a load above the "
        "core count means other jobs shared the CPU: chars/s are then lower bounds, and the speed-ups, paired "
        "within each round, are the figures to compare).\n\n"
        "Module path: the previous sampler (the module's forward for every token, the choice in PyTorch). "
        "`stream`: `LanguageModel.stream` as `rnnlab sample` runs it (the prime through the sequence forward, "
        "then the stepper from `make_stepper` and the choice in NumPy). Speed-up: median of the rounds' paired "
        "ratios. gru-cho has no NumPy equations: both paths run the module's one-step forward, and only the "
        "token choice differs.\n\n" + "\n".join(rows)
    )
    sampler = ["src/rnnlab/lm", "src/rnnlab/nn", "src/rnnlab/data/tokenizers.py"]
    status = ["git", "status", "--porcelain", "--", *sampler, "benchmarks/sampling.py"]
    dirty = subprocess.run(status, capture_output=True, text=True, cwd=ROOT).stdout.splitlines()
    changed = sorted(line[3:] for line in dirty if line.strip())
    if changed:
        body += f"\n\nMeasured with uncommitted changes to the sampler's files: {', '.join(changed)}."
    path = write_result("sampling.md", "Sampling speed: one stream, one CPU thread", body)
    print(body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
