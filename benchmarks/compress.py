"""Compressed bits per character of Shakespeare's validation text: rnnlab's model-driven arithmetic coder,
static, --dynamic, --mix and --dynamic --mix, beside xz, bzip2, zstd, PPMd and zpaq -m5, each alone and with
the training text as context.

    .venv/bin/python benchmarks/compress.py [--run DIR | --train-time 10m --preset small] [--bytes N]
        [--baseline REV --baseline-bytes 16384] [--threads 1]

With no --run, a model is trained on train.txt only (`rnnlab train train.txt --preset small --max-time 10m`,
whose validation split is the end of train.txt): valid.txt is never trained on. --run takes any run
directory instead (e.g. a longer-trained model), which must also have been trained without valid.txt.

"With context" compresses train+valid and subtracts the size of train alone: the tool's cost of the
validation text when it has seen the training text first, the fair comparison with a model trained on it.
--baseline REV times the coder of git revision REV (src/rnnlab/lm/compress.py as it was there) on the first
--baseline-bytes bytes beside the current one, in the same run: the speed-up, on the same load. Missing
tools are skipped with a note; nothing is installed. Results: results/compress.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

import rnnlab
import rnnlab.lm.compress as coder
from common import ROOT, corpus, write_result
from rnnlab.config import parse_duration
from rnnlab.lm.dynamic import DynamicConfig
from rnnlab.lm.ngram import NgramConfig
from rnnlab.metrics import LN2

SEVEN_ZIP = shutil.which("7z") or shutil.which("7zz") or "7z"

# name -> (command that writes the compressed form of IN to OUT, version command)
TOOLS: dict[str, tuple[Callable[[Path, Path], list[str]], list[str]]] = {
    "xz -9e": (lambda i, o: ["sh", "-c", f"xz -9e -c '{i}' > '{o}'"], ["xz", "--version"]),
    "bzip2 -9": (lambda i, o: ["sh", "-c", f"bzip2 -9 -c '{i}' > '{o}'"], ["bzip2", "--help"]),
    "zstd -19": (lambda i, o: ["zstd", "-19", "-q", "-f", str(i), "-o", str(o)], ["zstd", "--version"]),
    "7z PPMd -mx=9": (lambda i, o: [SEVEN_ZIP, "a", "-bd", "-t7z", "-m0=PPMd", "-mx=9", str(o), str(i)], [SEVEN_ZIP]),
    "zpaq -m5": (lambda i, o: ["zpaq", "a", str(o), str(i), "-m5"], ["zpaq"]),
}


def tool_size(name: str, data: bytes, tmp: Path) -> tuple[int, float]:
    """Compressed size of `data` with tool `name`, and its speed in KB/s."""
    src, dst = tmp / "in.txt", tmp / "out.bin"
    src.write_bytes(data)
    dst.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(TOOLS[name][0](src, dst), check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return dst.stat().st_size, len(data) / 1024 / seconds


def tool_version(name: str) -> str:
    out = subprocess.run(TOOLS[name][1], capture_output=True, text=True)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    return lines[0].strip() if lines else "?"


def train_model(train: Path, preset: str, train_time: float, out: Path) -> Path:
    """A character model trained on train.txt only, for `train_time` seconds on CPU."""
    result = rnnlab.train([str(train)], out=out, preset=preset, max_time=train_time, device="cpu", progress=False)
    print(f"trained {result.steps} steps in {result.elapsed:.0f}s, validation {result.best_val_bpc:.4f} bits/char")
    return result.run_dir


def round_trip(
    module: ModuleType, lm: rnnlab.LanguageModel, data: bytes, **options: object
) -> tuple[bytes, float, float]:
    """(compressed file, compress KB/s, decompress KB/s) with the coder `module`; checks the round trip."""
    start = time.perf_counter()
    blob = module.compress(lm, data, **options)
    encode = time.perf_counter() - start
    start = time.perf_counter()
    if module.decompress(lm, blob) != data:
        raise SystemExit("round trip failed")
    decode = time.perf_counter() - start
    kb = len(data) / 1024
    return blob, kb / encode, kb / decode


def baseline_coder(revision: str) -> ModuleType:
    """The coder at git `revision` (src/rnnlab/lm/compress.py, before 0.2 src/rnnlab/compress.py), imported as a
    module of its own."""
    for where in ("src/rnnlab/lm/compress.py", "src/rnnlab/compress.py"):
        shown = subprocess.run(["git", "show", f"{revision}:{where}"], capture_output=True, text=True, cwd=ROOT)
        if shown.returncode == 0:
            break
    source = shown.stdout
    path = Path(tempfile.mkdtemp()) / "compress_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("compress_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def eval_bits(
    lm: rnnlab.LanguageModel, data: bytes, dynamic: DynamicConfig | None = None, mix: NgramConfig | None = None
) -> float:
    """`rnnlab eval`'s total bits of `data` (sequence forward), + log2 V for the unscored first token."""
    score = lm.score(data, dynamic=dynamic, mix=mix)
    return score.nats_per_token * score.tokens / LN2 + math.log2(lm.module.config.vocab_size)


