"""Next-value prediction for a numeric series (many-to-many regression), reported beside the naive
last-value forecast, the baseline any forecaster must beat.

    values (N, T, 1) -> Recurrent (N, T, H) -> linear -> next values (N, T, 1), mean squared error

Values are standardised with the training part's mean and deviation. Evaluation is one step ahead over
the held-out tail: the network reads the whole series once (state carried), so each held-out prediction
uses every value before it, exactly as the baseline does.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig, fit, load_weights, read_run, save_run
from rnnlab.tasks.series import make_series

KIND = "timeseries"


class NextValueNet(nn.Module):
    """(N, T, 1) values -> (N, T, 1) predictions of each next value."""

    def __init__(self, config: SeqConfig) -> None:
        super().__init__()
        self.rnn = config.recurrent(input_size=1)
        self.head = nn.Linear(config.hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[0])


@dataclass(frozen=True)
class Evaluation:
    """One-step-ahead errors on held-out values, for the model and the last-value baseline."""

    model_rmse: float
    naive_rmse: float
    model_mae: float
    naive_mae: float
    count: int


class Forecaster:
    """A trained next-value model with the standardisation it was trained with."""

    def __init__(self, module: NextValueNet, mean: float, std: float, config: SeqConfig, window: int) -> None:
        self.module, self.mean, self.std, self.config, self.window = module, mean, std, config, window

    @classmethod
    def train(
        cls,
        series: np.ndarray,
        config: SeqConfig,
        window: int = 50,
        log: Callable[[int, float], None] | None = None,
    ) -> Forecaster:
        """Fit on random windows of `window` + 1 consecutive values of `series` (the training
        part)."""
        config.validate()
        series = np.asarray(series, dtype=np.float64)
        if len(series) < window + 2:
            raise RnnlabError(
                f"the training series has {len(series)} values; need more than --window + 1 = {window + 1}"
            )
        mean, std = float(series.mean()), float(series.std()) or 1.0
        z = torch.as_tensor((series - mean) / std, dtype=torch.float32)
        torch.manual_seed(config.seed)
        module = NextValueNet(config)

        def batch_loss(generator: torch.Generator) -> Tensor:
            starts = torch.randint(len(z) - window, (config.batch_size,), generator=generator)
            chunk = torch.stack([z[s : s + window + 1] for s in starts.tolist()])[..., None]
            return F.mse_loss(module(chunk[:, :-1]), chunk[:, 1:])

        fit(module, batch_loss, config, log=log)
        return cls(module, mean, std, config, window)

    @torch.no_grad()
    def one_step(self, series: np.ndarray) -> np.ndarray:
        """Prediction of series[t + 1] from series[: t + 1], for every t, in the series' own units."""
        self.module.eval()
        z = torch.as_tensor((np.asarray(series, dtype=np.float64) - self.mean) / self.std, dtype=torch.float32)
        return self.module(z[None, :, None])[0, :, 0].double().numpy() * self.std + self.mean

    def evaluate(self, series: np.ndarray, start: int) -> Evaluation:
        """Errors on series[start:], each predicted from everything before it, beside the last-value forecast."""
        series = np.asarray(series, dtype=np.float64)
        if not 1 <= start < len(series):
            raise RnnlabError(f"nothing to evaluate: held-out start {start} of {len(series)} values")
        truth = series[start:]
        model = self.one_step(series[:-1])[start - 1 :]
        naive = series[start - 1 : -1]
        return Evaluation(
            model_rmse=math.sqrt(float(np.mean((model - truth) ** 2))),
            naive_rmse=math.sqrt(float(np.mean((naive - truth) ** 2))),
            model_mae=float(np.mean(np.abs(model - truth))),
            naive_mae=float(np.mean(np.abs(naive - truth))),
            count=len(truth),
        )

    @torch.no_grad()
    def forecast(self, series: np.ndarray, horizon: int) -> np.ndarray:
        """The next `horizon` values after `series`, each prediction fed back as the next input."""
        self.module.eval()
        z = torch.as_tensor((np.asarray(series, dtype=np.float64) - self.mean) / self.std, dtype=torch.float32)
        out, state = self.module.rnn(z[None, :, None])
        value = self.module.head(out[:, -1:])
        values = []
        for _ in range(horizon):
            values.append(float(value))
            out, state = self.module.rnn(value, state)
            value = self.module.head(out)
        return np.array(values) * self.std + self.mean

    def save(self, out: Path) -> Path:
        extra = {"mean": self.mean, "std": self.std, "window": self.window}
        return save_run(out, KIND, self.config, self.module, extra)

    @classmethod
    def load(cls, run_dir: Path) -> Forecaster:
        data, config = read_run(run_dir, KIND)
        module = load_weights(NextValueNet(config), run_dir)
        return cls(module, float(data["mean"]), float(data["std"]), config, int(data["window"]))  # type: ignore[arg-type]


def read_series(path: Path, column: str | None = None) -> np.ndarray:
    """One numeric column of a CSV (by header name or 0-based index; default: the last column).
    A first row that is not numeric is taken as the header."""
    try:
        rows = [row for row in csv.reader(Path(path).read_text(encoding="utf-8").splitlines()) if row]
    except (OSError, UnicodeDecodeError) as exc:
        raise RnnlabError(f"cannot read {path}: {exc}") from None
    if not rows:
        raise RnnlabError(f"{path} is empty")
    header = rows[0] if not _numeric(rows[0][-1]) else None
    body = rows[1:] if header else rows
    if column is None:
        index = len(rows[0]) - 1
    elif header and column in header:
        index = header.index(column)
    elif column.isdigit():
        index = int(column)
    else:
        raise RnnlabError(f"{path} has no column {column!r} (columns: {', '.join(header or [])})")
    try:
        return np.array([float(row[index]) for row in body])
    except (ValueError, IndexError):
        raise RnnlabError(f"{path}: column {column or index} is not numeric on every row") from None


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def demo(n: int = 2000, seed: int = 0) -> np.ndarray:
    """The built-in series (see rnnlab.tasks.series)."""
    return make_series(n, seed=seed)
