"""`rnnlab lds|ar train|predict`: the real-valued series baselines (linear dynamical system; autoregressive
delay-tap models), on CSV series read as `rnnlab esn` reads them and scored as it scores them (NRMSE on the
held-out tail, beside the last value)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np
import typer

from rnnlab.baselines.ar import ARConfig
from rnnlab.baselines.lds import LDSConfig
from rnnlab.cli.app import app
from rnnlab.cli.options import PanelCommand, config_options, input_argument
from rnnlab.errors import RnnlabError
from rnnlab.rundir import check_output, write_output

Opt = typer.Option
lds_app = typer.Typer(
    help="Linear dynamical systems (Kalman filter and smoother, EM) on CSV series.", no_args_is_help=True
)
ar_app = typer.Typer(
    help="Autoregressive window models on CSV series: linear AR(p) and a feed-forward window network.",
    no_args_is_help=True,
)
app.add_typer(lds_app, name="lds")
app.add_typer(ar_app, name="ar")

SERIES = "CSV file with a header row; one row per time step."
Out = Annotated[Path, Opt(help="Run directory to write (config.json, model.safetensors).")]
Columns = Annotated[str | None, Opt(help="Comma-separated column names to model (default: all).")]
TestFraction = Annotated[float, Opt(help="Fraction of rows held out at the end for the NRMSE.")]
TrainHorizon = Annotated[int, Opt(help="Also score free-running forecasts 1..H rows ahead on the held-out tail.")]
RunDir = Annotated[Path, typer.Argument(help="Run directory made by `train`.")]
Output = Annotated[Path | None, Opt(help="Write the predictions here as CSV (default: stdout).")]
Horizon = Annotated[
    int,
    Opt(help="Write the H rows after INPUT, each forecast from the forecasts before it, instead; score 1..H ahead."),
]


class SeriesModel(Protocol):
    """What the commands need of a fitted model (rnnlab.baselines.lds.LDSModel, rnnlab.baselines.ar.ARModel)."""

    columns: list[str]
    info: dict[str, Any]

    def save(self, run_dir: Path) -> Path: ...
    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray: ...


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RnnlabError(f"cannot write the run to {out}: it is a file")


def _check_horizon(horizon: int, rows: int, test_fraction: float) -> None:
    """Before training: a free-running score needs at least `horizon` held-out rows."""
    if horizon < 0:
        raise RnnlabError(f"--horizon must be >= 0, got {horizon}")
    held_out = int(rows * test_fraction) if 0 <= test_fraction < 1 else 0
    if horizon > held_out:
        raise RnnlabError(f"--horizon {horizon} needs at least {horizon} held-out rows; there are {held_out}")


def _report(model: SeriesModel, series: np.ndarray, horizon: int, out: Path) -> None:
    """Print the held-out scores, with the free-running one for `horizon` > 0, and save the run."""
    from rnnlab.baselines.series import horizon_targets, nrmse

    info = model.info
    if "test_nrmse" in info:
        print(
            f"held-out one-step NRMSE ({info['test_rows']} rows): {info['test_nrmse']:.5g} "
            f"(last value {info['last_value_nrmse']:.5g})"
        )
    else:
        print("held-out one-step NRMSE: n/a (no held-out rows)")
    if horizon > 0:
        origins, targets = horizon_targets(series, info["train_rows"], horizon)
        score = nrmse(model.forecast(series, origins, horizon), targets)
        info["free_run"] = {"horizon": horizon, "nrmse": score}
        print(f"held-out free-running NRMSE, 1-{horizon} rows ahead ({len(origins)} origins): {score:.5g}")
    model.save(out)
    print(f"saved {out}")


def _write_csv(columns: list[str], first_row: int, rows: np.ndarray, output: Path | None) -> None:
    """`row` (the 0-based index of the data row predicted) and the columns, to stdout or atomically to `output`."""
    lines = ["row," + ",".join(columns)]
    lines += [f"{first_row + i}," + ",".join(f"{v:.10g}" for v in row) for i, row in enumerate(rows.tolist())]
    text = "\n".join(lines) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_output(output, text.encode("utf-8"))


def _predict(
    model: SeriesModel,
    series: np.ndarray,
    first: int,
    one_step: Callable[[np.ndarray], np.ndarray],
    horizon: int,
    output: Path | None,
) -> None:
    """One-step predictions of rows `first` .. T of INPUT (its NRMSE on stderr), or with `horizon` the forecast of
    the rows after it (and the free-running NRMSE over INPUT)."""
    from rnnlab.baselines.series import horizon_targets, nrmse

    if horizon < 0:
        raise RnnlabError(f"--horizon must be >= 0, got {horizon}")
    T = len(series)
    if horizon:
        last = np.array([T - 1])
        _write_csv(model.columns, T, model.forecast(series, last, horizon)[0], output)
        if T - horizon >= first:
            origins, targets = horizon_targets(series, first, horizon)
            score = nrmse(model.forecast(series, origins, horizon), targets)
            print(f"free-running NRMSE, 1-{horizon} rows ahead ({len(origins)} origins): {score:.5g}", file=sys.stderr)
        return
    predictions = one_step(series)
    _write_csv(model.columns, first, predictions, output)
    if T - first > 1:
        print(f"one-step NRMSE ({T - first} rows): {nrmse(predictions[:-1], series[first:]):.5g}", file=sys.stderr)


@lds_app.command("train", cls=PanelCommand)
@config_options(LDSConfig, presets={})
def lds_train(
    input: Annotated[Path, input_argument(SERIES)],
    *,
    out: Out,
    columns: Columns = None,
    test_fraction: TestFraction = 0.2,
    horizon: TrainHorizon = 0,
    options: dict[str, Any],
) -> None:
    """Fit a linear dynamical system by EM; report one-step NRMSE on the held-out tail beside the last value."""
    from rnnlab.baselines.lds import fit_series
    from rnnlab.baselines.series import parse_columns, read_columns

    _check_out(out)
    series, names = read_columns(input, parse_columns(columns))
    _check_horizon(horizon, len(series), test_fraction)
    model = fit_series(series, names, LDSConfig(**options), test_fraction)
    info = model.info
    print(
        f"trained on {info['train_rows']} rows: EM {info['iterations']} iterations, "
        f"log-likelihood {info['log_likelihood_per_row']:.5g} nats per row (standardised)"
    )
    _report(model, series, horizon, out)


@lds_app.command("predict")
def lds_predict(
    run_dir: RunDir,
    input: Annotated[Path, input_argument("CSV with the run's columns; the filter reads it from its first row.")],
    output: Output = None,
    horizon: Horizon = 0,
) -> None:
    """Predict each next row of INPUT from the rows before it (Kalman filter, from the stationary state); print
    the one-step NRMSE on stderr. The CSV's `row` is the index of the row predicted (the last is past the end)."""
    from rnnlab.baselines.lds import LDSModel
    from rnnlab.baselines.series import read_columns

    if output is not None:
        check_output(output)
    model = LDSModel.load(run_dir).from_stationary()
    series, _ = read_columns(input, model.columns)
    _predict(model, series, 1, lambda values: model.one_step(values)[1:], horizon, output)


