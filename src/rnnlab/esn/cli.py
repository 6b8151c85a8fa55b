"""`rnnlab esn ...` (echo state networks on CSV time series) and the tasks `sine-frequency` and `mackey-glass`.

Each command parses its arguments and calls rnnlab.esn.reservoir or rnnlab.tasks; nothing more.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import torch
import typer

from rnnlab.cli.app import app
from rnnlab.cli.options import input_argument, old_spellings, old_verb
from rnnlab.cli.tasks import task_app
from rnnlab.errors import RnnlabError
from rnnlab.esn.reservoir import ESNConfig
from rnnlab.rundir import check_output, write_output

esn_app = typer.Typer(
    help="Echo state networks: a fixed random reservoir with a readout solved by ridge regression.",
    no_args_is_help=True,
)
app.add_typer(esn_app, name="esn")

Opt = typer.Option


def _parse_ridge(ridge: str) -> float | str:
    if ridge == "cv":
        return ridge
    try:
        return float(ridge)
    except ValueError:
        raise RnnlabError(f"--ridge must be a number or 'cv', got {ridge!r}") from None


def _write_csv(columns: list[str], rows: torch.Tensor, out: Path | None) -> None:
    """The rows as CSV, to stdout or atomically to `out` (with the user's umask; see `write_output`)."""
    text = ",".join(columns) + "\n" + "".join(",".join(f"{v:.10g}" for v in row) + "\n" for row in rows.tolist())
    if out is None:
        sys.stdout.write(text)
    else:
        write_output(out, text.encode("utf-8"))


@esn_app.command("train")
@old_verb(esn_app, "esn fit", "esn train")
@old_spellings(input=("--input", "-i"))
def train(
    input: Annotated[Path, input_argument("CSV file with a header row; one row per time step.")],
    *,
    out: Annotated[Path, Opt(help="Run directory to write (config.json, model.safetensors).")],
    columns: Annotated[str | None, Opt(help="Comma-separated column names to model (default: all).")] = None,
    test_fraction: Annotated[float, Opt(help="Fraction of rows held out at the end for the NRMSE.")] = 0.2,
    hidden: Annotated[int, Opt(help="Reservoir units H.")] = 500,
    layers: Annotated[int, Opt(help="Stacked reservoirs L (the readout sees all of them).")] = 1,
    sparsity: Annotated[float, Opt(help="Fraction of zero recurrent weights, in [0, 1).")] = 0.9,
    spectral_radius: Annotated[float, Opt(help="Largest |eigenvalue| of the recurrent matrix.")] = 0.9,
    input_scaling: Annotated[float, Opt(help="Input weights are uniform in ±this.")] = 1.0,
    bias_scaling: Annotated[float, Opt(help="Biases are uniform in ±this.")] = 0.2,
    leak_rate: Annotated[float, Opt(help="Leak rate a in (0, 1]; smaller gives slower dynamics.")] = 0.3,
    ridge: Annotated[str, Opt(help="Ridge regularisation: a number, or 'cv' to pick by cross-validation.")] = "cv",
    washout: Annotated[int, Opt(help="Initial steps left out of the regression.")] = 100,
    seed: Annotated[int, Opt(help="Seed of the random reservoir.")] = 0,
    device: Annotated[str, Opt(help="cpu | cuda")] = "cpu",
) -> None:
    """Fit an ESN that predicts each next row of a CSV time series; report NRMSE on the held-out tail and save."""
    from rnnlab.data.series import read_series_csv
    from rnnlab.esn.reservoir import fit_series

    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    series, names = read_series_csv(input, names)
    config = ESNConfig(
        input_size=series.shape[1],
        output_size=series.shape[1],
        hidden_size=hidden,
        layers=layers,
        sparsity=sparsity,
        spectral_radius=spectral_radius,
        input_scaling=input_scaling,
        bias_scaling=bias_scaling,
        leak_rate=leak_rate,
        washout=washout,
        seed=seed,
    )
    result = fit_series(series, names, config, test_fraction, _parse_ridge(ridge), device)
    result.save(out)
    score = "n/a (no held-out rows)" if result.test_nrmse is None else f"{result.test_nrmse:.5f}"
    print(f"trained on {result.train_steps} rows, ridge {result.esn.config.ridge:g}")
    print(f"held-out one-step NRMSE ({result.test_steps} rows): {score}")
    print(f"saved {out}")


@esn_app.command("predict")
@old_spellings(input=("--input", "-i"), output="--out")
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory made by `rnnlab esn train`.")],
    input: Annotated[Path, input_argument("CSV with the same columns; each row is fed in turn.")],
    output: Annotated[Path | None, Opt(help="Write the predictions here as CSV (default: stdout).")] = None,
    device: Annotated[str, Opt(help="cpu | cuda")] = "cpu",
) -> None:
    """Predict the next row after each row of a CSV series (one step ahead); print NRMSE against the truth."""
    from rnnlab.data.series import read_series_csv
    from rnnlab.esn.reservoir import load_series, predict_series

    if output is not None:
        check_output(output)  # an unwritable --output fails before the work
    columns = load_series(run_dir)[1]["columns"]
    series, _ = read_series_csv(input, columns)
    predictions, score = predict_series(run_dir, series, device)
    _write_csv(columns, predictions, output)
    if score is not None:
        print(f"one-step NRMSE: {score:.5f}", file=sys.stderr)


