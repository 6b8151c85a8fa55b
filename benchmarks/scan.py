"""Training tokens/s of the parallel-scan cells (mingru, minlstm, ssm) vs torch.nn.GRU/LSTM, and sampling cost.

1. Forward + backward of one layer (D = H) on N sequences of T steps, for several T, all in this run.
2. The scan kernels alone, at the longest T: rnnlab's `linear_scan` (a time loop of one multiply-add per step in
   one autograd node), its blocked parallel form (what it runs off the CPU) and Heinsen's log-space form (Feng et
   al.'s choice). (A Python loop under autograd took 18-90 s here: no longer measured.)
3. Sampling: ms per generated token after a prefix of 100 and of 10,000 tokens (state carried, one token
   per call, as `LanguageModel.stream` does): flat in the prefix length means O(1) state.

    python benchmarks/scan.py [--hidden 256] [--batch 16] [--seq 128 512 2048] [--ssm-max-seq 512] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch

from common import write_result
from rnnlab.config import ModelConfig
from rnnlab.lm.model import RNNLM
from rnnlab.nn.cells import make_cell
from rnnlab.nn.scan import linear_scan

CELLS = ("mingru", "minlstm", "ssm")


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best seconds of each fn() over `repeats` rounds that call every fn in turn (after one warm-up call
    each), so that a change in machine load hits all of them alike."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def train_step(module: torch.nn.Module, x: torch.Tensor):
    """Forward + backward with the sum of the outputs as the loss."""

    def run() -> None:
        module.zero_grad(set_to_none=True)
        out, _ = module(x)
        out.sum().backward()

    return run


class Projection(torch.nn.Module):
    """minGRU's input projection W x (D -> 2H) and nothing else: its speed if the scan cost nothing."""

    def __init__(self, D: int, out: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(D, out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.linear(x), None


def throughput(args: argparse.Namespace) -> str:
    H, N = args.hidden, args.batch
    rows = []
    for T in args.seq:
        torch.manual_seed(0)
        x = torch.randn(N, T, H)
        modules = {"torch.nn.GRU": torch.nn.GRU(H, H, batch_first=True)}
        modules["torch.nn.LSTM"] = torch.nn.LSTM(H, H, batch_first=True)
        modules.update({name: make_cell(name, H, H) for name in CELLS if name != "ssm" or args.ssm_max_seq >= T})
        modules["mingru's projection alone (bound)"] = Projection(H, 2 * H)
        times = interleaved({name: train_step(module, x) for name, module in modules.items()}, args.repeats)
        rates = {name: N * T / t for name, t in times.items()}
        for name, rate in rates.items():
            print(f"T={T} {name}: {rate:,.0f} tokens/s", flush=True)
        gru = rates["torch.nn.GRU"]
        rows += [f"| {T} | {name} | {rate:,.0f} | {rate / gru:.2f}x |" for name, rate in rates.items()]
    table = ["| T | layer | tokens/s (fwd + bwd) | vs nn.GRU |", "|---:|---|---:|---:|", *rows]
    return "\n".join(table)


def kernels(args: argparse.Namespace) -> str:
    """h_t = a_t h_{t-1} + b_t on (N, T, H), forward + backward, three ways."""
    N, T, H = args.batch, max(args.seq), args.hidden
    torch.manual_seed(0)
    a = torch.sigmoid(torch.randn(N, T, H) + 2).requires_grad_()
    b = torch.rand(N, T, H).requires_grad_()

    def heinsen() -> torch.Tensor:  # Feng et al.'s log-space form (Heinsen 2023), with PyTorch's logcumsumexp
        a_star = torch.cumsum(a.log(), 1)
        return torch.exp(a_star + torch.logcumsumexp(b.log() - a_star, 1))

    ways = {
        "`linear_scan`: time loop, one autograd node (rnnlab on the CPU)": lambda: linear_scan(a, b),
        "the same, blocked parallel form (rnnlab off the CPU)": lambda: linear_scan(a, b, blocked=True),
        "Heinsen log-space form, `torch.logcumsumexp` (the paper's)": heinsen,
    }
    times = interleaved({name: lambda fn=fn: fn().sum().backward() for name, fn in ways.items()}, args.repeats)
    rows = []
    for name, s in times.items():
        rows.append(f"| {name} | {s * 1e3:.0f} |")
        print(f"kernel {name}: {s * 1e3:.0f} ms", flush=True)
    return "\n".join(["| h_t = a_t h_{t-1} + b_t | ms (fwd + bwd) |", "|---|---:|", *rows])


@torch.no_grad()
def sampling(args: argparse.Namespace) -> str:
    """ms per token when generating one token at a time with the carried state, after a long or short prefix."""
    V, rows = 65, []
    for name in ("gru", *CELLS):
        torch.manual_seed(0)
        model = RNNLM(ModelConfig(vocab_size=V, cell=name, layers=2, hidden=args.hidden, embed=64)).eval()
        cells = []
        for prefix in args.prefix:
            start = time.perf_counter()
            _, state, _ = model(torch.randint(V, (1, prefix)))  # the prompt, in one parallel pass
            burn_in = time.perf_counter() - start
            token = torch.zeros(1, 1, dtype=torch.long)
            start = time.perf_counter()
            for _ in range(args.tokens):
                logits, state, _ = model(token, state)
                token = logits[:, -1].argmax(-1, keepdim=True)
            cells.append((burn_in, (time.perf_counter() - start) / args.tokens * 1e3))
            print(f"sample {name} prefix {prefix}: {cells[-1][1]:.2f} ms/token, prompt {burn_in:.2f} s", flush=True)
        row = " | ".join(f"{ms:.2f} | {s:.2f}" for s, ms in cells)
        rows.append(f"| {name} | {row} |")
    head = " | ".join(f"ms/token after {p:,} | prompt s ({p:,})" for p in args.prefix)
    return "\n".join([f"| cell | {head} |", "|---|" + "---:|" * 2 * len(args.prefix), *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--ssm-max-seq", type=int, default=512, help="ssm memory is N·T·2H·16 floats per tensor")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--prefix", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--tokens", type=int, default=100, help="tokens generated per sampling measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    body = (
        f"One layer, D = H = {args.hidden}, batch N = {args.batch}, float32, CPU, "
        f"best of {args.repeats} interleaved rounds after a warm-up, torch threads "
        f"{torch.get_num_threads()}; nn.GRU/LSTM are PyTorch's fused modules (oneDNN). "
        f"ssm: expand 2 (E = {2 * args.hidden}), 16 states, conv 4; only for T <= {args.ssm_max_seq} "
        "(it materialises h of N·T·E·16 floats).\n\n"
        "## Training throughput\n\n" + throughput(args) + "\n\n"
        f"## The scan kernels alone (N = {args.batch}, T = {max(args.seq)}, H = {args.hidden})\n\n"
        + kernels(args)
        + "\n\n"
        f"## Sampling: 2-layer model, H = {args.hidden}, one token per call, {args.tokens} tokens\n\n"
        + sampling(args)
        + "\n"
    )
    print(write_result("scan.md", "Parallel-scan cells: training throughput and sampling cost", body))


if __name__ == "__main__":
    main()
