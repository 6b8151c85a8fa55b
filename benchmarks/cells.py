"""Time per training step (forward + backward) of every cell vs `torch.nn.LSTM`, and achieved GFLOP/s
against a large float32 matrix product, all measured in the same run.

    python benchmarks/cells.py [--hidden 256 512] [--batch 64] [--seq 128] [--repeats 3]

FLOPs are counted from each cell's matrix products (2·m·n·k per product, forward; backward = 2x forward),
which dominate; element-wise gate arithmetic is not counted, so GFLOP/s is a slight underestimate.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import write_result
from rnnlab.nn.cells import CELL_NAMES, make_cell
from rnnlab.nn.recurrent import Recurrent


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Peak-ish float32 throughput of this machine: a large square matrix product."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times) / 1e9


def step_flops(name: str, N: int, T: int, D: int, H: int) -> float:
    """Forward+backward FLOPs of the matrix products of one step over N x T tokens."""
    gates = {"rnn-tanh": 1, "rnn-relu": 1, "irnn": 1, "lstm": 4, "gru": 3, "gru-cho": 3, "mrnn": 2}
    if name in ("mingru", "minlstm"):  # gates from x only: 2 (mingru) or 3 (minlstm) input products, none on h
        return 3 * 2 * N * T * H * D * (2 if name == "mingru" else 3)
    if name.startswith("mut"):
        x_rows, h_rows = {"mut1": (2, 2), "mut2": (2, 3), "mut3": (3, 3)}[name]
    elif name == "mrnn":  # [W_fx; W_hx] x, W_fh h, W_hf f  with F = H
        x_rows, h_rows = 2, 2
    else:
        x_rows = h_rows = gates[name]
    forward = 2 * N * T * H * (x_rows * D + h_rows * H)
    return 3 * forward


def time_step(module: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of forward + backward (sum of outputs as the loss) after one warm-up step."""
    times = []
    for i in range(repeats + 1):
        module.zero_grad(set_to_none=True)
        start = time.perf_counter()
        out, _ = module(x)
        out.sum().backward()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    N, T = args.batch, args.seq
    peak = matmul_gflops()
    rows = []
    for H in args.hidden:
        D = H  # input = hidden, as in every layer above the first
        x = torch.randn(N, T, D)
        torch.manual_seed(0)
        base = time_step(torch.nn.LSTM(D, H, batch_first=True), x, args.repeats)
        base_gflops = step_flops("lstm", N, T, D, H) / base / 1e9
        rows.append((H, "torch.nn.LSTM (baseline)", base, 1.0, base_gflops, base_gflops / peak))
        print(f"H={H} nn.LSTM {base * 1e3:.0f} ms")
        for name in (n for n in CELL_NAMES if n != "ssm"):  # ssm: a block, not a cell; see benchmarks/scan.py
            fused = Recurrent(name, D, H) if name in ("rnn-tanh", "rnn-relu", "lstm", "gru") else None
            for label, module in (("fused", fused), ("cell loop", make_cell(name, D, H))):
                if module is None:
                    continue
                seconds = time_step(module, x, args.repeats)
                gflops = step_flops(name, N, T, D, H) / seconds / 1e9
                rows.append((H, f"{name} ({label})", seconds, seconds / base, gflops, gflops / peak))
                print(f"H={H} {name} {label}: {seconds * 1e3:.0f} ms, {seconds / base:.2f}x LSTM")
    table = [
        "| H | cell (path) | ms / step | time vs nn.LSTM | GFLOP/s | fraction of matmul |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    table += [f"| {H} | {name} | {s * 1e3:.0f} | {r:.2f}x | {g:.1f} | {f:.2f} |" for H, name, s, r, g, f in rows]
    body = (
        f"Forward + backward of one layer on a batch of N={N} sequences of T={T} steps (D = H), float32, CPU; "
        f"median of {args.repeats} steps after a warm-up. Large float32 matmul (2048^3) in the same run: "
        f"**{peak:.1f} GFLOP/s**.\n\n" + "\n".join(table) + "\n\n"
        "`fused` = PyTorch's fused module (what `rnnlab train` uses for these cells without per-layer extras); "
        "`cell loop` = rnnlab's own cell: input projection hoisted into one product, only the recurrent product "
        "and the gates in the Python time loop.\n"
    )
    print(write_result("cells.md", "Cell benchmark: time per training step vs torch.nn.LSTM", body))


if __name__ == "__main__":
    main()