@ar_app.command("train", cls=PanelCommand)
@config_options(ARConfig, presets={})
def ar_train(
    input: Annotated[Path, input_argument(SERIES)],
    *,
    out: Out,
    columns: Columns = None,
    test_fraction: TestFraction = 0.2,
    horizon: TrainHorizon = 0,
    options: dict[str, Any],
) -> None:
    """Fit a linear AR(p) or a feed-forward window network; report one-step NRMSE on the held-out tail beside the
    last value."""
    from rnnlab.baselines.ar import fit_series
    from rnnlab.baselines.series import parse_columns, read_columns

    _check_out(out)
    config = ARConfig(**options)
    config.validate()
    series, names = read_columns(input, parse_columns(columns))
    _check_horizon(horizon, len(series), test_fraction)
    model = fit_series(series, names, config, test_fraction, show=True)
    how = "least squares" if config.model == "linear" else f"{config.steps} Adam steps at most"
    print(f"trained {config.model} AR({config.order}) on {model.info['train_rows']} rows ({how})")
    _report(model, series, horizon, out)


@ar_app.command("predict")
def ar_predict(
    run_dir: RunDir,
    input: Annotated[Path, input_argument("CSV with the run's columns and at least --order rows.")],
    output: Output = None,
    horizon: Horizon = 0,
) -> None:
    """Predict each next row of INPUT from the p rows before it; print the one-step NRMSE on stderr. The CSV's
    `row` is the index of the row predicted, from row p on (the last is past the end)."""
    from rnnlab.baselines.ar import ARModel
    from rnnlab.baselines.series import read_columns

    if output is not None:
        check_output(output)
    model = ARModel.load(run_dir)
    series, _ = read_columns(input, model.columns)
    _predict(model, series, model.config.order, model.one_step, horizon, output)
