"""The linear dynamical system: the Kalman filter and RTS smoother against the closed-form Gaussian posterior
(the joint Gaussian of all states and observations, conditioned directly), EM's monotone likelihood and its
recovery of a known system, and `rnnlab lds train|predict` end to end with its one-line errors."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from rnnlab.baselines import lds
from rnnlab.baselines.series import nrmse
from rnnlab.errors import RnnlabError


def small_model() -> lds.LDSParams:
    """Two states, two observed columns, correlated noise and a non-trivial start."""
    return lds.LDSParams(
        A=np.array([[0.9, 0.25], [-0.2, 0.7]]),
        C=np.array([[1.0, 0.5], [-0.3, 0.8]]),
        Q=np.array([[0.5, 0.1], [0.1, 0.3]]),
        R=np.array([[0.4, 0.05], [0.05, 0.2]]),
        mu0=np.array([0.3, -0.2]),
        V0=np.array([[1.0, 0.2], [0.2, 0.5]]),
    )


def joint_gaussian(p: lds.LDSParams, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Means and covariances of the stacked states x (T*K) and observations y (T*D), built from the model's
    definition: Cov(x_t, x_s) = A^(t-s) Var(x_s) for t >= s, Var(x_t) = A Var(x_{t-1}) A' + Q, y = C x + v."""
    K = len(p.A)
    means, variances = [p.mu0], [p.V0]
    for _ in range(1, T):
        means.append(p.A @ means[-1])
        variances.append(p.A @ variances[-1] @ p.A.T + p.Q)
    xx = np.zeros((T * K, T * K))
    for t in range(T):
        for s in range(t + 1):
            block = np.linalg.matrix_power(p.A, t - s) @ variances[s]
            xx[t * K : (t + 1) * K, s * K : (s + 1) * K] = block
            xx[s * K : (s + 1) * K, t * K : (t + 1) * K] = block.T
    big_c = np.kron(np.eye(T), p.C)
    mx = np.concatenate(means)
    return mx, big_c @ mx, xx, xx @ big_c.T, big_c @ xx @ big_c.T + np.kron(np.eye(T), p.R)


def condition(mx, my, xx, xy, yy, y, rows):
    """Mean and covariance of x given the observations in `rows` (indices into the stacked y)."""
    gain = np.linalg.solve(yy[np.ix_(rows, rows)], xy[:, rows].T).T
    return mx + gain @ (y[rows] - my[rows]), xx - gain @ xy[:, rows].T


@pytest.fixture
def observed() -> tuple[lds.LDSParams, np.ndarray]:
    return small_model(), np.random.default_rng(3).normal(size=(5, 2)) * 1.5


def test_filter_equals_the_closed_form_posterior(observed) -> None:
    p, y = observed
    T, D = y.shape
    K = len(p.A)
    f = lds.kalman_filter(p, y)
    mx, my, xx, xy, yy = joint_gaussian(p, T)
    flat = y.reshape(-1)
    for t in range(T):
        mean, cov = condition(mx, my, xx, xy, yy, flat, list(range((t + 1) * D)))
        here = slice(t * K, (t + 1) * K)
        np.testing.assert_allclose(f.mean[t], mean[here], rtol=0, atol=1e-12)
        np.testing.assert_allclose(f.cov[t], cov[here, here], rtol=0, atol=1e-12)
        if t:  # the prediction before row t is the posterior given rows < t
            mean, cov = condition(mx, my, xx, xy, yy, flat, list(range(t * D)))
            np.testing.assert_allclose(f.mean_pred[t], mean[here], rtol=0, atol=1e-12)
            np.testing.assert_allclose(f.cov_pred[t], cov[here, here], rtol=0, atol=1e-12)
    exact = multivariate_normal(my, yy).logpdf(flat)
    assert f.log_likelihood == pytest.approx(exact, rel=1e-12)


def test_smoother_equals_the_closed_form_posterior(observed) -> None:
    p, y = observed
    T, K = len(y), len(p.A)
    s = lds.rts_smoother(p, lds.kalman_filter(p, y))
    mean, cov = condition(*joint_gaussian(p, T), y.reshape(-1), list(range(y.size)))
    np.testing.assert_allclose(s.mean, mean.reshape(T, K), rtol=0, atol=1e-12)
    for t in range(T):
        here = slice(t * K, (t + 1) * K)
        np.testing.assert_allclose(s.cov[t], cov[here, here], rtol=0, atol=1e-12)
        if t + 1 < T:
            after = slice((t + 1) * K, (t + 2) * K)
            np.testing.assert_allclose(s.cross[t], cov[after, here], rtol=0, atol=1e-12)


