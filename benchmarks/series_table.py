"""The real-valued series table: the classic baselines beside the recurrent networks, on one chaotic series and
one real one, scored on the same held-out tail with the same NRMSE.

    Mackey-Glass τ=17   rnnlab's generator (rnnlab.esn.mackey_glass), 2,500 samples one time unit apart
    sunspots            yearly sunspot numbers 1700-2008 (309 values), the copy statsmodels ships in its own
                        files (statsmodels.datasets.sunspots; nothing is downloaded)

Every model is fitted on the first 80% of the series (`rnnlab esn train --test-fraction 0.2`'s split) and predicts
each held-out row from all the rows before it ("one-step"). "free-run" forecasts 1..H rows ahead from a set of
origins in the tail, every prediction fed back as the next input, and pools the errors over the horizon and the
origins (the same origins for every model). NRMSE = RMSE / std of the targets, pooled (`rnnlab esn`'s). The models:

    last value          the row before                                  (no fitting)
    AR linear           `rnnlab ar train --model linear --order p`      least squares on p delay taps
    AR mlp window       `rnnlab ar train --model mlp --order p`         tanh layer + direct taps, Adam
    LDS                 `rnnlab lds train --states K`                   Kalman filter, EM
    ESN                 `rnnlab esn train`                              reservoir, ridge readout (ridge by CV)
    LSTM, GRU           `rnnlab timeseries train --cell lstm|gru`       1 x 32 units, windows of 50, Adam

Run:  taskset -c 1 python benchmarks/series_table.py      (writes benchmarks/results/series_table.md)
      taskset -c 1 python benchmarks/series_table.py --quick    (tiny budgets, prints only: a smoke test)
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from common import write_result
from rnnlab.baselines import ar, lds
from rnnlab.baselines.series import horizon_targets, nrmse, split
from rnnlab.esn.mackey_glass import default_config, mackey_glass
from rnnlab.esn.reservoir import ESNConfig, fit_series
from rnnlab.seq.sequence import SeqConfig
from rnnlab.seq.timeseries import Forecaster

torch.set_num_threads(1)
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Setting:
    """One series and the budgets its models get."""

    name: str
    values: np.ndarray  # (T, 1)
    order: int  # AR delay taps p
    states: int  # LDS hidden states K
    esn: ESNConfig
    horizon: int  # free-run rows ahead
    stride: int  # every this many held-out rows is a free-run origin
    rnn_steps: int
    mlp_steps: int


@dataclass(frozen=True)
class Row:
    model: str
    one_step: float
    free_run: float
    seconds: float


Predict = tuple[np.ndarray, np.ndarray]  # one-step predictions of the held-out rows, forecasts (n, H, 1)
EM_ITERATIONS: dict[str, int] = {}  # series -> the iterations the LDS's EM ran, for the budget column


def settings(quick: bool) -> list[Setting]:
    import statsmodels.api as sm

    sun = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)[:, None]
    mg = mackey_glass(2500).numpy()[:, None]
    small = ESNConfig(  # `rnnlab esn train`'s defaults, but for the size and washout of a 248-row series
        input_size=1,
        output_size=1,
        hidden_size=100,
        sparsity=0.9,
        spectral_radius=0.9,
        input_scaling=1.0,
        bias_scaling=0.2,
        leak_rate=0.3,
        washout=20,
        seed=0,
    )
    mg_esn = default_config(500, seed=0)
    mg_esn.washout = 100
    steps = (100, 200) if quick else (2000, 3000)
    return [
        Setting("Mackey-Glass τ=17", mg, 20, 4, mg_esn, 50, 5, *steps),
        Setting("sunspots (yearly)", sun, 9, 4, small, 11, 1, *steps),
    ]


def last_value(s: Setting, train: int, origins: np.ndarray) -> Predict:
    series = s.values
    return series[train - 1 : -1], np.repeat(series[origins][:, None], s.horizon, axis=1)


def ar_model(kind: str) -> Callable[[Setting, int, np.ndarray], Predict]:
    def run(s: Setting, train: int, origins: np.ndarray) -> Predict:
        config = ar.ARConfig(model=kind, order=s.order, steps=s.mlp_steps, seed=0)
        model = ar.fit_series(s.values, ["x"], config, TEST_FRACTION)
        p = s.order
        return model.one_step(s.values[train - p : -1]), model.forecast(s.values, origins, s.horizon)

    return run


def lds_model(s: Setting, train: int, origins: np.ndarray) -> Predict:
    model = lds.fit_series(s.values, ["x"], lds.LDSConfig(states=s.states), TEST_FRACTION)
    EM_ITERATIONS[s.name] = model.info["iterations"]
    return model.one_step(s.values)[train:-1], model.forecast(s.values, origins, s.horizon)


def esn_model(s: Setting, train: int, origins: np.ndarray) -> Predict:
    fit = fit_series(torch.tensor(s.values), ["x"], s.esn, TEST_FRACTION, ridge="cv")
    mean, std = fit.mean.numpy(), fit.std.numpy()
    z = torch.from_numpy((s.values - mean) / std)
    out, _ = fit.esn.run(z[:-1])  # out[t] predicts row t + 1
    forecasts, state, seen = [], None, 0
    for o in origins:  # carry the teacher-forced state from origin to origin; free-run from each
        _, state = fit.esn.run(z[seen : o + 1], state)
        seen = o + 1
        forecasts.append(torch.cat([state.y[None], fit.esn.generate(s.horizon - 1, state)]).numpy())
    return out[train - 1 :].numpy() * std + mean, np.stack(forecasts) * std + mean


def rnn_model(cell: str) -> Callable[[Setting, int, np.ndarray], Predict]:
    def run(s: Setting, train: int, origins: np.ndarray) -> Predict:
        config = SeqConfig(cell=cell, hidden=32, embed=1, steps=s.rnn_steps, batch_size=32, lr=3e-3, seed=0)
        model = Forecaster.train(s.values[:train, 0], config, window=50)
        one_step = model.one_step(s.values[:-1, 0])[train - 1 :, None]
        return one_step, _rnn_forecasts(model, s.values[:, 0], origins, s.horizon)

    return run


@torch.no_grad()
def _rnn_forecasts(model: Forecaster, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Free runs from every origin, batched: the state carried through the true series up to each origin (as in
    `one_step`), then `horizon` steps on the network's own outputs."""
    module = model.module.eval()
    z = torch.as_tensor((series - model.mean) / model.std, dtype=torch.float32)
    states, outputs, state, seen = [], [], None, 0
    for o in origins:
        out, state = module.rnn(z[None, seen : o + 1, None], state)
        seen = o + 1
        states.append(state)
        outputs.append(out[:, -1:])
    if isinstance(state, tuple):
        state = tuple(torch.cat([st[i] for st in states], dim=1) for i in range(len(state)))
    else:
        state = torch.cat(states, dim=1)
    value = module.head(torch.cat(outputs))
    forecasts = []
    for _ in range(horizon):
        forecasts.append(value[:, 0, 0])
        out, state = module.rnn(value, state)
        value = module.head(out)
    return torch.stack(forecasts, 1).double().numpy()[..., None] * model.std + model.mean


