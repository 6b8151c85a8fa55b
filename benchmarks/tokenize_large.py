"""Tokenizing a corpus larger than we want in memory: speed (MB/s) and peak resident memory.

Writes a ~1 GB text file (Python-like text with some multi-byte characters) to a temporary folder,
builds rnnlab's token store from it in a child process (char tokenizer, 5% validation from the end)
and reads the child's peak RSS (VmHWM via getrusage). The baseline beside it: the peak RSS of a child
that only imports rnnlab's data code, i.e. what the interpreter, NumPy and PyTorch cost before any text.

    python benchmarks/tokenize_large.py [--gb 1.0] [--tokenizer char]
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_result

CHILD = """
import sys, time
from pathlib import Path
from rnnlab.config import build_configs
from rnnlab.data.prepare import build_token_store
_, config = build_configs(inputs=[sys.argv[1]], tokenizer=sys.argv[3], batch_size=64, seq_len=256)
started = time.perf_counter()
store = build_token_store(config, Path(sys.argv[2]))
print(time.perf_counter() - started, len(store.train.tokens), len(store.val.tokens))
"""


def make_corpus(path: Path, size: int) -> None:
    """~`size` bytes of Python-like text with accented letters and symbols: 256 distinct 16 KB blocks
    (the tests' generator) in a random order, so generating 1 GB takes seconds."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_text

    blocks = [
        make_text(1 << 14, seed=seed).replace("value", "valüe").replace("node", "nœud → ☃") + "\n"
        for seed in range(256)
    ]
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < size:
            block = rng.choice(blocks)
            f.write(block)
            written += len(block.encode("utf-8"))


def child_peak_rss(args: list[str]) -> tuple[str, float]:
    """Run a Python child; its stdout and peak RSS in MB (getrusage: the largest child waited for so far,
    and this is the first)."""
    out = subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True).stdout
    return out, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--tokenizer", default="char")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rnnlab-tokenize-"))
    try:
        text = tmp / "corpus.txt"
        started = time.perf_counter()
        make_corpus(text, int(args.gb * 1e9))
        size = text.stat().st_size
        print(f"wrote {size / 1e6:.0f} MB in {time.perf_counter() - started:.0f}s", flush=True)
        out, peak = child_peak_rss(["-c", CHILD, str(text), str(tmp / "run"), args.tokenizer])
        seconds, n_train, n_val = out.split()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = _import_only_rss()
    speed = size / 1e6 / float(seconds)
    row = f"{size / 1e6:.0f} MB | {float(seconds):.1f} s | **{speed:.1f} MB/s** | **{peak:.0f} MB**"
    body = f"""
| what | corpus | time | speed | peak RSS |
|---|---|---|---|---|
| `build_token_store` ({args.tokenizer} tokenizer, 5% validation) | {row} |
| baseline: import rnnlab's data code only | — | — | — | {base:.0f} MB |

{int(n_train):,} train and {int(n_val):,} validation tokens. Files are read in 2 MiB pieces
(`rnnlab.data.corpus.PIECE_BYTES`); passes: count characters (to place the validation cut),
fit the vocabulary, encode. Peak RSS is the child's VmHWM (`getrusage`); the requirement is < 500 MB.
The corpus fits in this machine's page cache, so the speed is CPU-bound, not disk-bound. The machine
was shared with other jobs while this ran (run under `nice -n 19`): the speed is a lower bound.
"""
    print(body)
    print(write_result("tokenize.md", "Tokenizing a 1 GB corpus in bounded memory", body))


def _import_only_rss() -> float:
    """Peak RSS (MB) of a child that only imports the data code, read from its own /proc status."""
    code = (
        "import rnnlab.data.prepare, rnnlab.config\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    return int(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout) / 1024


if __name__ == "__main__":
    main()
