"""The tunable frequency generator: an echo state network that turns a slow control input into a sine wave.

The input u_t is a random piecewise-constant value in [0, 1], held for a random number of steps; it sets the
frequency ω_t = ω_min + u_t (ω_max − ω_min) of the target y_t = sin(φ_t), φ_t = φ_{t−1} + ω_t. The network
needs to oscillate by itself, so its output is fed back (W_fb y_{t−1}); training teacher-forces the true
y_{t−1} there, with a little state noise so that the learned oscillator is stable when it runs on its own.
A weak feedback (W_fb entries ±0.1) and a slow leak (0.3) keep the free-running oscillator from drifting:
over 10 reservoir seeds, scored on sequences drawn apart from the task's test data, the free-running NRMSE
median fell from 0.235 (feedback ±1, leak 0.5, noise 1e-4) to 0.057.

Test: fresh frequency sequences the network has never seen. After a short teacher-forced warm-up the network
runs freely on its own outputs and the free-running NRMSE is reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnlab.errors import RnnlabError
from rnnlab.esn.reservoir import EchoStateNetwork, ESNConfig, nrmse


def frequency_sequence(
    T: int,
    generator: torch.Generator,
    hold: tuple[int, int] = (100, 300),
    omega: tuple[float, float] = (0.1, 0.4),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (T, 1): a random piecewise-constant value in [0, 1] held for `hold` steps; targets (T, 1): the sine."""
    if T < 1 or not 1 <= hold[0] <= hold[1] or not 0 < omega[0] <= omega[1]:
        raise RnnlabError("frequency sequences need T >= 1, 1 <= hold[0] <= hold[1] and 0 < ω_min <= ω_max")
    u = torch.empty(T, dtype=torch.float64)
    t = 0
    while t < T:
        length = int(torch.randint(hold[0], hold[1] + 1, (1,), generator=generator))
        u[t : t + length] = torch.rand(1, generator=generator, dtype=torch.float64)
        t += length
    phase = torch.cumsum(omega[0] + u * (omega[1] - omega[0]), 0)
    phase += 2 * math.pi * torch.rand(1, generator=generator, dtype=torch.float64)
    return u[:, None], torch.sin(phase)[:, None]


def default_config(hidden_size: int = 300, seed: int = 0) -> ESNConfig:
    """Hyperparameters for this task (a feedback ESN; see the module docstring)."""
    return ESNConfig(
        input_size=1,
        output_size=1,
        hidden_size=hidden_size,
        sparsity=0.9,
        spectral_radius=0.8,
        input_scaling=1.0,
        bias_scaling=1.0,
        leak_rate=0.3,
        feedback=True,
        feedback_scaling=0.1,
        noise=1e-5,
        ridge=1e-6,
        washout=100,
        seed=seed,
    )


@dataclass
class SineFrequencyResult:
    """Test scores on unseen frequency sequences and the first one's curves, for plotting."""

    test_nrmse: float  # free-running after the warm-up, pooled over all test sequences
    teacher_forced_nrmse: float  # one-step: the true previous output fed back
    fit_seconds: float
    ridge: float
    esn: EchoStateNetwork
    inputs: torch.Tensor  # first test sequence, free-running part: (T, 1)
    target: torch.Tensor
    output: torch.Tensor


def run(
    config: ESNConfig | None = None,
    train_steps: int = 5000,
    test_steps: int = 1000,
    test_sequences: int = 5,
    warmup: int = 100,
    ridge: float | str | None = "cv",
    ridges: tuple[float, ...] = tuple(10.0**k for k in range(-10, 1)),
    seed: int = 0,
    device: str = "cpu",
) -> SineFrequencyResult:
    """Train on one random sequence, test on `test_sequences` fresh ones (warm-up teacher-forced, rest free).

    `ridge="cv"` picks the best of `ridges` by free-running NRMSE on one more fresh (validation) sequence.
    """
    config = config or default_config(seed=seed)
    if test_sequences < 1 or test_steps < 1 or warmup < 1:
        raise RnnlabError("need at least one test sequence, one test step and one warm-up step")
    g = torch.Generator().manual_seed(seed)
    train_u, train_y = frequency_sequence(train_steps, g)
    start = time.perf_counter()
    esn = EchoStateNetwork(config, device=device)
    if ridge == "cv":
        # One-step (teacher-forced) error says little about how well the oscillator runs on its own, so pick
        # the ridge by free-running error on a validation sequence; each candidate costs one linear solve.
        Z, Y = esn.design_matrix(train_u, train_y)
        val_u, val_y = frequency_sequence(warmup + test_steps, g)
        scores = {}
        for candidate in ridges:
            scores[candidate] = _free_running(esn.solve_readout(Z, Y, candidate), val_u, val_y, warmup)[1]
        esn.solve_readout(Z, Y, min(scores, key=scores.__getitem__))
    else:
        esn.fit(train_u, train_y, ridge=ridge)
    fit_seconds = time.perf_counter() - start

    free, forced, targets, first = [], [], [], None
    for _ in range(test_sequences):
        u, y = frequency_sequence(warmup + test_steps, g)
        out, _ = _free_running(esn, u, y, warmup)
        free.append(out)
        forced.append(esn.run(u, teacher=y)[0][warmup:].cpu())
        targets.append(y[warmup:])
        if first is None:
            first = (u[warmup:], y[warmup:], out)
    target = torch.cat(targets)
    return SineFrequencyResult(
        test_nrmse=nrmse(torch.cat(free), target),
        teacher_forced_nrmse=nrmse(torch.cat(forced), target),
        fit_seconds=fit_seconds,
        ridge=esn.config.ridge,
        esn=esn,
        inputs=first[0],
        target=first[1],
        output=first[2],
    )


def _free_running(esn: EchoStateNetwork, u: torch.Tensor, y: torch.Tensor, warmup: int) -> tuple[torch.Tensor, float]:
    """Outputs after a teacher-forced warm-up of `warmup` steps, and their NRMSE (inf if the oscillator blew up)."""
    _, state = esn.run(u[:warmup], teacher=y[:warmup])
    out = esn.run(u[warmup:], state)[0].cpu()
    error = nrmse(out, y[warmup:]) if torch.isfinite(out).all() else math.inf
    return out, error


def plot(result: SineFrequencyResult, path: Path, title: str = "") -> Path:
    """Target and free-running output (and the frequency input) over time, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5), sharex=True, height_ratios=(3, 1))
    top.plot(result.target[:, 0].numpy(), label="target", linewidth=2.5, color="tab:blue")
    top.plot(result.output[:, 0].numpy(), label="ESN output (free-running)", linewidth=1.2, color="tab:orange")
    top.set_ylabel("y")
    top.legend(loc="upper right")
    top.set_title(title or f"sine-frequency: test NRMSE {result.test_nrmse:.4f}")
    bottom.plot(result.inputs[:, 0].numpy(), color="tab:green")
    bottom.set_ylabel("frequency input u")
    bottom.set_xlabel("time step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
