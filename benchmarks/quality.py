"""Model quality under a wall-clock budget: train on ../shared/data/<corpus>/train.*, then score the
held-out valid.* with `rnnlab eval`'s code path, and compress it into a real file with the best settings
(`rnnlab compress --dynamic --mix`); print the bpc beside xz, PPMd (7z) and zpaq -m5 computed in the same run
(each compressor given the training text as context: size(train+valid) - size(train)), and beside a small
Transformer trained on the same tokens for the same wall time (benchmarks/transformer_peer.py, x-transformers).

    python benchmarks/quality.py --corpus shakespeare --time 20m [--preset small] [--no-peer] [-- train flags]

The validation file is only ever read for the final score: model selection uses the last 2% of the
training file (`--val-fraction 0.02`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

import rnnlab
from common import RESULTS, corpus, machine, write_result
from rnnlab.config import parse_duration
from rnnlab.data.prepare import TokenStore
from rnnlab.lm import compress as coder
from rnnlab.lm.dynamic import DynamicConfig
from rnnlab.lm.ngram import NgramConfig
from rnnlab.train.precision import Precision


def compressed_bits(tool: str, data: bytes) -> int | None:
    """Compressed size in bits of `data` with `tool` ('xz', 'ppmd' or 'zpaq'), or None if the tool is missing."""
    if tool == "xz":
        if not shutil.which("xz"):
            return None
        return 8 * len(subprocess.run(["xz", "-9e", "-c"], input=data, capture_output=True, check=True).stdout)
    if tool == "zpaq":
        if not shutil.which("zpaq"):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.txt", Path(tmp) / "out.zpaq"
            src.write_bytes(data)
            subprocess.run(["zpaq", "a", str(dst), str(src), "-m5"], capture_output=True, check=True)
            return 8 * dst.stat().st_size
    seven_zip = shutil.which("7z") or shutil.which("7zz")  # p7zip or Debian's 7zip package
    if seven_zip is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.txt", Path(tmp) / "out.7z"
        src.write_bytes(data)
        subprocess.run([seven_zip, "a", "-m0=PPMd:o=16:mem=1g", str(dst), str(src)], capture_output=True, check=True)
        return 8 * dst.stat().st_size


def baselines(train: Path, valid: Path) -> dict[str, float]:
    """bits per character of valid with the training text as context."""
    train_bytes, valid_bytes = train.read_bytes(), valid.read_bytes()
    chars = len(valid.read_text())
    out = {}
    for tool in ("xz", "ppmd", "zpaq"):
        both, alone = compressed_bits(tool, train_bytes + valid_bytes), compressed_bits(tool, train_bytes)
        if both is not None and alone is not None:
            out[tool] = (both - alone) / chars
    return out


def tune_dynamic(lm: rnnlab.LanguageModel, run: Path) -> DynamicConfig | None:
    """Pick the dynamic-evaluation step size on the held-out tail of the *training* file (never on
    valid). None without a held-out split."""
    held_out = TokenStore.open(run).val
    if held_out is None:
        return None
    text = lm.tokenizer.decode(held_out.tokens[:40_000])
    candidates = [3e-5, 1e-4, 3e-4, 1e-3]
    scores = {lr: lm.score(text, DynamicConfig(lr=lr)).bits_per_char for lr in candidates}
    best = min(scores, key=scores.__getitem__)
    print(f"dynamic evaluation on the training tail: {scores}; chose lr {best}")
    return DynamicConfig(lr=best)


def compressed_file(
    lm: rnnlab.LanguageModel, valid: Path, dynamic: DynamicConfig | None, mix: NgramConfig
) -> dict[str, float]:
    """`rnnlab compress` of valid with the best settings (dynamic + mix, or mix): the file's bits per character,
    its round trip checked, and the speeds of that coder and of the static one (on the first 64 KB), in KB/s."""
    data = valid.read_bytes()
    chars = len(data.decode("utf-8", errors="replace"))
    speeds = {}
    for name, options, part in (("static", {}, data[:65536]), ("best", {"dynamic": dynamic, "mix": mix}, data)):
        start = time.perf_counter()
        blob = coder.compress(lm, part, **options)
        middle = time.perf_counter()
        if coder.decompress(lm, blob) != part:
            raise SystemExit("the round trip of the compressed file failed")
        end = time.perf_counter()
        speeds[f"{name}_compress_kbs"] = len(part) / 1024 / (middle - start)
        speeds[f"{name}_decompress_kbs"] = len(part) / 1024 / (end - middle)
    print(f"compressed file: {len(blob)} bytes, {8 * len(blob) / chars:.4f} bpc; {speeds}", flush=True)
    return {"file_bpc": 8 * len(blob) / chars, "file_bytes": len(blob), **speeds}


def evaluate(part: str, run: Path, train: Path, valid: Path, dynamic_lr: float | None) -> Any:
    """One of the run's scores of valid, with one thread (main runs several at once, one per core): "mix",
    "dynamic", "dynamic_mix" (bits per character), "file" (`compressed_file`) or "baselines" (xz, PPMd, zpaq)."""
    torch.set_num_threads(1)
    if part == "baselines":
        return baselines(train, valid)
    lm = rnnlab.LanguageModel.load(run)
    dynamic = DynamicConfig(lr=dynamic_lr) if dynamic_lr is not None else None
    if part == "file":
        return compressed_file(lm, valid, dynamic, NgramConfig())
    options = {"mix": {"mix": NgramConfig()}, "dynamic": {"dynamic": dynamic}}
    options["dynamic_mix"] = {**options["mix"], **options["dynamic"]}
    bpc = lm.score_files([valid], **options[part]).bits_per_char
    print(f"valid, {part.replace('_', ' + ')}: {bpc:.4f} bpc", flush=True)
    return bpc


def evaluate_all(parts: list[str], run: Path, train: Path, valid: Path, dynamic_lr: float | None, workers: int) -> dict:
    """`evaluate` each of `parts`, `workers` at a time (longest first), each in its own process."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:  # no fork of OpenMP
        futures = {part: pool.submit(evaluate, part, run, train, valid, dynamic_lr) for part in parts}
        return {part: future.result() for part, future in futures.items()}


