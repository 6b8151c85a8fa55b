"""Autoregressive window models for series: the linear AR(p) is numpy's least squares on the design matrix of
delay taps and recovers a known AR(2); the feed-forward window network beats the last value on a nonlinear
series; `rnnlab ar train|predict` end to end, and its one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.baselines import ar
from rnnlab.baselines.series import last_value_nrmse, nrmse


def ar2(n: int, seed: int) -> np.ndarray:
    """y_t = 0.6 y_{t-1} - 0.3 y_{t-2} + 1.0 + N(0, 1)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n + 100)
    for t in range(2, len(y)):
        y[t] = 0.6 * y[t - 1] - 0.3 * y[t - 2] + 1.0 + rng.normal()
    return y[100:, None]


def test_design_matrix_holds_the_delay_taps_oldest_first() -> None:
    z = np.arange(14.0).reshape(7, 2)
    X, Y = ar.design(z, 3)
    for i in range(4):  # written out by hand: rows i .. i+2 flattened, then row i+3
        np.testing.assert_array_equal(X[i], np.concatenate([z[i], z[i + 1], z[i + 2]]))
        np.testing.assert_array_equal(Y[i], z[i + 3])
    assert X.shape == (4, 6)


def test_linear_coefficients_equal_numpy_lstsq_on_the_same_design() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 2)).cumsum(0) * 0.1
    net = ar.fit_window_net(z, ar.ARConfig(model="linear", order=4))
    X, Y = ar.design(z, 4)
    coef = np.linalg.lstsq(np.hstack([X, np.ones((len(X), 1))]), Y, rcond=None)[0]
    np.testing.assert_allclose(net.direct.weight.detach().numpy(), coef[:-1].T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(net.direct.bias.detach().numpy(), coef[-1], rtol=0, atol=1e-10)
    assert net.hidden is None


def test_ridge_solves_the_penalised_normal_equations() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(50, 3)), rng.normal(size=(50, 1))
    weight, bias = ar.least_squares(X, Y, ridge=0.2)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)  # the unpenalised bias absorbs the means
    expected = np.linalg.solve(Xc.T @ Xc + 50 * 0.2 * np.eye(3), Xc.T @ Yc)
    np.testing.assert_allclose(weight, expected.T, atol=1e-10)
    np.testing.assert_allclose(bias, Y.mean(0) - X.mean(0) @ expected, atol=1e-10)


def test_linear_recovers_a_known_ar2_process() -> None:
    series = ar2(4000, seed=2)
    model = ar.fit_series(series, ["y"], ar.ARConfig(model="linear", order=2), test_fraction=0.0)
    weight = model.net.direct.weight.detach().numpy()[0]  # standardised units: lag coefficients are unchanged
    np.testing.assert_allclose(weight, [-0.3, 0.6], atol=0.04)  # oldest tap first
    assert model.info["test_rows"] == 0


def logistic_map(n: int) -> np.ndarray:
    """x_{t+1} = 3.9 x_t (1 - x_t): deterministic, chaotic, and badly predicted by the last value or a line."""
    x = np.empty(n)
    x[0] = 0.3
    for t in range(1, n):
        x[t] = 3.9 * x[t - 1] * (1 - x[t - 1])
    return x[:, None]


def test_mlp_window_beats_the_last_value_and_the_line_on_a_nonlinear_series() -> None:
    torch.manual_seed(0)
    series = logistic_map(1000)
    config = ar.ARConfig(model="mlp", order=2, hidden=16, steps=300, lr=2e-2)
    mlp = ar.fit_series(series, ["x"], config)
    line = ar.fit_series(series, ["x"], ar.ARConfig(model="linear", order=2))
    naive = last_value_nrmse(series, 800)
    assert mlp.info["last_value_nrmse"] == pytest.approx(naive)
    assert mlp.info["test_nrmse"] < 0.1 * naive
    assert mlp.info["test_nrmse"] < 0.2 * line.info["test_nrmse"]


