"""Time per training step (forward + backward) of every cell vs `torch.nn.LSTM`, and achieved GFLOP/s
against a large float32 matrix product, all measured in the same run.

    python benchmarks/cells.py [--hidden 256 512] [--batch 64] [--seq 128] [--rounds 3] [--threads 1]

Every path of every cell is timed once per round, each right after an nn.LSTM run, so that load from other
processes hits the pair alike: the ratio is the median over rounds of those paired ratios (best-of-rounds
times alone moved ratios by ±15% between runs on a shared machine); ms / step is the best round.
FLOPs are counted from each cell's matrix products (2·m·n·k per product; the input requires a gradient,
as in every layer above the first, so backward = 2x forward); element-wise gate arithmetic is not
counted, so GFLOP/s is a slight underestimate.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from common import write_result
from rnnlab.nn import registry
from rnnlab.nn.cells import make_cell
from rnnlab.nn.recurrent import Recurrent

FUSED = [s.name for s in registry.cells() if s.torch_mode]  # cells whose stack runs PyTorch's op on their weights


# Each cell's matrix products in units of H output columns: (input blocks of the hoisted projection, the
# recurrent products of one step, as its code runs them). mrnn counts F = H factors; peephole = lstm.
PRODUCTS: dict[str, tuple[int, tuple[int, ...]]] = {
    "rnn-tanh": (1, (1,)), "rnn-relu": (1, (1,)), "irnn": (1, (1,)), "lstm": (4, (4,)), "gru": (3, (3,)),
    "gru-cho": (3, (2, 1)), "mut1": (2, (1, 1)), "mut2": (2, (1, 1, 1)), "mut3": (3, (1, 1, 1)), "mrnn": (2, (1, 1)),
}  # fmt: skip


def step_flops(name: str, N: int, T: int, D: int, H: int) -> float:
    """Forward+backward FLOPs of the matrix products of one step over N x T tokens."""
    if name in ("mingru", "minlstm"):  # gates from x only: 2 (mingru) or 3 (minlstm) input products, none on h
        return 3 * 2 * N * T * H * D * (2 if name == "mingru" else 3)
    x_blocks, h_blocks = PRODUCTS[name]
    return 3 * 2 * N * T * H * (x_blocks * D + sum(h_blocks) * H)


class MatrixProducts(torch.nn.Module):
    """A cell's matrix products alone, at its shapes, forward and backward, joined by one add per product:
    what any implementation built on PyTorch's matmul must at least spend (the floor for its time)."""

    def __init__(self, name: str, D: int, H: int) -> None:
        super().__init__()
        x_blocks, h_blocks = PRODUCTS[name]
        self.H = H
        # recurrent weights of scale 0.5/sqrt(H): the linear recurrence stays bounded and away from denormals
        self.w_in = torch.nn.Parameter(torch.randn(x_blocks * H, D) / math.sqrt(D))
        self.w_h = torch.nn.ParameterList(torch.randn(k * H, H) * 0.5 / math.sqrt(H) for k in h_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, outputs = x.new_zeros(x.shape[0], self.H), []
        for xw in F.linear(x, self.w_in).unbind(1):
            new = xw[:, : self.H]
            for w in self.w_h:
                new = new + F.linear(h, w)[:, : self.H]
            h = new
            outputs.append(h)
        return torch.stack(outputs, 1)


def paths(H: int) -> list[tuple[str, str, torch.nn.Module, Callable]]:
    """(cell, path, module, run) for every cell and each way rnnlab can run it; run(module, x) -> outputs."""
    torch.manual_seed(0)
    found = [("lstm", "torch.nn.LSTM (baseline)", torch.nn.LSTM(H, H, batch_first=True), lambda m, x: m(x)[0])]
    for name in (n for n in registry.names() if n != "ssm"):  # ssm: a block, not a cell; see benchmarks/scan.py
        for label, peephole in ((name, False), *((("lstm --peephole", True),) if name == "lstm" else ())):
            if name in FUSED and not peephole:
                found.append((label, "fused (torch)", Recurrent(name, H, H), lambda m, x: m(x)[0]))
            cell = make_cell(name, H, H, peephole=peephole)
            if cell.fused_op:  # the cell's own sequence path, then its step loop
                own = "hand-written BPTT" if peephole else "cell, fused op"
                own = "one-node scan" if name.startswith("min") else own
                found.append((label, own, cell, lambda m, x: m(x)[0]))
                cell = make_cell(name, H, H, peephole=peephole)
                cell.fused_op = False
            found.append((label, "autograd loop", cell, lambda m, x: m(x)[0]))
            if name in PRODUCTS and name not in ("rnn-relu", "irnn") and label != "lstm --peephole":
                found.append((label, "matrix products only", MatrixProducts(name, H, H), lambda m, x: m(x)))
    return found


def time_step(module: torch.nn.Module, run: Callable, x: torch.Tensor) -> float:
    """Seconds of one forward + backward with the sum of the outputs as the loss."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    start = time.perf_counter()
    run(module, x).sum().backward()
    return time.perf_counter() - start


def time_matmul(a: torch.Tensor) -> float:
    start = time.perf_counter()
    a @ a
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    N, T, load_before = args.batch, args.seq, os.getloadavg()
    square, rows, peaks = torch.randn(2048, 2048), [], []
    for H in args.hidden:
        D = H  # input = hidden, as in every layer above the first
        x = torch.randn(N, T, D, requires_grad=True)
        entries = paths(H)
        for _, _, m, run in entries:  # warm-up
            time_step(m, run, x)
        _, _, lstm, lstm_run = entries[0]
        peak = time_matmul(square)
        times: list[list[float]] = [[] for _ in entries]
        ratios: list[list[float]] = [[1.0]] + [[] for _ in entries[1:]]  # the baseline's own ratio is 1
        for r in range(args.rounds):
            peak = min(peak, *(time_matmul(square) for _ in range(3)))
            for i, (_, _, m, run) in enumerate(entries):
                # each path is timed right after its own nn.LSTM run: the ratio of the pair sees one load
                baseline = time_step(lstm, lstm_run, x)
                times[0].append(baseline)
                if i:
                    times[i].append(time_step(m, run, x))
                    ratios[i].append(times[i][-1] / baseline)
            print(f"H={H} round {r + 1}: nn.LSTM {min(times[0]) * 1e3:.0f} ms", flush=True)
        peak_gflops = 2 * 2048**3 / peak / 1e9
        peaks.append(peak_gflops)
        for (name, path, _, _), spent, paired in zip(entries, times, ratios, strict=True):
            seconds, ratio = min(spent), statistics.median(paired)
            spread = f"{min(paired):.2f}–{max(paired):.2f}" if len(paired) > 1 else "-"
            gflops = step_flops(name.split()[0], N, T, D, H) / seconds / 1e9
            rows.append((H, name, path, seconds, ratio, spread, gflops, gflops / peak_gflops))
            print(f"H={H} {name} [{path}]: {seconds * 1e3:.0f} ms, {ratio:.2f}x nn.LSTM ({spread})", flush=True)
    table = [
        "| H | cell | path | ms / step | time vs nn.LSTM | range over rounds | GFLOP/s | fraction of matmul |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    table += [
        f"| {H} | {n} | {p} | {s * 1e3:.0f} | {r:.2f}x | {sp} | {g:.1f} | {f:.2f} |" for H, n, p, s, r, sp, g, f in rows
    ]
    load_after = os.getloadavg()
    body = (
        f"Forward + backward of one layer on a batch of N={N} sequences of T={T} steps (D = H, the input "
        f"requires a gradient), float32, CPU, {args.threads} thread(s); {args.rounds} rounds after a warm-up; "
        "ms / step is the best round; time vs nn.LSTM is the median over rounds of the path's time over the nn.LSTM "
        "run just before it (a pair sees the same load). Large float32 matmul (2048^3) in the same run: "
        + ", ".join(f"**{p:.1f} GFLOP/s** (H={H} rounds)" for p, H in zip(peaks, args.hidden, strict=True))
        + f". Load average before / after: {load_before[0]:.2f} / {load_after[0]:.2f}.\n\n"
        + "\n".join(table)
        + "\n\n"
        "Paths: `fused (torch)` = PyTorch's fused module (what `rnnlab train` uses for these cells without "
        "per-layer extras); `autograd loop` = rnnlab's cell (`rnnlab.nn.cells`): the input projection for all steps "
        "in one product, then the step loop under autograd, what `rnnlab train` uses for every other cell and "
        "whenever a per-layer extra is asked for; `cell, fused op` = the LSTM and GRU cells' own sequence path, "
        "PyTorch's fused op on the cell's weights (what the layered stack runs for them; the step loop is kept for "
        "Hessian-free's vmap); `hand-written BPTT` = the peephole LSTM as one autograd node, its forward loop and "
        "backward written out with the weight gradients of all steps in one product each (`nn/peephole_lstm.py`, "
        "what `rnnlab train --peephole` runs); "
        "`one-node scan` = minGRU/minLSTM's `gated_scan`, what `rnnlab train` runs for them (`benchmarks/scan.py`; "
        "their `autograd loop` is what Hessian-free runs); `matrix products only` = "
        "the cell's matrix products at its shapes, forward and backward, joined by one add each and nothing else "
        "(`MatrixProducts`): the floor for any path built on PyTorch's matmul (the peephole LSTM's is the lstm "
        "row; rnn-relu's and irnn's are rnn-tanh's).\n"
    )
    print(write_result("cells.md", "Cell benchmark: time per training step vs torch.nn.LSTM", body))


if __name__ == "__main__":
    main()