def test_long_series_shortcuts_match_the_textbook_recursions() -> None:
    """Once the covariances settle the filter and smoother reuse them and scan the means in blocks: the same
    numbers as the textbook recursions stepped one row at a time."""
    p = small_model()
    y = np.random.default_rng(4).normal(size=(400, 2))
    fast = lds.kalman_filter(p, y)
    assert fast.steady < 100  # the shortcut is taken
    means, covs, preds, pred_covs, ll = [], [], [], [], 0.0
    mean, cov = p.mu0, p.V0
    for t in range(len(y)):
        if t:
            mean, cov = p.A @ means[-1], p.A @ covs[-1] @ p.A.T + p.Q
        preds.append(mean)
        pred_covs.append(cov)
        S = p.C @ cov @ p.C.T + p.R
        ll += multivariate_normal(p.C @ mean, S).logpdf(y[t])
        gain = cov @ p.C.T @ np.linalg.inv(S)
        means.append(mean + gain @ (y[t] - p.C @ mean))
        covs.append(cov - gain @ p.C @ cov)
    np.testing.assert_allclose(fast.mean, means, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.cov, covs, rtol=0, atol=1e-9)
    assert fast.log_likelihood == pytest.approx(ll, rel=1e-10)
    smooth = lds.rts_smoother(p, fast)
    mean, cov = means[-1], covs[-1]
    for t in range(len(y) - 2, -1, -1):
        J = covs[t] @ p.A.T @ np.linalg.inv(pred_covs[t + 1])
        mean, cov = means[t] + J @ (mean - preds[t + 1]), covs[t] + J @ (cov - pred_covs[t + 1]) @ J.T
        np.testing.assert_allclose(smooth.mean[t], mean, rtol=0, atol=1e-9)
        np.testing.assert_allclose(smooth.cov[t], cov, rtol=0, atol=1e-9)


def test_log_likelihood_matches_statsmodels(observed) -> None:
    """An independent implementation: statsmodels' state-space Kalman filter on the same model."""
    kalman = pytest.importorskip("statsmodels.tsa.statespace.kalman_filter")
    p, _ = observed
    y = np.random.default_rng(5).normal(size=(60, 2))
    K, D = len(p.A), len(p.C)
    kf = kalman.KalmanFilter(
        k_endog=D, k_states=K, design=p.C, transition=p.A, selection=np.eye(K), state_cov=p.Q, obs_cov=p.R
    )
    kf.bind(y.copy())
    kf.initialize_known(p.mu0, p.V0)
    result = kf.filter()
    ours = lds.kalman_filter(p, y)
    assert ours.log_likelihood == pytest.approx(result.llf, rel=1e-9)
    np.testing.assert_allclose(ours.mean, result.filtered_state.T, atol=1e-8)


def simulate(p: lds.LDSParams, T: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    K, D = len(p.A), len(p.C)
    x = rng.multivariate_normal(p.mu0, p.V0)
    rows = []
    for _ in range(T):
        rows.append(p.C @ x + rng.multivariate_normal(np.zeros(D), p.R))
        x = p.A @ x + rng.multivariate_normal(np.zeros(K), p.Q)
    return np.array(rows)


def test_em_never_lowers_the_log_likelihood() -> None:
    y = simulate(small_model(), 300, seed=6)
    z = (y - y.mean(0)) / y.std(0)
    params = lds.initial_params(z, 3)  # more states than the truth: EM has slack to use
    history = []
    for _ in range(25):
        f = lds.kalman_filter(params, z)
        history.append(f.log_likelihood)
        params = lds.m_step(z, lds.rts_smoother(params, f))
    steps = np.diff(history)
    assert (steps >= -1e-9 * abs(history[-1])).all(), steps.min()
    assert history[-1] > history[0] + 1.0  # and it does climb


def test_em_recovers_a_known_one_dimensional_system() -> None:
    """x_t = 0.9 x_{t-1} + N(0, 0.25), y_t = 2 x_t + N(0, 0.5). The state's scale is not identifiable (C and Q
    trade off), so compare A, R and the signal's innovation variance C^2 Q (all in the data's units)."""
    truth = lds.LDSParams(
        A=np.array([[0.9]]),
        C=np.array([[2.0]]),
        Q=np.array([[0.25]]),
        R=np.array([[0.5]]),
        mu0=np.zeros(1),
        V0=np.array([[0.25 / (1 - 0.81)]]),
    )
    y = simulate(truth, 4000, seed=7)
    std = y.std()
    params, history = lds.em((y - y.mean()) / std, 1, max_iters=300, tol=1e-7)
    assert params.A[0, 0] == pytest.approx(0.9, abs=0.03)
    assert params.R[0, 0] * std**2 == pytest.approx(0.5, rel=0.2)
    assert params.C[0, 0] ** 2 * params.Q[0, 0] * std**2 == pytest.approx(4 * 0.25, rel=0.2)
    assert len(history) < 301  # converged before the budget


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: dataclasses.replace(p, A=p.A * np.nan), "EM diverged at iteration 0: non-finite parameters"),
        (lambda p: dataclasses.replace(p, R=-p.R, Q=-p.Q), "EM diverged at iteration 1: the innovation covariance"),
    ],
)
def test_em_divergence_is_a_one_line_error(monkeypatch, damage, message) -> None:
    m_step = lds.m_step
    monkeypatch.setattr(lds, "m_step", lambda y, s: damage(m_step(y, s)))
    with pytest.raises(RnnlabError, match=message):
        lds.em(simulate(small_model(), 100, seed=10), 2, max_iters=5)


