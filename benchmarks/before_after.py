"""The code at an earlier commit against this working tree, paired in one run: no path of training, of the cells or
of sampling may have got slower by a restructuring (goal: none below 0.97x).

    .venv/bin/python benchmarks/before_after.py --base 4362789 [--rounds 7] [--hidden 256 512] [--only train] [...]

The old code is `--base`, checked out by `git worktree` into a temporary directory; the new code is this working
tree. Each runs in its own worker process on one thread (the thread variables are set before NumPy and PyTorch
load); the parent has them time each path in turn (a different worker first each round), so that load from other
processes hits them alike, one worker at a time; a third worker, a second process of the new code, measures what
noise alone does to the ratio. A measurement is the best of as many calls as take about `--seconds`, at least
`--repeats` (the fast paths are the noisiest); the figure is the median over rounds of the paired ratios, old time /
new time (speed: above 1 the new code is faster). Both build the same weights from the same seed, and every path's
first result (an output sum, a loss) is compared between them.

Paths: (a) training, as benchmarks/train_throughput.py: an `RNNLM` LSTM 2x512 (embed 64), N=64, T=128, forward,
backward, gradient clipping and an Adam step; and `rnnlab.train` itself (the trainer: data stream, loop, logging)
for 10 steps of an LSTM 2x256 on a generated 400 KB text, timed whole; (b) benchmarks/cells.py's rows, one layer,
N=64, T=128, D = H, forward + backward: every cell (but the ssm block, benchmarks/scan.py) in the recurrent stack
(`Recurrent`), the cells' own fused ops, the LSTM, GRU and Elman step loops and the peephole LSTM's hand-written
BPTT; (c) sampling: per-token time of the `--preset small` LSTM (2x256) one token at a time, through the NumPy
stepper (`make_stepper`) and through the module's forward. Results: results/before_after.md.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from common import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
N, T = 64, 128
TOKENS = 1000  # per sampling measurement
VOCAB = 84


# --- the worker: one code version, one thread, a path per request ------------------------------------------------
def build(path: str) -> Callable[[], float]:
    """The path named `path` (see `paths`), ready to run: a function that does its work once and returns a number
    that depends on the weights (an output sum, a loss), for comparing the two versions."""
    import torch

    import rnnlab
    from rnnlab.config import ModelConfig
    from rnnlab.nn.cells import make_cell
    from rnnlab.nn.recurrent import Recurrent, detach_state

    try:  # the language model's package since the core/apps restructuring
        from rnnlab.lm.model import RNNLM
        from rnnlab.lm.stepper import ModuleStepper, make_stepper
    except ImportError:  # before it
        from rnnlab.models.language_model import RNNLM
        from rnnlab.models.stepper import ModuleStepper, make_stepper

    torch.manual_seed(0)
    kind, *rest = path.split()
    if kind == "trainer":
        work = Path(tempfile.mkdtemp())
        text = work / "text.txt"  # deterministic, 90 symbols, no structure to learn fast
        text.write_text("".join(chr(32 + (i * 7919 + i // 97) % 90) for i in range(400_000)))
        runs = iter(range(10**9))

        def train() -> float:
            out = work / f"run{next(runs)}"
            options = {"cell": "lstm", "layers": 2, "hidden": 256, "embed": 64, "batch_size": N, "seq_len": T}
            result = rnnlab.train(
                [str(text)], out=out, lr=2e-3, val_fraction=0.0, max_steps=10, log_every=5,
                checkpoint_every=10**9, progress=False, seed=0, **options,
            )  # fmt: skip
            shutil.rmtree(out)
            return result.last_train_loss

        return train
    if kind == "train":
        model = RNNLM(ModelConfig(vocab_size=VOCAB, cell="lstm", layers=2, hidden=512, embed=64))
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        tokens = torch.randint(VOCAB, (N, T + 1))
        carried = [None]

        def step() -> float:
            _, state, loss = model(tokens[:, :-1], carried[0], targets=tokens[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            carried[0] = detach_state(state)
            return loss.item()

        return step
    if kind == "sample":
        config = ModelConfig(vocab_size=VOCAB, cell="lstm", layers=2, hidden=256, embed=64)
        model = RNNLM(config).eval()
        stepper = make_stepper(model) if rest[0] == "numpy" else ModuleStepper(model)

        def sample() -> float:
            stepper.set_state(None)
            total = 0.0
            with torch.no_grad():
                for i in range(TOKENS):
                    total += float(stepper.step(i % VOCAB)[0])
            return total

        return sample
    cell, H = rest[0], int(rest[1])
    if kind == "stack":
        module = Recurrent(cell, H, H)
    else:
        module = make_cell(cell, H, H, peephole=kind == "peephole")
        module.fused_op = kind != "loop"
    x = torch.randn(N, T, H, requires_grad=True)

    def forward_backward() -> float:
        module.zero_grad(set_to_none=True)
        x.grad = None
        out = module(x)[0]
        out.sum().backward()
        return out.detach().double().sum().item()

    return forward_backward


def worker(src: str) -> None:
    """Serve the parent: read a path's name per line, answer with its times (JSON) on stdout."""
    sys.path.insert(0, src)
    import torch

    import rnnlab

    assert Path(rnnlab.__file__).is_relative_to(src), f"{rnnlab.__file__} is not under {src}"
    torch.set_num_threads(1)
    built: dict[str, Callable[[], float]] = {}
    for line in sys.stdin:
        path, repeats = json.loads(line)
        if path not in built:
            built[path] = build(path)
        run, times, checks = built[path], [], []
        for _ in range(repeats):
            start = time.perf_counter()
            checks.append(run())
            times.append(time.perf_counter() - start)
        print(json.dumps({"times": times, "check": checks[0]}), flush=True)


