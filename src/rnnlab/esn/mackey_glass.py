"""Mackey-Glass chaotic time series prediction with an echo state network (tau 17, the classic benchmark).

The series integrates the delay differential equation

    dx/dt = β x(t−τ) / (1 + x(t−τ)ⁿ) − γ x(t),    β = 0.2, γ = 0.1, n = 10, τ = 17

ourselves (fourth-order Runge-Kutta in float64, step 0.1, sampled every time unit). The ESN learns one-step
prediction (input x_t, target x_{t+1}); it is then run freely on its own outputs and scored 84 steps ahead,
the horizon of Jaeger & Haas (2004): NRMSE84 = sqrt(mean over trials of (ŷ_{t+84} − x_{t+84})²) / std(x).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnlab.errors import RnnlabError
from rnnlab.esn.reservoir import EchoStateNetwork, ESNConfig, nrmse

HORIZON = 84


def mackey_glass(
    n: int,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    exponent: float = 10.0,
    dt: float = 0.1,
    sample_every: float = 1.0,
    x0: float = 1.2,
    discard: int = 1000,
) -> torch.Tensor:
    """`n` samples (float64) of the Mackey-Glass series after `discard` samples of transient.

    History before t = 0 is the constant x0. The delayed value at RK4's half steps is the mean of its two grid
    neighbours (linear interpolation), so τ must be a multiple of dt.
    """
    if n < 1 or tau <= 0 or dt <= 0 or sample_every < dt:
        raise RnnlabError("Mackey-Glass needs n >= 1, tau > 0, dt > 0 and sample_every >= dt")
    lag, every = round(tau / dt), round(sample_every / dt)
    if abs(lag * dt - tau) > 1e-9 or abs(every * dt - sample_every) > 1e-9:
        raise RnnlabError(f"tau ({tau}) and sample_every ({sample_every}) must be multiples of dt ({dt})")

    def f(x: float, delayed: float) -> float:
        return beta * delayed / (1.0 + delayed**exponent) - gamma * x

    xs = [x0] * (lag + 1)  # xs[-1] is x(t); xs[-1 - lag] is x(t − τ)
    samples: list[float] = []
    total = (n + discard) * every
    for step in range(total):
        x, d0, d1 = xs[-1], xs[-1 - lag], xs[-lag]  # x(t), x(t−τ), x(t−τ+dt)
        dm = 0.5 * (d0 + d1)
        k1 = f(x, d0)
        k2 = f(x + 0.5 * dt * k1, dm)
        k3 = f(x + 0.5 * dt * k2, dm)
        k4 = f(x + dt * k3, d1)
        xs.append(x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4))
        if len(xs) > 4 * lag:
            del xs[: 2 * lag]
        if (step + 1) % every == 0:
            samples.append(xs[-1])
    return torch.tensor(samples[discard:], dtype=torch.float64)


@dataclass
class MackeyGlassResult:
    """Scores of one run of the protocol (NRMSE: RMSE over the series' standard deviation)."""

    one_step_nrmse: float  # teacher-driven one-step prediction over the test span
    nrmse_84: float  # free-running, 84 steps ahead, over all trials
    free_run_nrmse: float  # free-running, averaged over the whole 84-step horizon of every trial
    trials: int
    fit_seconds: float
    ridge: float
    esn: EchoStateNetwork
    free_run: torch.Tensor  # the first trial: (84,) generated
    free_run_target: torch.Tensor  # and its truth


def default_config(hidden_size: int = 1000, seed: int = 0) -> ESNConfig:
    """Hyperparameters tuned for this protocol (see benchmarks/results/esn.md)."""
    return ESNConfig(
        input_size=1,
        output_size=1,
        hidden_size=hidden_size,
        sparsity=0.9,
        spectral_radius=1.25,
        input_scaling=1.0,
        bias_scaling=0.2,
        leak_rate=0.3,
        ridge=1e-9,
        washout=200,
        seed=seed,
        dtype="float64",
    )


def run(
    config: ESNConfig | None = None,
    train_steps: int = 4000,
    test_steps: int = 2000,
    trials: int = 20,
    ridge: float | str | None = None,
    series: torch.Tensor | None = None,
    device: str = "cpu",
) -> MackeyGlassResult:
    """Train a one-step predictor on `train_steps` samples, then score it on the following `test_steps`."""
    config = config or default_config()
    if trials < 1 or test_steps < trials * HORIZON:
        raise RnnlabError(f"need trials >= 1 and test steps >= trials × {HORIZON}")
    s = mackey_glass(train_steps + test_steps + 1) if series is None else series.double()
    mean, std = s[:train_steps].mean(), s[:train_steps].std()
    z = ((s - mean) / std)[:, None]  # inputs near zero mean and unit variance suit tanh units
    train_in, train_out = z[:train_steps], z[1 : train_steps + 1]
    test = z[train_steps:]

    start = time.perf_counter()
    esn = EchoStateNetwork(config, device=device).fit(train_in, train_out, ridge=ridge)
    fit_seconds = time.perf_counter() - start

    # Warm up on the end of the training data, then walk through the test span: at each trial start the
    # network has seen the true series up to there; from that state it runs 84 steps on its own outputs.
    _, state = esn.run(train_in[-config.washout :])
    _, state = esn.run(train_out[-1:], state)  # train_out[-1] is test[0]'s predecessor
    spacing = (len(test) - HORIZON - 1) // trials
    one_step, errors_84, errors_all, first = [], [], [], None
    position = 0
    for _ in range(trials):
        # state.y now predicts test[position + 1] ... (the last input was test[position])
        ahead = torch.cat([state.y[None], esn.generate(HORIZON - 1, state)])[:, 0].cpu()
        truth = test[position + 1 : position + 1 + HORIZON, 0]
        errors_84.append((ahead[-1] - truth[-1]) ** 2)
        errors_all.append(((ahead - truth) ** 2).mean())
        if first is None:
            first = (ahead, truth)
        outputs, state = esn.run(test[position + 1 : position + 1 + spacing], state)
        one_step.append((outputs[:, 0].cpu(), test[position + 2 : position + 2 + spacing, 0]))
        position += spacing
    var = test.var(correction=0)
    pred = torch.cat([p for p, _ in one_step])
    return MackeyGlassResult(
        one_step_nrmse=nrmse(pred, torch.cat([t for _, t in one_step])),
        nrmse_84=(torch.stack(errors_84).mean() / var).sqrt().item(),
        free_run_nrmse=(torch.stack(errors_all).mean() / var).sqrt().item(),
        trials=trials,
        fit_seconds=fit_seconds,
        ridge=esn.config.ridge,
        esn=esn,
        free_run=first[0] * std + mean,
        free_run_target=first[1] * std + mean,
    )


def plot(result: MackeyGlassResult, path: Path) -> Path:
    """The first trial's 84-step free run against the true series, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(result.free_run_target.numpy(), label="Mackey-Glass", linewidth=2.5)
    ax.plot(result.free_run.numpy(), label="ESN, free-running", linewidth=1.2)
    ax.set_xlabel("steps ahead")
    ax.set_title(f"Mackey-Glass τ=17: NRMSE at step 84 {result.nrmse_84:.2e}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