def describe_run(run_dir: Path, lm: rnnlab.LanguageModel) -> str:
    """The model and how it was trained; refuses a model that saw valid.txt."""
    config, train = lm.module.config, json.loads((run_dir / "config.json").read_text())["train"]
    if any(Path(f).name.startswith("valid") for f in train["inputs"] + train["val_files"]):
        raise SystemExit(f"{run_dir} was trained or validated on valid.txt: not a fair benchmark")
    evals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "val_bpc" in line]
    trained = (
        f", {evals[-1]['step']} steps, validation (end of train.txt) {evals[-1]['val_bpc']:.4f} bpc" if evals else ""
    )
    return (
        f"`{run_dir}`: {config.cell} L={config.layers} H={config.hidden} D={config.embed}, "
        f"{config.vocab_size} tokens, {lm.module.num_parameters()} parameters, trained on {', '.join(train['inputs'])} "
        f"(max_time {train['max_time']:.0f}s, batch {train['batch_size']}x{train['seq_len']}){trained}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="use this run directory instead of training one")
    parser.add_argument("--train-time", default="10m", help="training budget when no --run (default 10m)")
    parser.add_argument("--preset", default="small", help="training preset when no --run (default small)")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/runs/compress"), help="run directory to train (must not exist)"
    )
    parser.add_argument("--bytes", type=int, default=0, help="compress only the first N bytes of valid.txt")
    parser.add_argument("--baseline", help="git revision whose coder to time beside the current one")
    parser.add_argument("--baseline-bytes", type=int, default=16384, help="bytes of valid.txt for the baseline")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    parser.add_argument("--dynamic-lr", type=float, default=DynamicConfig.lr)
    parser.add_argument("--dynamic-decay", type=float, default=DynamicConfig.decay)
    parser.add_argument("--dynamic-segment", type=int, default=DynamicConfig.segment)
    args = parser.parse_args()
    train_path, valid_path = corpus("shakespeare", "train"), corpus("shakespeare", "valid")
    if train_path is None or valid_path is None:
        print("skipped: ../shared/data/shakespeare/{train,valid}.txt are absent")
        return

    torch.set_num_threads(args.threads)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    train, valid = train_path.read_bytes(), valid_path.read_bytes()
    if args.bytes:
        valid = valid[: args.bytes]
    chars = len(valid.decode("utf-8"))
    run_dir = args.run or train_model(train_path, args.preset, parse_duration(args.train_time), args.out)
    lm = rnnlab.LanguageModel.load(run_dir)
    dynamic = DynamicConfig(lr=args.dynamic_lr, decay=args.dynamic_decay, segment=args.dynamic_segment)

    def row(method: str, context: str, size: float, speeds: str = "| | |") -> str:
        return f"| {method} | {context} | {size:.0f} | {8 * size / chars:.4f} {speeds}"

    rows = []
    adapts = "adapts to valid.txt as it codes"
    memory = "mixed with an n-gram model of train.txt and of valid.txt coded so far"
    mix = NgramConfig()
    for label, flags, options, context in (
        ("rnnlab compress", "", {}, "trained on train.txt"),
        (
            f"rnnlab compress --dynamic (lr {dynamic.lr:g}, decay {dynamic.decay:g}, segment {dynamic.segment})",
            " --dynamic",
            {"dynamic": dynamic},
            f"trained on train.txt, {adapts}",
        ),
        ("rnnlab compress --mix", " --mix", {"mix": mix}, f"trained on train.txt, {memory}"),
        (
            "rnnlab compress --dynamic --mix",
            " --dynamic --mix",
            {"dynamic": dynamic, "mix": mix},
            f"trained on train.txt, {adapts}, {memory}",
        ),
    ):
        blob, encode, decode = round_trip(coder, lm, valid, **options)
        header = coder.read_header(blob).size
        rows.append(row(label, context, len(blob), f"| {encode:.2f} | {decode:.2f} |"))
        rows.append(row(f"{label}: payload only (without the {header}-byte header)", "", len(blob) - header))
        ideal = eval_bits(lm, valid, options.get("dynamic"), options.get("mix"))
        rows.append(row(f"`rnnlab eval{flags}` log loss (+ log2 V for the first char)", "", ideal / 8))

    speed = []
    if args.baseline:
        head = valid[: args.baseline_bytes]
        _, old_encode, old_decode = round_trip(baseline_coder(args.baseline), lm, head)
        _, new_encode, new_decode = round_trip(coder, lm, head)
        speed = [
            f"Speed of the static coder on the first {len(head)} bytes, both in this run (KB/s):",
            "",
            "| coder | compress | decompress |",
            "|---|---:|---:|",
            f"| `{args.baseline}` (before) | {old_encode:.2f} | {old_decode:.2f} |",
            f"| this tree | {new_encode:.2f} | {new_decode:.2f} |",
            f"| speed-up | {new_encode / old_encode:.1f}x | {new_decode / old_decode:.1f}x |",
            "",
        ]

    notes, versions = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in TOOLS:
            if shutil.which(TOOLS[name][1][0]) is None:
                notes.append(f"- {name}: skipped, `{TOOLS[name][1][0]}` is not installed")
                continue
            versions.append(f"- {name}: {tool_version(name)}")
            alone, tool_speed = tool_size(name, valid, Path(tmp))
            both, _ = tool_size(name, train + valid, Path(tmp))
            base, _ = tool_size(name, train, Path(tmp))
            rows.append(row(name, "alone", alone, f"| {tool_speed:.0f} | |"))
            rows.append(row(name, "train.txt as context", both - base))

    load_after = Path("/proc/loadavg").read_text().split()[:3]
    body = "\n".join(
        [
            f"Text: {valid_path}" + (f", first {len(valid)} bytes" if args.bytes else "") + f" ({chars} chars).",
            f"Model: {describe_run(run_dir, lm)}.",
            f"NumPy {np.__version__}; rnnlab codes on CPU, single-threaded. Load average (1, 5, 15 min) "
            f"{' '.join(load_before)} before, {' '.join(load_after)} after, on {os.cpu_count()} cores: "
            "the machine was shared, so speeds are lower bounds; compare ratios within this file.",
            "",
            "| method | context | bytes | bits/char | compress KB/s | decompress KB/s |",
            "|---|---|---:|---:|---:|---:|",
            *rows,
            "",
            '"train.txt as context": size(train+valid) - size(train). For bzip2 (independent 900 KB blocks) this',
            "difference is a block-boundary artefact, not use of context. 7z sizes include its archive header.",
            "The eval rows are the model's own log loss from `rnnlab eval` (a sequence forward): the coder's",
            "payload must match them (it predicts step by step, so equal to float rounding, not bitwise).",
            "",
            *speed,
            *versions,
            *notes,
        ]
    )
    path = write_result(
        "compress.md", "Compression: model-driven arithmetic coding vs general-purpose compressors", body
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