# --- the parent ------------------------------------------------------------------------------------------------------
def paths(hidden: list[int]) -> list[tuple[str, str]]:
    """(name for the worker, description) of every path measured."""
    from rnnlab.nn import registry

    found = [
        ("train", "(a) training step, RNNLM lstm 2x512, N=64, T=128, Adam"),
        ("trainer", "(a) `rnnlab.train`, lstm 2x256, N=64, T=128, 10 steps, whole call"),
    ]
    for H in hidden:
        for spec in registry.cells():
            if spec.name == "ssm":  # a block, not a cell: benchmarks/scan.py
                continue
            found.append((f"stack {spec.name} {H}", f"(b) H={H} {spec.name}: stack (`Recurrent`)"))
            if spec.cls(4, 4).fused_op:
                found.append((f"cell {spec.name} {H}", f"(b) H={H} {spec.name}: cell, its fused op"))
        for cell in ("lstm", "gru", "rnn-tanh"):
            found.append((f"loop {cell} {H}", f"(b) H={H} {cell}: cell, autograd step loop"))
        found.append((f"peephole lstm {H}", f"(b) H={H} lstm --peephole: hand-written BPTT"))
    found.append(("sample numpy", f"(c) sampling, small LSTM 2x256: NumPy stepper, {TOKENS} tokens"))
    found.append(("sample module", f"(c) sampling, small LSTM 2x256: module forward per token, {TOKENS} tokens"))
    return found