def transformer(run: Path, valid: Path, budget: str, threads: int) -> dict[str, float] | None:
    """benchmarks/transformer_peer.py on the run's tokens for the same wall time; None without x-transformers."""
    try:
        import x_transformers  # noqa: F401
    except ImportError:
        print("skipped the Transformer: pip install x-transformers")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.json"
        command = [sys.executable, str(Path(__file__).with_name("transformer_peer.py")), str(run), str(valid)]
        command += ["--time", budget, "--json", str(out), *(["--threads", str(threads)] if threads else [])]
        subprocess.run(command, check=True)
        return json.loads(out.read_text())


def _fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def _ratio(ours: float | None, theirs: float | None) -> str:
    """ours / theirs, the goal column's figure (at most 0.95), or '-' where either is missing."""
    return f"{ours / theirs:.3f}x" if ours is not None and theirs else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=["shakespeare", "linux"], required=True)
    parser.add_argument("--time", default="20m")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: benchmarks/runs/<corpus>)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for training and eval (0: default)")
    parser.add_argument("--no-dynamic", action="store_true", help="skip dynamic evaluation")
    parser.add_argument("--no-peer", action="store_true", help="skip the Transformer")
    parser.add_argument(
        "--baselines-only", action="store_true", help="recompute only xz/PPMd for a corpus already in quality.json"
    )
    parser.add_argument(
        "--rescore",
        choices=["evals", "file"],
        help="score the corpus's existing run again with this rnnlab's mixer: its --mix evaluations, or its "
        "compressed file (two invocations can run side by side, one per core)",
    )
    parser.add_argument("train_flags", nargs="*", help="extra `rnnlab train` flags after --")
    args = parser.parse_args()
    train, valid = corpus(args.corpus, "train"), corpus(args.corpus, "valid")
    if train is None or valid is None:
        print(f"skipped: ../shared/data/{args.corpus} not found")
        return
    store = RESULTS / "quality.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    if args.baselines_only:
        if args.corpus not in results:
            raise SystemExit(f"no {args.corpus} result in {store} to add baselines to")
        results[args.corpus]["baselines_bpc"] = baselines(train, valid)
        store.write_text(json.dumps(results, indent=2) + "\n")
        print(write_result("quality.md", TITLE, report(results), _commands(results)))
        return
    out = args.out or Path(__file__).parent / "runs" / args.corpus
    if args.rescore:
        rescore(args.corpus, args.rescore, out, train, valid, store, results)
        return
    if out.exists():
        shutil.rmtree(out)
    flags = ["--preset", args.preset, "--max-time", args.time, "--val-fraction", "0.02", *args.train_flags]
    command = [sys.executable, "-m", "rnnlab", "train", str(train), "--out", str(out), *flags]
    print(" ".join(command))
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    started = time.time()
    subprocess.run(command, check=True, env=env)
    wall = time.time() - started
    # The peer trains next, while the machine is as quiet as it was for rnnlab; the evaluations come after.
    peer = None if args.no_peer else transformer(out, valid, args.time, args.threads)
    lm = rnnlab.LanguageModel.load(out)
    score = lm.score_files([valid])
    print(f"valid: {score.bits_per_char:.4f} bpc", flush=True)
    dynamic = None if args.no_dynamic else tune_dynamic(lm, out)
    parts = ["file", "mix", *(["dynamic_mix", "dynamic"] if dynamic else []), "baselines"]  # longest first
    workers = args.threads or os.cpu_count() or 1
    evals = evaluate_all(parts, out, train, valid, dynamic.lr if dynamic else None, workers)
    result = {
        "corpus": args.corpus,
        "command": " ".join(["python", "benchmarks/quality.py", *sys.argv[1:]]),
        "preset": args.preset,
        "flags": flags,
        "budget_s": parse_duration(args.time),
        "wall_s": round(wall),
        "params": lm.module.num_parameters(),
        "valid_bpc": score.bits_per_char,
        "valid_bpc_mix": evals["mix"],
        "valid_bpc_dynamic": evals.get("dynamic"),
        "valid_bpc_dynamic_mix": evals.get("dynamic_mix"),
        "dynamic_lr": dynamic.lr if dynamic else None,
        "baselines_bpc": evals["baselines"],
        "compressed": evals["file"],
        "evaluations": f"{workers} at a time, one thread each",
        "transformer": peer,
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
        "precision": Precision("auto", torch.device("cpu")).name,  # what --precision auto trained in
    }
    print(json.dumps(result, indent=2))
    results = json.loads(store.read_text()) if store.exists() else {}  # again: another corpus may have finished
    results[args.corpus] = result
    store.write_text(json.dumps(results, indent=2) + "\n")
    print(write_result("quality.md", TITLE, report(results), _commands(results)))


