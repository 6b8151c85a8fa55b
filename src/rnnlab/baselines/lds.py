"""Linear dynamical systems: the linear-Gaussian state-space model that the lectures set beside recurrent
networks ("beyond memoryless models"), with the Kalman filter, the Rauch-Tung-Striebel smoother and EM.

    x_1 ~ N(mu0, V0)        x_t = A x_{t-1} + w_t,   w_t ~ N(0, Q)      K hidden states
                            y_t = C x_t + v_t,       v_t ~ N(0, R)      D observed columns

The state is a Gaussian belief, so its memory of the past is what a K-dimensional mean and covariance can carry,
and every prediction is linear in the past. EM (Shumway & Stoffer 1982; Ghahramani & Hinton 1996) alternates the
smoother's expected sufficient statistics with their closed-form maximisers and never lowers the likelihood.

Everything is float64 NumPy. Covariances are symmetrised after every update, the filter uses Joseph's form, and
every inverse is a Cholesky solve. The covariance recursions do not depend on the data, so once they reach their
steady state (to 1e-11, relative) the remaining steps reuse it and only the means are stepped.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.linalg import solve_discrete_lyapunov

from rnnlab.baselines.series import check_columns, last_value_nrmse, nrmse, split, standardisation
from rnnlab.config import opt
from rnnlab.errors import RnnlabError
from rnnlab.rundir import WEIGHTS, atomic_save_tensors, load_tensors, read_run, write_run_config

KIND = "lds"
NAMES = ("A", "C", "Q", "R", "mu0", "V0")
STEADY = 1e-11  # relative change below which a covariance recursion counts as converged
FLOOR = 1e-9  # smallest eigenvalue EM leaves in Q and R (standardised units), so the noise stays invertible


@dataclass
class LDSConfig:
    """The model's size and EM's budget."""

    states: int = opt(4, "Hidden state dimension K.", "Model")
    max_iters: int = opt(200, "Most EM iterations.", "Budget")
    tol: float = opt(1e-6, "Stop when an EM iteration gains less log-likelihood per row (nats).", "Budget")

    def validate(self) -> None:
        """Raise RnnlabError for impossible values."""
        if self.states < 1:
            raise RnnlabError(f"--states must be >= 1, got {self.states}")
        if self.max_iters < 0:
            raise RnnlabError(f"--max-iters must be >= 0, got {self.max_iters}")
        if not (self.tol > 0 and math.isfinite(self.tol)):
            raise RnnlabError(f"--tol must be a number > 0, got {self.tol}")


@dataclass
class LDSParams:
    """The model's matrices: A (K, K), C (D, K), Q (K, K), R (D, D), mu0 (K,), V0 (K, K)."""

    A: np.ndarray
    C: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    mu0: np.ndarray
    V0: np.ndarray

    @property
    def states(self) -> int:
        return len(self.A)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: torch.as_tensor(getattr(self, name), dtype=torch.float64) for name in NAMES}

    def finite(self) -> bool:
        return all(np.isfinite(getattr(self, name)).all() for name in NAMES)


@dataclass
class Filtered:
    """The Kalman filter's output for T rows: predicted and filtered means (T, K) and covariances (T, K, K),
    the gains (T, K, D), the log-likelihood log p(y_1..y_T), and `steady`: the covariances and gains at every
    index >= steady - 1 are the same (T: they never settled)."""

    mean_pred: np.ndarray
    cov_pred: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    gain: np.ndarray
    log_likelihood: float
    steady: int


@dataclass
class Smoothed:
    """The RTS smoother's posterior given all T rows: means (T, K), covariances (T, K, K), and the lag-one
    cross-covariances Cov(x_{t+1}, x_t | y) (T - 1, K, K)."""

    mean: np.ndarray
    cov: np.ndarray
    cross: np.ndarray


def _sym(m: np.ndarray) -> np.ndarray:
    return 0.5 * (m + np.swapaxes(m, -1, -2))


def _cholesky(m: np.ndarray, what: str) -> np.ndarray:
    """The lower Cholesky factor of `m`; a matrix that is not positive definite (or not finite) is an error."""
    try:
        factor = np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        factor = np.full_like(m, np.nan)
    if not np.isfinite(factor).all():
        raise RnnlabError(f"{what} is not positive definite (the model has diverged)")
    return factor


def _solve(factor: np.ndarray, b: np.ndarray) -> np.ndarray:
    """m^-1 b for m = factor factor' (two triangular systems)."""
    return np.linalg.solve(factor.T, np.linalg.solve(factor, b))