@esn_app.command("generate")
@old_spellings(output="--out")
def generate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory made by `rnnlab esn train`.")],
    steps: Annotated[int, Opt(help="Rows to generate, each fed back as the next input.")] = 100,
    prime: Annotated[
        Path | None, Opt(help="CSV whose rows are fed in first (default: the end of the training series).")
    ] = None,
    output: Annotated[Path | None, Opt(help="Write the generated rows here as CSV (default: stdout).")] = None,
    device: Annotated[str, Opt(help="cpu | cuda")] = "cpu",
) -> None:
    """Run the model freely on its own outputs for --steps rows, continuing the series (closed loop)."""
    from rnnlab.data.series import read_series_csv
    from rnnlab.esn.reservoir import generate_series, load_series

    if steps < 0:
        raise RnnlabError(f"--steps must be >= 0, got {steps}")
    if output is not None:
        check_output(output)
    columns = load_series(run_dir)[1]["columns"]
    start = None if prime is None else read_series_csv(prime, columns)[0]
    _write_csv(columns, generate_series(run_dir, steps, start, device), output)


@task_app.command("sine-frequency")
def sine_frequency(
    plot: Annotated[Path, Opt(help="PNG of target and output on the first test sequence.")] = Path(
        "sine-frequency.png"
    ),
    hidden: Annotated[int, Opt(help="Reservoir units H.")] = 300,
    train_steps: Annotated[int, Opt(help="Length of the one training sequence.")] = 5000,
    test_steps: Annotated[int, Opt(help="Free-running steps per test sequence.")] = 1000,
    test_sequences: Annotated[int, Opt(help="Unseen frequency sequences to test on.")] = 5,
    seed: Annotated[int, Opt(help="Seed of the reservoir and the data.")] = 0,
    out: Annotated[Path | None, Opt(help="Also save the trained ESN to this run directory.")] = None,
    device: Annotated[str, Opt(help="cpu | cuda")] = "cpu",
) -> None:
    """Tunable frequency generator: input sets a sine's frequency; test NRMSE on unseen sequences, free-running."""
    from rnnlab.esn import sine_frequency as task

    result = task.run(
        task.default_config(hidden, seed),
        train_steps=train_steps,
        test_steps=test_steps,
        test_sequences=test_sequences,
        seed=seed,
        device=device,
    )
    task.plot(result, plot)
    if out is not None:
        result.esn.save(out, extra={"task": "sine-frequency"})
    print(f"fit {result.fit_seconds:.2f}s, ridge {result.ridge:g}, {hidden} units")
    print(f"teacher-forced (one-step) test NRMSE: {result.teacher_forced_nrmse:.5f}")
    print(f"free-running test NRMSE ({test_sequences} unseen sequences): {result.test_nrmse:.5f}")
    print(f"plot: {plot}")


@task_app.command("mackey-glass")
def mackey_glass(
    hidden: Annotated[int, Opt(help="Reservoir units H.")] = 1000,
    train_steps: Annotated[int, Opt(help="Training samples (one per time unit).")] = 4000,
    trials: Annotated[int, Opt(help="Free-running trials of 84 steps on the test span.")] = 20,
    seed: Annotated[int, Opt(help="Seed of the reservoir.")] = 0,
    plot: Annotated[Path | None, Opt(help="PNG of the first 84-step free run against the truth.")] = None,
    out: Annotated[Path | None, Opt(help="Also save the trained ESN to this run directory.")] = None,
    device: Annotated[str, Opt(help="cpu | cuda")] = "cpu",
) -> None:
    """Mackey-Glass (tau 17): one-step and 84-step prediction; reports the 84-step free-running NRMSE."""
    from rnnlab.esn import mackey_glass as task

    result = task.run(
        task.default_config(hidden, seed),
        train_steps=train_steps,
        test_steps=trials * 100,
        trials=trials,
        device=device,
    )
    if plot is not None:
        task.plot(result, plot)
    if out is not None:
        result.esn.save(out, extra={"task": "mackey-glass"})
    print(f"fit {result.fit_seconds:.2f}s, ridge {result.ridge:g}, {hidden} units, {train_steps} training steps")
    print(f"one-step NRMSE: {result.one_step_nrmse:.3e}")
    print(f"84-step free-running NRMSE (at step 84, {trials} trials): {result.nrmse_84:.3e}")
    print(f"free-running NRMSE over steps 1-84: {result.free_run_nrmse:.3e}")