def budgets(s: Setting) -> dict[str, str]:
    e = s.esn
    return {
        "last value": "none",
        "AR linear": f"p = {s.order}, least squares",
        "AR mlp window": f"p = {s.order}, tanh 32 + direct taps, {s.mlp_steps} Adam steps x 64 windows",
        "LDS": f"K = {s.states} states, EM {EM_ITERATIONS.get(s.name, '?')} iterations (at most 200, tol 1e-6)",
        "ESN": f"{e.hidden_size} units, spectral radius {e.spectral_radius}, leak {e.leak_rate}, washout {e.washout}",
        "LSTM": f"1 x 32, {s.rnn_steps} Adam steps x 32 windows of 50",
        "GRU": f"1 x 32, {s.rnn_steps} Adam steps x 32 windows of 50",
    }


MODELS: dict[str, Callable[[Setting, int, np.ndarray], Predict]] = {
    "last value": last_value,
    "AR linear": ar_model("linear"),
    "AR mlp window": ar_model("mlp"),
    "LDS": lds_model,
    "ESN": esn_model,
    "LSTM": rnn_model("lstm"),
    "GRU": rnn_model("gru"),
}


def evaluate(s: Setting) -> tuple[list[Row], int, int]:
    T = len(s.values)
    train = split(T, TEST_FRACTION, 1)
    origins, targets = horizon_targets(s.values, train, s.horizon)
    origins, targets = origins[:: s.stride], targets[:: s.stride]
    rows = []
    for name, run in MODELS.items():
        started = time.process_time()  # CPU time: the machine is shared, and this process is pinned to one core
        one_step, forecasts = run(s, train, origins)
        seconds = time.process_time() - started
        rows.append(Row(name, nrmse(one_step, s.values[train:]), nrmse(forecasts, targets), seconds))
        print(
            f"{s.name:20s} {name:14s} one-step {rows[-1].one_step:.4g}  free-run {rows[-1].free_run:.4g}  "
            f"{seconds:.1f}s",
            flush=True,
        )
    return rows, train, len(origins)