def _steady(new: np.ndarray, old: np.ndarray) -> bool:
    return float(np.abs(new - old).max()) <= STEADY * max(1.0, float(np.abs(new).max()))


def kalman_filter(p: LDSParams, y: np.ndarray) -> Filtered:
    """Filter the rows `y` (T, D): p(x_t | y_1..y_t) for every t, from the prior N(mu0, V0) on x_1."""
    T, (D, K) = len(y), p.C.shape
    mu0, V0 = p.mu0, p.V0
    cov_pred, cov = np.empty((T, K, K)), np.empty((T, K, K))
    gain, logdet, white = np.empty((T, K, D)), np.empty(T), np.empty((T, D, D))
    eye = np.eye(K)
    P, steady_from = _sym(V0), T
    for t in range(T):
        if t:
            P = _sym(p.A @ cov[t - 1] @ p.A.T + p.Q)
            if t > 1 and _steady(P, cov_pred[t - 1]):
                steady_from = t
                break
        S = _sym(p.C @ P @ p.C.T + p.R)
        factor = _cholesky(S, "the innovation covariance C P C' + R")
        G = _solve(factor, p.C @ P).T  # P C' S^-1
        I_GC = eye - G @ p.C
        cov_pred[t], gain[t] = P, G
        cov[t] = _sym(I_GC @ P @ I_GC.T + G @ p.R @ G.T)  # Joseph's form: stays symmetric positive definite
        logdet[t] = 2 * np.log(np.diag(factor)).sum()
        white[t] = _solve(factor, np.eye(D))
    if steady_from < T:  # every later step repeats the last one
        for array in (cov_pred, cov, gain, logdet, white):
            array[steady_from:] = array[steady_from - 1]
    # means: x_{t|t} = (I - G_t C) A x_{t-1|t-1} + G_t y_t; once the gain is steady, a scan with one matrix
    step = np.einsum("tij,jk->tik", np.eye(K) - gain @ p.C, p.A)
    drive = np.einsum("tij,tj->ti", gain, y)
    mean = np.empty((T, K))
    mean[0] = mu0 + gain[0] @ (y[0] - p.C @ mu0)
    for t in range(1, min(steady_from, T)):
        mean[t] = step[t] @ mean[t - 1] + drive[t]
    if steady_from < T:
        mean[steady_from:] = _affine_scan(step[-1], drive[steady_from:], mean[steady_from - 1])
    mean_pred = np.concatenate([np.asarray(mu0, dtype=np.float64)[None], mean[:-1] @ p.A.T])
    innovation = y - mean_pred @ p.C.T
    quadratic = np.einsum("ti,tij,tj->", innovation, white, innovation)
    log_likelihood = -0.5 * (T * D * math.log(2 * math.pi) + logdet.sum() + quadratic)
    return Filtered(mean_pred, cov_pred, mean, cov, gain, float(log_likelihood), steady_from)


def rts_smoother(p: LDSParams, f: Filtered) -> Smoothed:
    """The Rauch-Tung-Striebel smoother: p(x_t | y_1..y_T) and the lag-one cross-covariances, from the filter."""
    T, K = f.mean.shape
    s = f.steady  # J_t, V_t and P_{t+1} are the same for every t >= s - 1
    J = np.empty((max(T - 1, 0), K, K))  # J_t = V_t A' P_{t+1}^-1
    for t in range(min(s, T - 1)):
        J[t] = _solve(_cholesky(f.cov_pred[t + 1], "the predicted state covariance"), p.A @ f.cov[t]).T
    if s < T - 1:
        J[s:] = J[s - 1]
    mean, cov = np.empty((T, K)), np.empty((T, K, K))
    mean[-1], cov[-1] = f.mean[-1], f.cov[-1]
    t = T - 2
    while t >= 0:
        cov[t] = _sym(f.cov[t] + J[t] @ (cov[t + 1] - f.cov_pred[t + 1]) @ J[t].T)
        if t > s - 1 and _steady(cov[t], cov[t + 1]):  # a fixed point of a recursion that no longer changes
            cov[s - 1 : t] = cov[t]
            t = s - 1
        t -= 1
    offset = f.mean[:-1] - np.einsum("tij,tj->ti", J, f.mean_pred[1:])  # x_{t|T} = J_t x_{t+1|T} + offset_t
    last = T - 2
    if s < T - 1:  # J is steady from s - 1 on: scan backwards with one matrix
        mean[s - 1 : T - 1] = _affine_scan(J[-1], offset[s - 1 :][::-1], mean[-1])[::-1]
        last = s - 2
    for t in range(last, -1, -1):
        mean[t] = J[t] @ mean[t + 1] + offset[t]
    cross = np.einsum("tij,tkj->tik", cov[1:], J)  # Cov(x_{t+1}, x_t | y) = Vs_{t+1} J_t'
    return Smoothed(mean, cov, cross)