def test_one_step_and_forecast_agree_one_step_ahead() -> None:
    series = ar2(300, seed=3)
    model = ar.fit_series(series, ["y"], ar.ARConfig(model="mlp", order=3, hidden=4, steps=20))
    predictions = model.one_step(series)  # rows 3 .. 300
    assert predictions.shape == (298, 1)
    origins = np.array([2, 50, 299])
    first = model.forecast(series, origins, 3)[:, 0]
    np.testing.assert_allclose(first, predictions[origins - 2], rtol=1e-12)
    assert nrmse(predictions[237:-1], series[240:]) == pytest.approx(model.info["test_nrmse"])


# ---- the command line ---------------------------------------------------------------------------------------


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    rows = [f"{math.sin(0.2 * t):.6f},{math.cos(0.13 * t):.6f}" for t in range(300)]
    path = tmp_path / "series.csv"
    path.write_text("a,b\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_cli_train_predict_info_round_trip(cli, series_csv: Path, tmp_path: Path, model: str) -> None:
    out = tmp_path / model
    code, text, err = cli(
        "ar",
        "train",
        series_csv,
        "--model",
        model,
        "--order",
        "4",
        "--max-steps",
        "200",
        "--out",
        out,
        "--horizon",
        "3",
    )
    assert code == 0, err
    score = float(text.split("NRMSE (60 rows): ")[1].split()[0])
    assert score < float(text.split("(last value ")[1].split(")")[0])
    assert "free-running NRMSE, 1-3 rows ahead" in text
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "ar" and config["model"]["model"] == model and config["data"]["columns"] == ["a", "b"]

    code, text, err = cli("ar", "predict", out, series_csv)
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0] == "row,a,b" and lines[1].startswith("4,") and lines[-1].startswith("300,")
    loaded = ar.ARModel.load(out)
    series = np.loadtxt(series_csv, delimiter=",", skiprows=1)
    np.testing.assert_allclose(
        [float(v) for v in lines[1].split(",")[1:]], loaded.one_step(series)[0], rtol=1e-8
    )  # the CSV holds what the saved model computes
    assert "one-step NRMSE (296 rows)" in err

    output = tmp_path / "forecast.csv"
    code, _, err = cli("ar", "predict", out, series_csv, "--horizon", "2", "--output", output)
    assert code == 0, err
    assert [row.split(",")[0] for row in output.read_text().splitlines()] == ["row", "300", "301"]

    assert cli("info", out)[0] == 0
    lines = ar.describe(out, config)
    assert all(len(line) > 13 and line[12] == " " and line[13] != " " for line in lines)
    expected = 8 * 2 + 2 + (32 * 9 + 32 * 2 if model == "mlp" else 0)
    assert lines[1] == f"parameters   {expected:,}"
    assert sum(t.numel() for t in loaded.net.state_dict().values()) == expected


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("a\n1\nnan\n" + "2\n" * 100, [], "line 3: NaN or infinite value"),
        ("a,b\n" + "1,x\n" * 100, [], "line 2: expected numbers"),
        ("a\n1\n2\n3\n", [], "training part has 3 rows; --order 10 needs more than 21"),
        ("a\n" + "".join(f"{i % 7}\n" for i in range(60)), ["--order", "80"], "--order 80 needs more than 161"),
        ("a\n" + "".join(f"{i % 7}\n" for i in range(60)), ["--order", "0"], "--order must be > 0"),
        ("a\n" + "".join(f"{i % 7}\n" for i in range(60)), ["--columns", "b"], "no column 'b'"),
        ("a\n" + "".join(f"{i % 7}\n" for i in range(60)), ["--model", "rnn"], "'rnn' is not one of"),
        ("a\n" + "".join(f"{i % 7}\n" for i in range(60)), ["--horizon", "13"], "needs at least 13 held-out rows"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(cli, tmp_path: Path, content, extra, message) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = tmp_path / "never"
    code, _, err = cli("ar", "train", path, "--out", out, "--model", "mlp", *extra)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_cli_predict_needs_order_rows(cli, series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert cli("ar", "train", series_csv, "--order", "5", "--out", out)[0] == 0
    short = tmp_path / "short.csv"
    short.write_text("a,b\n0.1,0.2\n0.3,0.4\n")
    code, _, err = cli("ar", "predict", out, short)
    assert code == 2 and "at least 5 rows" in err