def test_em_keeps_the_parameters_from_before_a_fall(monkeypatch) -> None:
    """A likelihood that falls (which EM's own steps never do) ends the fit with the better parameters."""
    m_step, steps = lds.m_step, []

    def second_step_worse(y, s):
        steps.append(m_step(y, s))
        return steps[-1] if len(steps) == 1 else dataclasses.replace(steps[-1], R=steps[-1].R * 30)

    monkeypatch.setattr(lds, "m_step", second_step_worse)
    params, history = lds.em(simulate(small_model(), 100, seed=11), 2, max_iters=10, tol=1e-12)
    assert len(steps) == 2 and len(history) == 2
    assert params is steps[0]


def test_fit_series_scores_beat_the_last_value_on_a_noisy_oscillation() -> None:
    t = np.arange(600)
    rng = np.random.default_rng(8)
    series = np.stack([np.sin(0.3 * t), np.cos(0.3 * t)], axis=1) + 0.05 * rng.normal(size=(600, 2))
    model = lds.fit_series(series, ["a", "b"], lds.LDSConfig(states=2, max_iters=50))
    assert model.info["test_rows"] == 120
    assert model.info["test_nrmse"] < 0.5 * model.info["last_value_nrmse"]
    predictions = model.one_step(series)  # the held-out score is these predictions' NRMSE
    assert nrmse(predictions[480:600], series[480:]) == pytest.approx(model.info["test_nrmse"])


# ---- the command line ---------------------------------------------------------------------------------------


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(9)
    rows = [f"{math.sin(0.25 * t) + 0.05 * rng.normal():.6f},{t}" for t in range(300)]
    path = tmp_path / "series.csv"
    path.write_text("wave,step\n" + "\n".join(rows) + "\n")
    return path


def test_cli_train_predict_info_round_trip(cli, series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "lds"
    code, text, err = cli(
        "lds",
        "train",
        series_csv,
        "--columns",
        "wave",
        "--states",
        "2",
        "--max-iters",
        "30",
        "--out",
        out,
        "--horizon",
        "5",
    )
    assert code == 0, err
    score = float(text.split("NRMSE (60 rows): ")[1].split()[0])
    naive = float(text.split("(last value ")[1].split(")")[0])
    assert score < naive
    assert "free-running NRMSE, 1-5 rows ahead" in text
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "lds" and config["model"]["states"] == 2
    assert config["data"]["columns"] == ["wave"]

    code, text, err = cli("lds", "predict", out, series_csv)
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0] == "row,wave" and len(lines) == 301  # rows 1..300, the last past the end
    assert lines[1].startswith("1,") and lines[-1].startswith("300,")
    assert float(err.split("one-step NRMSE (299 rows): ")[1]) < 0.5

    forecast = tmp_path / "forecast.csv"
    code, _, err = cli("lds", "predict", out, series_csv, "--horizon", "4", "--output", forecast)
    assert code == 0, err
    rows = forecast.read_text().splitlines()
    assert rows[0] == "row,wave" and [r.split(",")[0] for r in rows[1:]] == ["300", "301", "302", "303"]
    assert "free-running NRMSE, 1-4 rows ahead" in err

    code, text, _ = cli("info", out)
    assert code == 0
    lines = lds.describe(out, config)
    assert lines[0].startswith("model        linear dynamical system, 2 hidden states -> 1 observed")
    assert all(len(line) > 13 and line[12] == " " and line[13] != " " for line in lines)
    assert "parameters   15 " in lines[1]  # A 4, C 2, Q 3, R 1, mu0 2, V0 3


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("a\n1\nnan\n" + "2\n" * 100, [], "line 3: NaN or infinite value"),
        ("a,b\n" + "1,x\n" * 100, [], "line 2: expected numbers"),
        ("a\n" + "1.5\n" * 100, [], "column 'a' is constant"),
        ("a\n" + "".join(f"{i % 7}\n" for i in range(12)), [], "training part has 10 rows; --states 4 needs more"),
        ("a\n" + "".join(f"{i % 7}\n" for i in range(100)), ["--states", "0"], "--states must be >= 1"),
        ("a\n" + "".join(f"{i % 7}\n" for i in range(100)), ["--test-fraction", "1"], "--test-fraction must be"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(cli, tmp_path: Path, content, extra, message) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = tmp_path / "never"
    code, _, err = cli("lds", "train", path, "--out", out, *extra)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_predict_refuses_another_kind_of_run(cli, series_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "ar"
    assert cli("ar", "train", series_csv, "--columns", "wave", "--out", out)[0] == 0
    code, _, err = cli("lds", "predict", out, series_csv)
    assert code == 2 and "ar run" in err and "rnnlab ar predict" in err