def table(s: Setting, rows: list[Row], train: int, origins: int) -> str:
    T = len(s.values)
    naive = rows[0]
    lines = [
        f"### {s.name}: {train} training rows, {T - train} held out; free-run 1-{s.horizon} rows ahead from "
        f"{origins} origins (every {s.stride} held-out row{'s' if s.stride > 1 else ''})",
        "",
        "| model | one-step NRMSE | vs last value | free-run NRMSE (1-H) | CPU (fit + predict) | budget |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: r.one_step):
        lines.append(
            f"| {r.model} | {r.one_step:.4g} | {r.one_step / naive.one_step:.3f} | {r.free_run:.4g} | "
            f"{r.seconds:.1f} s | {budgets(s)[r.model]} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets; print, do not write the result")
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    sections = []
    for s in settings(args.quick):
        rows, train, origins = evaluate(s)
        sections.append(table(s, rows, train, origins))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    load = os.getloadavg()[0]
    body = "\n".join(
        [
            "Series (each model sees one column of numbers):",
            "",
            "- **Mackey-Glass τ=17**: rnnlab's generator (`rnnlab.esn.mackey_glass`), 2,500 samples one time unit "
            "apart; deterministic and chaotic.",
            "- **sunspots**: yearly sunspot numbers 1700-2008 (309 values), the copy statsmodels ships in its own "
            "files (`statsmodels.datasets.sunspots`; nothing is downloaded); noisy and short.",
            "",
            f"Every model is fitted on the first {1 - TEST_FRACTION:.0%} of the series (the split of `rnnlab esn train "
            "--test-fraction 0.2`, `lds train`, `ar train`) and predicts each held-out row from all the rows before it "
            "(**one-step**). **free-run** forecasts 1..H rows ahead from origins in the tail (the same origins for "
            "every model), each prediction fed back as the next input, and pools the errors over horizon and origins. "
            "NRMSE = RMSE / standard deviation of the targets (`rnnlab esn`'s definition). Models: the last value; "
            "`rnnlab ar --model linear` (least squares on p delay taps); `rnnlab ar --model mlp` (Bengio-style "
            "window network: tanh layer + direct taps, Adam); `rnnlab lds` (Kalman filter, EM); `rnnlab esn` "
            "(reservoir, ridge readout chosen by cross-validation); `rnnlab timeseries --cell lstm|gru` (1 x 32 units, "
            "trained on random windows of 50, evaluated with the state carried through the whole series). Seed 0 "
            "throughout.",
            "",
            f"Rows are sorted by one-step NRMSE. The whole run took {cpu:.0f} s of CPU time on one core ({wall:.0f} s "
            f"of wall time on a shared machine, load average {load:.1f} at the end); each model's time is its CPU "
            "time.",
            "",
            "\n\n".join(sections),
        ]
    )
    if args.quick:
        print(body)
    else:
        title = "Real-valued series: classic baselines beside recurrent networks"
        print(write_result("series_table.md", title, body, "taskset -c 1 python benchmarks/series_table.py"))


if __name__ == "__main__":
    main()