def rescore(corpus: str, part: str, out: Path, train: Path, valid: Path, store: Path, results: dict[str, dict]) -> None:
    """Score `corpus`'s trained run again with this rnnlab's mixer, one thread: the two --mix evaluations, or the
    compressed file; the other columns (network, dynamic, peers) stay those of the original run."""
    if corpus not in results or not (out / "tokens").is_dir():
        raise SystemExit(f"no {corpus} run to rescore (need {out} and its entry in {store})")
    dynamic_lr = results[corpus]["dynamic_lr"]
    if part == "evals":
        update = {
            "valid_bpc_mix": evaluate("mix", out, train, valid, dynamic_lr),
            "valid_bpc_dynamic_mix": evaluate("dynamic_mix", out, train, valid, dynamic_lr),
        }
    else:
        update = {"compressed": evaluate("file", out, train, valid, dynamic_lr)}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(json.dumps(update, indent=2))
    results = json.loads(store.read_text())  # again: the other part may have finished meanwhile
    scored_by = results[corpus].get("rescored", {}).get(part, "the original run")
    earlier = results[corpus].setdefault("earlier", {}).setdefault(f"mixer of {scored_by}", {})
    for key in update:
        old = results[corpus].get(key)
        earlier[key] = old["file_bpc"] if key == "compressed" and old else old
    results[corpus].update(update)
    results[corpus].setdefault("rescored", {})[part] = f"{time.strftime('%Y-%m-%d')}, commit {commit}"
    store.write_text(json.dumps(results, indent=2) + "\n")
    print(write_result("quality.md", TITLE, report(results), _commands(results)))


TITLE = "Model quality under a 20-minute CPU budget"


def _commands(results: dict[str, dict]) -> str:
    """The page's command line: the run of each corpus it shows (one invocation writes one corpus)."""
    return "` and `".join(r["command"] for r in results.values() if r.get("command"))


def _speeds(r: dict) -> str:
    """The coders' speeds and the Transformer's training of a corpus's run, for its note."""
    c, t, out = r.get("compressed"), r.get("transformer"), ""
    if c:
        out += (
            f"; compress / decompress KB/s: --dynamic --mix {c['best_compress_kbs']:.2f} / "
            f"{c['best_decompress_kbs']:.2f}, static {c['static_compress_kbs']:.2f} / "
            f"{c['static_decompress_kbs']:.2f} (first 64 KB, same run)"
        )
    if t:
        out += (
            f"; Transformer: depth {t['depth']}, width {t['width']}, {t['params']:,} parameters, {t['steps']} steps "
            f"of 32 x {t['context']} tokens in {t.get('precision', 'fp32')}"
        )
    if first := r.get("transformer_fp32"):
        out += f" (trained in fp32 instead, {first['steps']} steps: {first['bpc']:.3f} bpc)"
    return out


