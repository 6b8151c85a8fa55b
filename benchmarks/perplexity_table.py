"""The lectures' perplexity table, reproduced in shape on a word-level Shakespeare corpus: interpolated Kneser-Ney
5-gram, HMM, feed-forward window LM, Elman RNN, LSTM at two sizes, the LSTM mixed with n-grams, and ensembles, each
trained with one CPU budget on the same text with the same word tokenizer, scored on the same held-out text.

Only ../shared/data/shakespeare/train.txt is read: its last part is the test text, the part before that the
validation text (checkpoint choice), the rest the training text. valid.txt is not used. Every row is one `rnnlab`
command line, run as a subprocess, and the page lists them. The budget is CPU seconds, not wall time: each training
process is sent Ctrl-C (SIGINT: it stops and keeps its best model so far) once it has used `--budget` CPU seconds,
so a model's budget does not depend on what else shares the core. The trainings run one thread each, as many
at a time as there are cores.

    taskset -c 1 .venv/bin/python benchmarks/perplexity_table.py [--budget 90] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import RESULTS, ROOT, corpus, write_result
from rnnlab.data.tokenizers import load_tokenizer

LN2 = math.log(2)
RUNS = ROOT / "benchmarks" / "runs" / "perplexity_table"
TICK = os.sysconf("SC_CLK_TCK")
WALL_LIMIT = "40m"  # each training's --max-time: a safety net only, the CPU budget stops it long before


@dataclass
class Row:
    """One line of the table: what was run and what it scored on the test text."""

    name: str
    budget: str
    train: list[str] = field(default_factory=list)  # the training command (empty: no training of its own)
    eval: list[str] = field(default_factory=list)
    train_cpu_s: float = 0.0
    train_wall_s: float = 0.0
    note: str = ""
    score: dict | None = None
    skipped: str = ""


def rnnlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "rnnlab", *args]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run(command: list[str], cpu_budget: float = 0.0) -> tuple[str, float, float]:
    """Run a command: its stdout, CPU seconds and wall seconds. With `cpu_budget`, it is sent SIGINT (Ctrl-C, which
    rnnlab's trainers answer by stopping and keeping their best model) once it has used that many CPU seconds.
    A failure stops the benchmark with the command's stderr."""
    wall = time.perf_counter()
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # one thread each, as many at once as cores: no CPU lost to spinning
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    used, interrupted = 0.0, False
    while child.poll() is None:
        with contextlib.suppress(OSError, IndexError):
            used = process_cpu(child.pid)
        if cpu_budget and used >= cpu_budget and not interrupted:
            child.send_signal(signal.SIGINT)
            interrupted = True
        time.sleep(0.2)
    out, err = child.communicate()
    if child.returncode not in ((0, 130) if interrupted else (0,)):
        raise SystemExit(f"failed ({child.returncode}): {shlex.join(command)}\n{err[-2000:]}")
    return out, used, time.perf_counter() - wall


def run_all(jobs: list[tuple[list[str], float]], tolerant: bool = False) -> list:
    """`run` each (command, budget), as many at a time as there are cores; the results in order (`tolerant`: a
    failure's exception in its place, instead of raising it)."""
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = run(*jobs[i])
        except BaseException as exc:
            results[i] = exc
            errors.append(exc)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(work, range(len(jobs))))
    if errors and not tolerant:
        raise errors[0]
    return results


def available(app: str) -> bool:
    """Whether this rnnlab has the command `rnnlab APP` (the HMM and window baselines are newer)."""
    return subprocess.run(rnnlab(app, "--help"), capture_output=True, cwd=ROOT).returncode == 0


def split_corpus(source: Path, folder: Path, test: float, dev: float, limit: int) -> dict[str, Path]:
    """train / dev / test files from the end of `source` (cut at line ends): test last, dev just before it."""
    text = source.read_text(encoding="utf-8")[: limit or None]

    def cut(at: int) -> int:
        return text.index("\n", at) + 1

    test_start = cut(int(len(text) * (1 - test)))
    dev_start = cut(int(len(text) * (1 - test - dev)))
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train": text[:dev_start], "dev": text[dev_start:test_start], "test": text[test_start:]}
    paths = {}
    for name, part in parts.items():
        paths[name] = folder / f"{name}.txt"
        paths[name].write_text(part, encoding="utf-8")
    return paths