def _affine_scan(F: np.ndarray, d: np.ndarray, start: np.ndarray, block: int = 64) -> np.ndarray:
    """m_k = F m_{k-1} + d_k for k = 0 .. n-1 from m_{-1} = `start`, (n, K): within blocks of `block` steps by
    one product with the powers of F, and from block to block by the carried last value."""
    n, K = d.shape
    powers = np.empty((block + 1, K, K))
    powers[0] = np.eye(K)
    for j in range(block):
        powers[j + 1] = F @ powers[j]
    lag = np.arange(block)[:, None] - np.arange(block)[None, :]  # j - i
    kernel = np.where((lag >= 0)[..., None, None], powers[np.clip(lag, 0, block)], 0.0)  # F^(j-i) for i <= j
    blocks = -(-n // block)
    padded = np.zeros((blocks * block, K))
    padded[:n] = d
    matrix = kernel.transpose(0, 2, 1, 3).reshape(block * K, block * K)
    local = (padded.reshape(blocks, block * K) @ matrix.T).reshape(blocks, block, K)  # each block from zero
    out = np.empty_like(local)
    carry = np.asarray(start, dtype=np.float64)
    for b in range(blocks):
        out[b] = local[b] + powers[1:] @ carry
        carry = out[b, -1]
    return out.reshape(-1, K)[:n]


def m_step(y: np.ndarray, s: Smoothed) -> LDSParams:
    """The parameters that maximise the expected complete-data log-likelihood under the smoothed posterior."""
    T = len(y)
    moments = s.cov + np.einsum("ti,tj->tij", s.mean, s.mean)  # E[x_t x_t']
    total = moments.sum(0)
    lagged = s.cross.sum(0) + s.mean[1:].T @ s.mean[:-1]  # sum over t of E[x_{t+1} x_t']
    yx = y.T @ s.mean
    C = _solve(_cholesky(total, "the state second moment"), yx.T).T
    R = _floor(_sym((y.T @ y - C @ yx.T) / T))
    head = total - moments[-1]  # sum over t < T of E[x_t x_t']
    A = _solve(_cholesky(head, "the state second moment"), lagged.T).T
    Q = _floor(_sym((total - moments[0] - A @ lagged.T) / (T - 1)))
    return LDSParams(A, C, Q, R, s.mean[0].copy(), _sym(s.cov[0]))


def _floor(m: np.ndarray) -> np.ndarray:
    """`m` with its eigenvalues raised to at least FLOOR (unchanged when they all are)."""
    values, vectors = np.linalg.eigh(m)
    if values.min() >= FLOOR:
        return m
    return _sym((vectors * np.maximum(values, FLOOR)) @ vectors.T)


def initial_params(z: np.ndarray, states: int) -> LDSParams:
    """A starting point for EM from the data (a simple subspace method): the top `states` principal components of
    delay windows of `z` (T, D) serve as states; A and C are their least-squares maps, Q and R the residuals'
    covariances (floored at 0.01), and A is shrunk to spectral radius 0.99 if it is unstable."""
    T, D = z.shape
    lags = -(-states // D) + 1
    windows = np.lib.stride_tricks.sliding_window_view(z, (lags, D))[:, 0].reshape(T - lags + 1, lags * D)
    _, singular, vt = np.linalg.svd(windows, full_matrices=False)
    x = windows @ vt[:states].T / np.maximum(singular[:states], 1e-12) * math.sqrt(len(windows))  # unit variance
    A = np.linalg.lstsq(x[:-1], x[1:], rcond=None)[0].T
    radius = max(abs(np.linalg.eigvals(A)))
    if radius > 0.99:
        A *= 0.99 / radius
    C = np.linalg.lstsq(x, z[: len(x)], rcond=None)[0].T
    Q = np.cov((x[1:] - x[:-1] @ A.T).T).reshape(states, states) + 0.01 * np.eye(states)
    R = np.cov((z[: len(x)] - x @ C.T).T).reshape(D, D) + 0.01 * np.eye(D)
    return LDSParams(A, C, Q, R, x[0].copy(), np.eye(states))


def least_rows(states: int, columns: int) -> int:
    """The training rows the initialisation needs: more than twice its delay-window width."""
    return max(10, 2 * (-(-states // columns) + 1) * columns + 2)


def em(z: np.ndarray, states: int, max_iters: int = 200, tol: float = 1e-6) -> tuple[LDSParams, list[float]]:
    """Fit by EM on `z` (T, D) until the log-likelihood per row gains less than `tol` or `max_iters` M-steps are
    done. Returns the parameters and the log-likelihood before each M-step and after the last one.

    A non-finite or non-positive-definite quantity is an RnnlabError naming the iteration. A likelihood that falls
    (rounding at convergence; EM itself never lowers it) ends the fit with the parameters before the fall.
    """
    LDSConfig(states, max_iters, tol).validate()
    if len(z) <= least_rows(states, z.shape[1]):
        raise RnnlabError(
            f"{len(z)} training rows are too few for {states} states (need more than {least_rows(states, z.shape[1])})"
        )
    params = previous = initial_params(z, states)
    history: list[float] = []
    for iteration in range(max_iters + 1):
        try:
            filtered = kalman_filter(params, z)
        except RnnlabError as exc:
            raise RnnlabError(f"EM diverged at iteration {iteration}: {exc}; try fewer --states") from None
        if not math.isfinite(filtered.log_likelihood):
            raise RnnlabError(f"EM diverged at iteration {iteration}: the log-likelihood is not finite")
        if history and filtered.log_likelihood < history[-1] - 1e-9 * abs(history[-1]):
            return previous, history
        history.append(filtered.log_likelihood)
        if iteration == max_iters or (len(history) > 1 and (history[-1] - history[-2]) / len(z) < tol):
            return params, history
        previous = params
        try:
            params = m_step(z, rts_smoother(params, filtered))
        except RnnlabError as exc:
            raise RnnlabError(f"EM diverged at iteration {iteration}: {exc}; try fewer --states") from None
        if not params.finite():
            raise RnnlabError(f"EM diverged at iteration {iteration}: non-finite parameters; try fewer --states")
    raise AssertionError("unreachable")


def one_step(p: LDSParams, z: np.ndarray) -> np.ndarray:
    """Each row's prediction from the rows before it, C x_{t|t-1}, for t = 0 .. T (row 0's is the prior's mean;
    row T is the one after the last): (T + 1, D)."""
    f = kalman_filter(p, z)
    return np.vstack([f.mean_pred, f.mean[-1:] @ p.A.T]) @ p.C.T


def forecast(p: LDSParams, z: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """Free-running forecasts (n, horizon, D): after filtering rows 0..o for each origin o, C A^h x_{o|o}."""
    m = kalman_filter(p, z[: int(origins.max()) + 1]).mean[origins]
    out = np.empty((len(origins), horizon, p.C.shape[0]))
    for h in range(horizon):
        m = m @ p.A.T
        out[:, h] = m @ p.C.T
    return out


@dataclass
class LDSModel:
    """A fitted LDS with the standardisation its columns were fitted in, and what training recorded."""

    params: LDSParams
    columns: list[str]
    mean: np.ndarray
    std: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def standardise(self, series: np.ndarray) -> np.ndarray:
        check_columns(series, self.columns)
        return (series - self.mean) / self.std

    def one_step(self, series: np.ndarray) -> np.ndarray:
        """Predictions of rows 0 .. T of `series` (T, D), each from the rows before it (the last is past its end),
        in the series' own units: (T + 1, D)."""
        return one_step(self.params, self.standardise(series)) * self.std + self.mean

    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """Free-running forecasts (n, horizon, D) after each origin row, in the series' own units."""
        return forecast(self.params, self.standardise(series), origins, horizon) * self.std + self.mean

    def from_stationary(self) -> LDSModel:
        """The same model with its first state drawn from the stationary distribution N(0, Σ), Σ = A Σ A' + Q, for a
        series that starts anywhere, rather than the start learned for the training series (kept when A is not
        stable: then there is no stationary distribution)."""
        p = self.params
        if max(abs(np.linalg.eigvals(p.A))) >= 1:
            return self
        start = {"mu0": np.zeros(p.states), "V0": _sym(solve_discrete_lyapunov(p.A, p.Q))}
        return dataclasses.replace(self, params=dataclasses.replace(p, **start))

    def save(self, run_dir: Path) -> Path:
        """config.json (kind "lds", the sizes, the columns and their standardisation, the fit) and model.safetensors."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(run_dir / WEIGHTS, self.params.tensors())
        model = {"states": self.params.states, "outputs": len(self.columns)}
        data = {"columns": self.columns, "mean": self.mean.tolist(), "std": self.std.tolist()}
        write_run_config(run_dir, KIND, model, {"data": data, "fit": self.info})
        return run_dir

    @classmethod
    def load(cls, run_dir: Path) -> LDSModel:
        """A model saved by `save`; a damaged or mismatched run is a one-line RnnlabError."""
        config = read_run(Path(run_dir), KIND)
        path = Path(run_dir) / WEIGHTS
        tensors = load_tensors(path)
        try:
            K, D = int(config["model"]["states"]), int(config["model"]["outputs"])
            data = config["data"]
            columns, mean, std = list(data["columns"]), np.array(data["mean"], float), np.array(data["std"], float)
            arrays = {name: tensors.pop(name).double().numpy() for name in NAMES}
        except (KeyError, TypeError, ValueError) as exc:
            raise RnnlabError(f"{run_dir} is not a complete lds run (missing {exc})") from None
        shapes = {"A": (K, K), "C": (D, K), "Q": (K, K), "R": (D, D), "mu0": (K,), "V0": (K, K)}
        wrong = [n for n in NAMES if arrays[n].shape != shapes[n]]
        if wrong or tensors or len(columns) != D or mean.shape != (D,) or std.shape != (D,) or not (std > 0).all():
            raise RnnlabError(f"{path} does not match config.json ({', '.join(wrong or sorted(tensors)) or 'data'})")
        return cls(LDSParams(**arrays), columns, mean, std, config.get("fit") or {})


def fit_series(series: np.ndarray, columns: list[str], config: LDSConfig, test_fraction: float = 0.2) -> LDSModel:
    """Fit an LDS by EM to the training rows of `series` (T, D); score one-step predictions of the held-out tail
    (the filter runs through the whole series, so each is made from every row before it) beside the last value."""
    config.validate()
    T, D = series.shape
    train = split(T, test_fraction, least_rows(config.states, D), f"--states {config.states}")
    mean, std = standardisation(series[:train], columns)
    z = (series - mean) / std
    params, history = em(z[:train], config.states, config.max_iters, config.tol)
    model = LDSModel(params, list(columns), mean, std)
    model.info = {
        "train_rows": train,
        "test_rows": T - train,
        "iterations": len(history) - 1,
        "log_likelihood_per_row": history[-1] / train,
        "max_iters": config.max_iters,
        "tol": config.tol,
    }
    if T - train:
        model.info["test_nrmse"] = nrmse(model.one_step(series)[train:-1], series[train:])
        model.info["last_value_nrmse"] = last_value_nrmse(series, train)
    return model


def describe(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """`rnnlab info` lines for an lds run."""
    m, data, fit = config.get("model", {}), config.get("data") or {}, config.get("fit") or {}
    K, D = m.get("states", "?"), m.get("outputs", "?")
    columns = data.get("columns") if isinstance(data.get("columns"), list) else []
    lines = [
        f"model        linear dynamical system, {K} hidden states -> {D} observed columns (Kalman filter)",
        f"parameters   {_parameters(K, D)}",
        f"data         columns {', '.join(map(str, columns)) or '?'}; {fit.get('train_rows', '?')} training rows, "
        f"{fit.get('test_rows', '?')} held out",
    ]
    if isinstance(fit.get("test_nrmse"), (int, float)):
        lines.append(
            f"held out     one-step NRMSE {fit['test_nrmse']:.5g} (last value {fit.get('last_value_nrmse', 0):.5g})"
        )
    ll = fit.get("log_likelihood_per_row")
    lines.append(
        f"training     EM, {fit.get('iterations', '?')} iterations (at most {fit.get('max_iters', '?')}), "
        + (f"log-likelihood {ll:.5g} nats per row (standardised)" if isinstance(ll, (int, float)) else "")
    )
    return lines


def _parameters(K: Any, D: Any) -> str:
    if not (isinstance(K, int) and isinstance(D, int)):
        return "?"
    total = K * K + D * K + K * (K + 1) // 2 + D * (D + 1) // 2 + K + K * (K + 1) // 2
    return f"{total:,} (A, C, the noise covariances Q and R, the initial state's mean and covariance)"