def _rescored(r: dict) -> str:
    """Which columns of a corpus's row were scored again later, with a newer mixer, and when."""
    names = {"evals": "the two --mix evaluations", "file": "the compressed file (and its speeds)"}
    parts = [f"{names[part]} on {when}" for part, when in r.get("rescored", {}).items()]
    if not parts:
        return ""
    columns = {"valid_bpc_mix": "+ mix", "valid_bpc_dynamic_mix": "+ dynamic + mix", "compressed": "file"}
    was = "".join(
        f" (with the {label}: " + ", ".join(f"{columns[k]} {v:.3f}" for k, v in values.items() if v is not None) + ")"
        for label, values in r.get("earlier", {}).items()
    )
    return (
        "; rescored with `--rescore` (the same trained model, this rnnlab's mixer, one thread): "
        + ", ".join(parts)
        + was
    )


def report(results: dict[str, dict]) -> str:
    """The results page: how the numbers were made, then one row per corpus."""
    header = (
        "| corpus | network | + n-gram mix | + dynamic eval | + dynamic + mix | compressed file | xz -9e "
        "| PPMd o16 | zpaq -m5 | file / zpaq | Transformer (network) | network / Transformer "
        "| preset / flags | params | budget | wall |"
    )
    rows = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in results.values():
        b, file_bpc = r["baselines_bpc"], (r.get("compressed") or {}).get("file_bpc")
        peer = (r.get("transformer") or {}).get("bpc")
        rows.append(
            f"| {r['corpus']} | {r['valid_bpc']:.3f} | {_fmt(r.get('valid_bpc_mix'))} | "
            f"{_fmt(r.get('valid_bpc_dynamic'))} | {_fmt(r.get('valid_bpc_dynamic_mix'))} | **{_fmt(file_bpc)}** | "
            f"{_fmt(b.get('xz'))} | {_fmt(b.get('ppmd'))} | {_fmt(b.get('zpaq'))} | "
            f"{_ratio(file_bpc, b.get('zpaq'))} | {_fmt(peer)} | {_ratio(r['valid_bpc'], peer)} | "
            f"`{' '.join(r['flags'])}` | {r['params']:,} | {r['budget_s'] / 60:.0f} min | {r['wall_s']} s |"
        )
    body = (
        "Trained on `train.*` only (model selection on its last 2%), scored on `valid.*` by `rnnlab eval`'s "
        "code path (bits per character). xz and PPMd get the training text as context: size(train+valid) - "
        "size(train), per character of valid, computed in the same run. Dynamic evaluation (Krause et al. "
        "2017, `--dynamic`) adapts the weights while scoring, each token scored before it is trained on; its "
        "step size is chosen on the held-out tail of the training file. N-gram mixing (`--mix`, "
        "rnnlab.lm.ngram, rnnlab.lm.bitmix) mixes the network online with an interpolated n-gram model of the "
        "training text and the text read so far, in two stages (linear, then binary logistic mixing with adaptive "
        "probability maps); its settings were chosen on the training tails (benchmarks/results/mixer.md). "
        "*Compressed file*: the size of `rnnlab compress --dynamic --mix` on valid (its round trip checked), in "
        "bits per character; "
        "zpaq -m5 gets the training text as context like xz and PPMd. *Transformer*: benchmarks/transformer_peer.py "
        "(x-transformers), about the same parameter count, trained on the same tokens for the same wall time on "
        "the same machine, every scored token seeing at least half of its 256-token context; network-only bpc "
        "beside rnnlab's network-only bpc. Goals: file / zpaq and network / Transformer at most 0.95x.\n\n"
        + "\n".join(rows)
        + "\n"
    )
    notes = [
        f"- {r['corpus']}: `{r.get('command', '')}` on {r['machine']}, "
        f"{r.get('date', 'an earlier session, before the file, zpaq and Transformer columns')}"
        f"{', rnnlab trained in ' + r['precision'] if 'precision' in r else ''}; "
        f"dynamic-evaluation step {r.get('dynamic_lr')}"
        + _speeds(r)
        + _rescored(r)
        + (f"; evaluations after training: {r['evaluations']}" if r.get("evaluations") else "")
        + (f"; {r['remark']}" if r.get("remark") else "")
        for r in results.values()
    ]
    if any(r.get("threads") == 1 for r in results.values()):
        notes.append(
            "- A 1-thread run had one core of the 2-core machine, the other core busy with other work: half of the "
            "budget's compute. `wall` includes preparing the token store."
        )
    return body + "\n" + "\n".join(notes) + "\n"


if __name__ == "__main__":
    main()