def measure(rows: list[Row], budget: float, measured: Path) -> None:
    """Train (the KN model first: its tokenizer.json is every run's, one fit on the same text; then every other
    training at once, each stopped at `budget` CPU seconds), score every row, and save the rows in `measured`."""
    for row in rows:
        app = row.eval[3]
        if app in ("hmm", "window") and not available(app):
            row.skipped = f"not run: this rnnlab has no `rnnlab {app}`"
    kn = rows[0]
    _, kn.train_cpu_s, kn.train_wall_s = run(kn.train)
    trained = [row for row in rows[1:] if row.train and not row.skipped]
    for row, (_, used, wall) in zip(trained, run_all([(row.train, budget) for row in trained]), strict=True):
        row.train_cpu_s, row.train_wall_s = used, wall
        print(f"trained {row.name}: {used:.0f} CPU s in {wall:.0f} s", flush=True)
    scored = [row for row in rows if not row.skipped]
    for row, result in zip(scored, run_all([(row.eval, 0.0) for row in scored], tolerant=True), strict=True):
        if isinstance(result, BaseException):  # e.g. a model stopped before it had anything to save
            row.skipped = f"failed: {str(result).splitlines()[0]}"
        else:
            row.score = json.loads(result[0])
        print(f"{row.name}: {row.score or row.skipped}", flush=True)
    measured.write_text(json.dumps([asdict(row) for row in rows], indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=90.0, help="CPU seconds of each trained model")
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--vocab-size", type=int, default=5000, help="word vocabulary, <unk> included")
    parser.add_argument("--states", type=int, default=64, help="HMM hidden states")
    parser.add_argument("--test-fraction", type=float, default=0.025)
    parser.add_argument("--dev-fraction", type=float, default=0.025)
    parser.add_argument("--quick", action="store_true", help="smoke test: 300 KB of text, 20 s budgets, no page")
    parser.add_argument("--page-only", action="store_true", help="rewrite the page from the last run's measurements")
    args = parser.parse_args()
    source = corpus("shakespeare", "train")
    if source is None:
        print("skipped: ../shared/data/shakespeare/train.txt not found")
        return
    budget = 20.0 if args.quick else args.budget
    if not args.page_only:
        shutil.rmtree(RUNS, ignore_errors=True)  # this script's own scratch runs from an earlier time
        split_corpus(source, RUNS / "data", args.test_fraction, args.dev_fraction, 300_000 if args.quick else 0)
    files = {name: RUNS / "data" / f"{name}.txt" for name in ("train", "dev", "test")}
    train, dev, test = (str(files[name].relative_to(ROOT)) for name in ("train", "dev", "test"))
    words = ["--tokenizer", "word", "--lowercase", "--vocab-size", str(args.vocab_size)]
    held = [*words, "--val-file", dev, "--max-time", WALL_LIMIT]
    nets = ["--batch-size", "32", "--seq-len", "32", "--warmup", "20", "--layers", "1"]
    nets += ["--eval-every", "50", "--eval-tokens", "10000", "--checkpoint-every", "100000", "--sample-every", "0"]
    out = {name: str((RUNS / name).relative_to(ROOT)) for name in ("kn", "hmm", "window", "elman", "s", "l", "l2")}
    cpu = f"{budget:.0f} CPU s"

    def network(cell: str, size: int, seed: int, name: str, lr: str = "3e-3") -> list[str]:
        shape = ["--cell", cell, "--hidden", str(size), "--embed", str(size), "--tie-weights", "--seed", str(seed)]
        return rnnlab("train", train, *held, *nets, "--lr", lr, *shape, "--out", out[name])

    rows = [
        Row(
            f"interpolated Kneser-Ney {args.order}-gram",
            "counting, no budget",
            rnnlab("ngram", "train", train, *words, "--order", str(args.order), "--out", out["kn"]),
            rnnlab("eval", out["kn"], test, "--json"),
            note="counts the training text only (not the validation text); Ney's discount n1 / (n1 + 2 n2) per order",
        ),
        Row(
            f"HMM, {args.states} states (Baum-Welch)",
            cpu,
            rnnlab("hmm", "train", train, *held, "--states", str(args.states), "--max-iters", "0", "--out", out["hmm"]),
            rnnlab("hmm", "eval", out["hmm"], test, "--json"),
        ),
        Row(
            "feed-forward window LM (Bengio 2003), 4 previous tokens",
            cpu,
            rnnlab("window", "train", train, *held, "--context", "4", "--out", out["window"]),
            rnnlab("window", "eval", out["window"], test, "--json"),
        ),
        Row(
            "Elman RNN (rnn-tanh), H = 256",
            cpu,
            network("rnn-tanh", 256, 1, "elman", lr="1e-3"),
            rnnlab("eval", out["elman"], test, "--json"),
            note="learning rate 1e-3, lowered after a first run at the LSTMs' 3e-3 scored 11,197 per word",
        ),
        Row("LSTM, H = 128", cpu, network("lstm", 128, 1, "s"), rnnlab("eval", out["s"], test, "--json")),
        Row("LSTM, H = 256", cpu, network("lstm", 256, 1, "l"), rnnlab("eval", out["l"], test, "--json")),
        Row(
            "LSTM H = 256 mixed with n-grams (`eval --mix`)",
            "the LSTM's",
            eval=rnnlab("eval", out["l"], test, "--mix", "--json"),
            note="online mixer of the network and absolute-discounting n-grams of its training split and of the "
            "text read so far",
        ),
        Row(
            f"LSTM H = 256 + KN {args.order}-gram, probabilities averaged",
            "the LSTM's + counting",
            eval=rnnlab("eval", out["l"], out["kn"], test, "--json"),
            note="an ensemble of two: (p_LSTM + p_KN) / 2 for every token",
        ),
        Row(
            "ensemble of two LSTMs H = 256 (seeds 1, 2)",
            f"2 x {cpu}",
            network("lstm", 256, 2, "l2"),
            rnnlab("eval", out["l"], out["l2"], test, "--json"),
            note="the second LSTM is trained here (its CPU time is the training column); probabilities averaged",
        ),
    ]
    measured = RUNS / "measured.json"
    if args.page_only:
        rows = [Row(**row) for row in json.loads(measured.read_text())]
    else:
        measure(rows, budget, measured)
    tokenizer = load_tokenizer(RUNS / "kn" / "tokenizer.json")
    test_text = Path(ROOT / test).read_text(encoding="utf-8")
    pieces = tokenizer.pieces(test_text, normalise=True)[1:]  # type: ignore[attr-defined]
    for row in rows:
        if row.score is not None and row.score["tokens"] != len(pieces):
            raise SystemExit(f"{row.name} scored {row.score['tokens']} tokens, not the test text's {len(pieces)}")
    n_words = sum(1 for piece in pieces if not piece.isspace())
    unk = sum(1 for i in tokenizer.encode(test_text)[1:] if i == 0)
    table, previous, steps = [], None, []
    header = (
        "| model | budget (each) | training CPU s | steps | perplexity per word | perplexity per token "
        "| bits per char |\n"
        "|---|---|---|---|---|---|---|"
    )
    for row in rows:
        if row.score is None:
            table.append(f"| {row.name} | - | - | - | {row.skipped} | - | - |")
            continue
        bits = row.score["nats_per_token"] * row.score["tokens"] / LN2
        row.score["perplexity_per_word"] = 2 ** (bits / n_words)
        cpu = f"{row.train_cpu_s:.0f}" if row.train else "-"
        table.append(
            f"| {row.name} | {row.budget} | {cpu} | {_steps(row.train)} | **{row.score['perplexity_per_word']:.1f}** | "
            f"{row.score['perplexity']:.2f} | {row.score['bits_per_char']:.3f} |"
        )
        if previous is not None:
            lower = row.score["perplexity_per_word"] < previous.score["perplexity_per_word"]
            steps.append(
                f"- {previous.name} -> {row.name}: {previous.score['perplexity_per_word']:.1f} -> "
                f"{row.score['perplexity_per_word']:.1f}, {'lower' if lower else '**not lower**'}"
            )
        previous = row
    scored = [row for row in rows if row.score is not None]
    all_lower = all("not lower" not in step for step in steps)
    answer = (
        "**Yes**: every step down the table lowers the perplexity."
        if all_lower
        else f"**No**: {sum('not lower' in s for s in steps)} of the {len(steps)} steps down the table do not lower "
        "the perplexity (marked below)."
    )
    commands = "\n".join(
        f"- {row.name}: `{shlex.join(_short(row.train))}`" if row.train else f"- {row.name}: (no training)"
        for row in rows
    )
    evals = "\n".join(f"- {row.name}: `{shlex.join(_short(row.eval))}`" for row in rows)
    notes = "\n".join(f"- {row.name}: {row.note}" for row in rows if row.note)
    best = min(scored, key=lambda row: row.score["perplexity_per_word"])
    body = f"""
Training text: the first {100 * (1 - args.test_fraction - args.dev_fraction):.0f}% of Shakespeare's train.txt
({files["train"].stat().st_size:,} bytes); the networks', HMM's and window model's validation text (checkpoint
choice, early stopping): the next {100 * args.dev_fraction:.1f}%; test text: the last {100 * args.test_fraction:.1f}%
({len(test_text):,} characters, {len(pieces):,} scored word-level tokens of which {n_words:,} are words or punctuation
marks, {100 * unk / len(pieces):.2f}% `<unk>`). valid.txt is not read. Every model uses the same tokenizer:
word-level pieces (words, whitespace runs, punctuation), lower-cased, the {args.vocab_size - 1} most frequent of the
training text plus `<unk>`, which each model scores as one outcome.

Perplexity per word is 2^(bits of the test text / its {n_words:,} words and punctuation marks), the convention of the
Penn Treebank tables (the whitespace pieces' cost is charged to the words, so models with other pieces compare);
perplexity per token divides by all {len(pieces):,} pieces. Each trained model had a budget of {budget:.0f} CPU seconds
from its process's start (imports and tokenizing the text included): the script sent it Ctrl-C once it had used
them, and it kept its best model on the validation text so far (the columns list the CPU seconds used, stop
included, and the training steps taken: EM iterations for the HMM, updates for the others). CPU seconds, not
wall time, so that what else shares the machine does not count: the trainings took
{max(row.train_wall_s for row in rows):.0f} s of wall time at most.

{header}
{chr(10).join(table)}

Does each step down the table lower perplexity here? {answer}

{chr(10).join(steps)}

Best: {best.name}, {best.score["perplexity_per_word"]:.1f} per word.

Training commands (run from the repository root; `python -m rnnlab` is `rnnlab`):
{commands}

Scoring commands:
{evals}

Notes:
{notes}
"""
    if args.quick:
        print(body)
        return
    command = shlex.join(["python", *(a for a in sys.argv if a != "--page-only")])  # the run that measured
    write_result("perplexity_table.md", "The perplexity table on word-level Shakespeare", body, command)
    data = {"budget": budget, "words": n_words, "tokens": len(pieces), "unk": unk, "rows": [asdict(r) for r in rows]}
    (RESULTS / "perplexity_table.json").write_text(json.dumps(data, indent=2) + "\n")
    print(body)


def _steps(command: list[str]) -> str:
    """The last step (EM iteration for the HMM) logged in the metrics.jsonl of the run a training command wrote."""
    if "--out" not in command:
        return "-"
    metrics = ROOT / command[command.index("--out") + 1] / "metrics.jsonl"
    if not metrics.is_file():
        return "-"
    steps = [json.loads(line).get("step", 0) for line in metrics.read_text().splitlines() if line.strip()]
    return str(max(steps, default=0))


def _short(command: list[str]) -> list[str]:
    """A command as the user types it: `rnnlab ...` rather than this interpreter's `python -m rnnlab ...`."""
    return ["rnnlab", *command[3:]] if command[1:3] == ["-m", "rnnlab"] else command


if __name__ == "__main__":
    main()