class Worker:
    """One code version in its own process."""

    def __init__(self, src: Path) -> None:
        command = [sys.executable, __file__, "--worker", str(src)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def time(self, path: str, repeats: int) -> tuple[float, float]:
        """(best time in seconds, the check number) of `repeats` runs of `path`."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps([path, repeats]) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker for {path!r} stopped")
        answer = json.loads(line)
        return min(answer["times"]), answer["check"]

    def close(self) -> None:
        """End the worker (its input ends)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def git(*args: str) -> str:
    """The output of a git command in this repository."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the commit with the old code (required)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--only", nargs="+", default=[""], help="measure only the paths whose name contains one")
    parser.add_argument("--result", default="before_after.md", help="the page to write under benchmarks/results/")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if not args.base:
        parser.error("--base is required")
    base = git("rev-parse", "--short", args.base)
    changed = ", ".join(git("diff", "--name-only", "HEAD", "--", "src").split())
    todo = [(p, label) for p, label in paths(args.hidden) if any(part in p for part in args.only)]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        checkout = Path(tmp) / "base"
        git("worktree", "add", "--detach", str(checkout), base)
        try:
            # "again": a second process of the new code, whose ratio to "new" shows what noise alone does
            workers = {"old": Worker(checkout / "src"), "new": Worker(ROOT / "src"), "again": Worker(ROOT / "src")}
            times: dict[str, dict[str, list[float]]] = {p: {w: [] for w in workers} for p, _ in todo}
            first = {p: [w.time(p, 1) for w in workers.values()] for p, _ in todo}  # a warm-up for all
            checks = {p: [check for _, check in first[p]] for p in first}
            calls = {p: max(args.repeats, math.ceil(args.seconds / max(t for t, _ in first[p]))) for p in first}
            for r in range(args.rounds):
                order = list(workers)[r % 3 :] + list(workers)[: r % 3]  # each worker first in turn
                for path, _ in todo:
                    for name in order:
                        times[path][name].append(workers[name].time(path, calls[path])[0])
                print(f"round {r + 1} done", flush=True)
            for w in workers.values():
                w.close()
        finally:
            git("worktree", "remove", "--force", str(checkout))
    load_after = os.getloadavg()
    rows, speeds = [], []
    for path, label in todo:
        t = times[path]
        speed = [a / b for a, b in zip(t["old"], t["new"], strict=True)]
        noise = [a / b for a, b in zip(t["again"], t["new"], strict=True)]
        speeds.append(statistics.median(speed))
        a, b, _ = checks[path]
        agree = "yes" if abs(a - b) <= 1e-4 * max(1.0, abs(a)) else f"NO ({a:.6g} vs {b:.6g})"
        per = TOKENS if path.startswith("sample") else 1
        unit, scale = ("µs / token", 1e6 / per) if per > 1 else ("ms", 1e3)
        rows.append(
            f"| {label} | {min(t['old']) * scale:.1f} {unit} | {min(t['new']) * scale:.1f} {unit} | "
            f"**{speeds[-1]:.3f}** | {min(speed):.3f}–{max(speed):.3f} | {statistics.median(noise):.3f} "
            f"({min(noise):.3f}–{max(noise):.3f}) | {agree} |"
        )
    head = git("rev-parse", "--short", "HEAD")
    body = (
        f"Old: commit {base}. New: the working tree at {head}"
        + (f" with uncommitted changes in {changed}" if changed else "")
        + f". float32, CPU, one thread per worker; {args.rounds} rounds after a warm-up, "
        f"each measurement the best of as many calls as take {args.seconds:g} s (at least {args.repeats}). "
        "Speed = old time / new time, the median over rounds of the paired ratios (range over rounds beside it); old "
        "and new times are the best rounds. *Noise*: the same ratio for a second process of the new code against the "
        "first (1 but for noise). *Same result*: the first output sum or loss of both versions agrees (same seed, same "
        f"weights). Load average before / after: {load_before[0]:.2f} / {load_after[0]:.2f}.\n\n"
        "| path | old | new | speed, new / old | range over rounds | noise: new / new (range) | same result |\n"
        "|---|---:|---:|---:|---:|---:|---|\n" + "\n".join(rows) + "\n\n"
        f"Slowest path: **{min(speeds):.3f}x** (goal: no path below 0.97x).\n"
    )
    command = shlex.join([Path(sys.executable).name, *sys.argv])  # quoted: --only takes names with spaces
    print(write_result(args.result, f"This tree against {base}, paired in one run", body, command))
    print(body)


if __name__ == "__main__":
    main()
