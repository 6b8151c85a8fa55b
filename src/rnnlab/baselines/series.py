"""What the real-valued series baselines (`lds`, `ar`) share with `rnnlab esn` and `rnnlab timeseries`, so that
their scores compare: the CSV reader, the held-out tail, the standardisation and the NRMSE.

    rows 0 .. train-1: training part (mean and deviation taken here)   rows train .. T-1: held-out tail

`train = T - int(T * test_fraction)`, as `esn train --test-fraction` splits; every held-out row is predicted from
all the rows before it. NRMSE is the root mean square error over the target's standard deviation, pooled over
the columns (`rnnlab esn`'s definition); the last-value forecast's NRMSE is the baseline every model must beat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnlab.data.series import read_series_csv
from rnnlab.errors import RnnlabError


def read_columns(path: Path, columns: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Numeric columns of a CSV with a header row as a (T, D) float64 array and their names, read by the reader
    `rnnlab esn` uses (empty files, unknown columns, text, NaN and infinities are one-line errors)."""
    series, names = read_series_csv(path, columns)
    return series.numpy(), names


def parse_columns(text: str | None) -> list[str] | None:
    """`--columns a,b` -> ["a", "b"]; None or an empty text: every column."""
    names = [c.strip() for c in (text or "").split(",") if c.strip()]
    return names or None


def split(rows: int, test_fraction: float, least_train: int, who: str = "this model") -> int:
    """The number of training rows; the rest, `int(rows * test_fraction)`, is the held-out tail. The training part
    must hold more than `least_train` rows (what `who` needs to fit at all)."""
    if not 0 <= test_fraction < 1:
        raise RnnlabError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    train = rows - int(rows * test_fraction)
    if train <= least_train:
        raise RnnlabError(f"the training part has {train} rows; {who} needs more than {least_train}")
    return train


def standardisation(series: np.ndarray, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and deviation of `series` (the training rows); a constant column is an error."""
    mean, std = series.mean(0), series.std(0)
    if (std == 0).any():
        raise RnnlabError(f"column {columns[int(np.flatnonzero(std == 0)[0])]!r} is constant over the training rows")
    return mean, std


def nrmse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Root mean square error over the target's standard deviation, pooled over all outputs (and horizons)."""
    p, t = np.asarray(prediction, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise RnnlabError(f"prediction shape {p.shape} does not match target shape {t.shape}")
    return math.sqrt(float(np.mean((p - t) ** 2))) / max(float(t.std()), 1e-300)


def last_value_nrmse(series: np.ndarray, start: int) -> float:
    """NRMSE of predicting each row from `start` on by the row before it."""
    return nrmse(series[start - 1 : -1], series[start:])


def horizon_targets(series: np.ndarray, start: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Forecast origins and their targets for a free-running score: each origin o (the last row seen, o + 1 >=
    `start`) is followed by `horizon` rows inside the series; returns origins (n,) and targets (n, horizon, D)."""
    if horizon < 1:
        raise RnnlabError(f"--horizon must be >= 1, got {horizon}")
    origins = np.arange(max(start - 1, 0), len(series) - horizon)
    if len(origins) == 0:
        raise RnnlabError(f"no room for a {horizon}-step forecast in the {len(series) - start} held-out rows")
    return origins, series[origins[:, None] + np.arange(1, horizon + 1)]


def check_columns(series: np.ndarray, columns: list[str]) -> None:
    """A (T, D) series with the D columns a model was fitted on, or a one-line error naming them."""
    if series.ndim != 2 or series.shape[1] != len(columns):
        raise RnnlabError(f"expected {len(columns)} columns ({', '.join(columns)}), got {series.shape}")
