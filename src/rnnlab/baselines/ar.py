"""Autoregressive models with delay taps: the memoryless series models the lectures start from. Each predicts the
next row of a series from the last p rows (the window) and nothing older:

    linear  y_t = b + W [y_{t-p} .. y_{t-1}]                                  AR(p), by (ridge) least squares
    mlp     y_t = b + W [y_{t-p} .. y_{t-1}] + U tanh(d + H [y_{t-p} .. y_{t-1}])   trained by Adam

The mlp is the feed-forward window network of Bengio et al. (2003) over real values: a hidden tanh layer beside
the direct linear connections. Both are one module (`WindowNet`; the linear model has no hidden path), fitted on
the standardised training rows; the mlp trains in rnnlab's training loop (rnnlab.train.loop), so it has its
progress bar, --max-time, Ctrl-C and divergence handling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.baselines.series import check_columns, last_value_nrmse, nrmse, split, standardisation
from rnnlab.config import TrainConfig, max_time_opt, opt
from rnnlab.errors import RnnlabError
from rnnlab.rundir import WEIGHTS, atomic_save_tensors, load_state_dict, load_tensors, read_run, write_run_config
from rnnlab.train.loop import Loop
from rnnlab.train.optim import build_optimizer
from rnnlab.train.progress import Reporter

KIND = "ar"
MODELS = ("linear", "mlp")


@dataclass
class ARConfig:
    """The window model's shape and, for the mlp, its training budget."""

    model: str = opt("linear", "linear: AR(p), least squares; mlp: plus a tanh layer.", "Model", choices=lambda: MODELS)
    order: int = opt(10, "Delay taps p: the model sees the last p rows.", "Model")
    hidden: int = opt(32, "mlp: hidden units H.", "Model")
    ridge: float = opt(0.0, "linear: ridge penalty per row on the lag weights (0: least squares).", "Optimisation")
    steps: int = opt(2000, "mlp: training steps.", "Budget", flag="--max-steps")
    max_time: float = max_time_opt()
    batch_size: int = opt(64, "mlp: windows per step N.", "Optimisation")
    lr: float = opt(3e-3, "mlp: Adam learning rate (cosine decay to a tenth).", "Optimisation")
    seed: int = opt(0, "mlp: seed of the weights and the batches.", "Optimisation")

    def validate(self) -> None:
        """Raise RnnlabError for impossible values."""
        if self.model not in MODELS:
            raise RnnlabError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        for name in ("order", "hidden", "steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise RnnlabError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if not (self.ridge >= 0 and math.isfinite(self.ridge)):
            raise RnnlabError(f"--ridge must be a finite number >= 0, got {self.ridge}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise RnnlabError(f"--lr must be > 0, got {self.lr}")
        if not 0.0 <= self.max_time < math.inf:
            raise RnnlabError(f"--max-time must be a finite duration >= 0, got {self.max_time}")

    @property
    def hidden_units(self) -> int:
        """Units of the hidden path: none in the linear model."""
        return self.hidden if self.model == "mlp" else 0


class WindowNet(nn.Module):
    """(N, p*D) windows, oldest row first -> (N, D) next rows: the direct linear path, plus a tanh hidden layer
    when `hidden` > 0. float64, like the series."""

    def __init__(self, inputs: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.direct = nn.Linear(inputs, outputs, dtype=torch.float64)
        self.hidden = nn.Linear(inputs, hidden, dtype=torch.float64) if hidden else None
        self.out = nn.Linear(hidden, outputs, bias=False, dtype=torch.float64) if hidden else None

    def forward(self, x: Tensor) -> Tensor:
        y = self.direct(x)
        if self.hidden is not None and self.out is not None:
            y = y + self.out(torch.tanh(self.hidden(x)))
        return y


def design(z: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of `order` consecutive rows of `z` (T, D), flattened oldest first, (T - order, order * D), and
    the row that follows each, (T - order, D)."""
    T, D = z.shape
    windows = np.lib.stride_tricks.sliding_window_view(z[:-1], (order, D))[:, 0].reshape(T - order, order * D)
    return windows, z[order:]


def least_squares(X: np.ndarray, Y: np.ndarray, ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Weight (D, p*D) and bias (D,) minimising mean |Y - X W' - b|^2 + ridge |W|^2 (the bias is not penalised),
    solved by `numpy.linalg.lstsq` on the design [X 1], with sqrt(n * ridge) I rows appended for the penalty."""
    n, m = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    B = Y
    if ridge > 0:
        A = np.vstack([A, np.hstack([math.sqrt(n * ridge) * np.eye(m), np.zeros((m, 1))])])
        B = np.vstack([Y, np.zeros((m, Y.shape[1]))])
    coef = np.linalg.lstsq(A, B, rcond=None)[0]
    return coef[:-1].T, coef[-1]


class _WindowFit(Loop):
    """The mlp's hooks over the training loop: a batch is a random draw of training windows; the loss is MSE."""

    def __init__(self, net: WindowNet, X: Tensor, Y: Tensor, config: TrainConfig, show: bool) -> None:
        reporter = Reporter(None, config, config.max_steps, show, unit="win")
        super().__init__(net, build_optimizer(net, config), config, reporter=reporter)
        self.X, self.Y = X, Y
        self.generator = torch.Generator().manual_seed(config.seed)

    def batch(self, step: int) -> Tensor:
        return torch.randint(len(self.X), (self.config.batch_size,), generator=self.generator)

    def loss(self, batch: Tensor) -> Tensor:
        return F.mse_loss(self.model(self.X[batch]), self.Y[batch])


def fit_window_net(z: np.ndarray, config: ARConfig, show: bool = False) -> WindowNet:
    """The model of `config` fitted to the standardised rows `z` (T, D)."""
    X, Y = design(z, config.order)
    torch.manual_seed(config.seed)
    net = WindowNet(X.shape[1], config.hidden_units, Y.shape[1])
    if config.model == "linear":
        weight, bias = least_squares(X, Y, config.ridge)
        with torch.no_grad():
            net.direct.weight.copy_(torch.from_numpy(weight))
            net.direct.bias.copy_(torch.from_numpy(bias))
        return net.eval()
    settings = TrainConfig(
        lr=config.lr,
        warmup=0,
        decay="cosine",
        min_lr_ratio=0.1,
        clip_norm=1.0,
        max_steps=config.steps,
        max_time=config.max_time,
        checkpoint_every=100,
        log_every=50,
        batch_size=config.batch_size,
        seq_len=1,
        seed=config.seed,
    )
    net.train()
    _WindowFit(net, torch.tensor(X), torch.tensor(Y), settings, show).run()
    return net.eval()


@dataclass
class ARModel:
    """A fitted window model with the standardisation of its columns and what training recorded."""

    net: WindowNet
    config: ARConfig
    columns: list[str]
    mean: np.ndarray
    std: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def standardise(self, series: np.ndarray) -> np.ndarray:
        check_columns(series, self.columns)
        if len(series) < self.config.order:
            raise RnnlabError(f"the model needs at least {self.config.order} rows (its --order), got {len(series)}")
        return (series - self.mean) / self.std

    @torch.no_grad()
    def _apply(self, windows: np.ndarray) -> np.ndarray:
        return self.net(torch.from_numpy(np.ascontiguousarray(windows))).numpy()

    def one_step(self, series: np.ndarray) -> np.ndarray:
        """Predictions of rows p .. T of `series` (T, D) (the last one past its end), each from the p rows before
        it, in the series' own units: (T - p + 1, D)."""
        z = self.standardise(series)
        p, D = self.config.order, z.shape[1]
        windows = np.lib.stride_tricks.sliding_window_view(z, (p, D))[:, 0].reshape(-1, p * D)
        return self._apply(windows) * self.std + self.mean

    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """Free-running forecasts (n, horizon, D) after each origin row (each needs p rows up to it): every
        prediction is fed back into the window as the next row."""
        z = self.standardise(series)
        p, D = self.config.order, z.shape[1]
        if origins.min() < p - 1:
            raise RnnlabError(f"a forecast needs the {p} rows before it; origin {int(origins.min())} has fewer")
        window = z[origins[:, None] + np.arange(1 - p, 1)]  # (n, p, D)
        out = np.empty((len(origins), horizon, D))
        for h in range(horizon):
            out[:, h] = self._apply(window.reshape(len(origins), p * D))
            window = np.concatenate([window[:, 1:], out[:, h, None]], axis=1)
        return out * self.std + self.mean

    def save(self, run_dir: Path) -> Path:
        """config.json (kind "ar", the settings, the columns and their standardisation, the fit) and the weights."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(run_dir / WEIGHTS, self.net.state_dict())
        model = asdict(self.config) | {"outputs": len(self.columns)}
        data = {"columns": self.columns, "mean": self.mean.tolist(), "std": self.std.tolist()}
        write_run_config(run_dir, KIND, model, {"data": data, "fit": self.info})
        return run_dir

    @classmethod
    def load(cls, run_dir: Path) -> ARModel:
        """A model saved by `save`; a damaged or mismatched run is a one-line RnnlabError."""
        saved = read_run(Path(run_dir), KIND)
        try:
            m, data = saved["model"], saved["data"]
            names = set(ARConfig.__dataclass_fields__)
            config = ARConfig(**{k: v for k, v in m.items() if k in names})
            D = int(m["outputs"])
            columns, mean, std = list(data["columns"]), np.array(data["mean"], float), np.array(data["std"], float)
        except (KeyError, TypeError, ValueError) as exc:
            raise RnnlabError(f"{run_dir} is not a complete ar run ({exc})") from None
        config.validate()
        if len(columns) != D or mean.shape != (D,) or std.shape != (D,) or not (std > 0).all():
            raise RnnlabError(f"{run_dir / 'config.json'}: the columns and their standardisation do not agree")
        net = WindowNet(config.order * D, config.hidden_units, D)
        path = Path(run_dir) / WEIGHTS
        load_state_dict(net, load_tensors(path), path)
        return cls(net.eval(), config, columns, mean, std, saved.get("fit") or {})


def least_rows(config: ARConfig, columns: int) -> int:
    """Training rows the model needs: more windows than the linear path has weights."""
    return config.order * (columns + 1) + 1


def fit_series(
    series: np.ndarray, columns: list[str], config: ARConfig, test_fraction: float = 0.2, show: bool = False
) -> ARModel:
    """Fit on the training rows of `series` (T, D); score one-step predictions of the held-out tail (each from the
    p rows before it) beside the last value."""
    config.validate()
    T, D = series.shape
    train = split(T, test_fraction, least_rows(config, D), f"--order {config.order}")
    mean, std = standardisation(series[:train], columns)
    net = fit_window_net((series[:train] - mean) / std, config, show)
    model = ARModel(net, config, list(columns), mean, std, {"train_rows": train, "test_rows": T - train})
    if T - train:
        p = config.order
        model.info["test_nrmse"] = nrmse(model.one_step(series[train - p : -1]), series[train:])
        model.info["last_value_nrmse"] = last_value_nrmse(series, train)
    return model


def describe(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """`rnnlab info` lines for an ar run."""
    m, data, fit = config.get("model", {}), config.get("data") or {}, config.get("fit") or {}
    p, D, H = m.get("order", "?"), m.get("outputs", "?"), m.get("hidden", "?")
    window = f"the last {p} rows of {D} columns"
    if m.get("model") == "mlp":
        model = f"feed-forward window network: {window} -> tanh {H} + direct connections -> the next row"
        training = (
            f"Adam lr {m.get('lr', '?')}, batch {m.get('batch_size', '?')}, {m.get('steps', '?')} steps at most, "
            f"seed {m.get('seed', '?')}"
        )
    else:
        model = f"linear autoregression AR({p}): {window} -> the next row"
        training = f"least squares, ridge {m.get('ridge', '?')}"
    columns = data.get("columns") if isinstance(data.get("columns"), list) else []
    lines = [
        f"model        {model}",
        f"parameters   {_parameters(m)}",
        f"data         columns {', '.join(map(str, columns)) or '?'}; {fit.get('train_rows', '?')} training rows, "
        f"{fit.get('test_rows', '?')} held out",
    ]
    if isinstance(fit.get("test_nrmse"), (int, float)):
        lines.append(
            f"held out     one-step NRMSE {fit['test_nrmse']:.5g} (last value {fit.get('last_value_nrmse', 0):.5g})"
        )
    return [*lines, f"training     {training}"]


def _parameters(m: dict[str, Any]) -> str:
    p, D, H = m.get("order"), m.get("outputs"), m.get("hidden")
    if not all(isinstance(v, int) for v in (p, D, H)):
        return "?"
    inputs, hidden = p * D, H if m.get("model") == "mlp" else 0
    return f"{inputs * D + D + hidden * (inputs + 1) + hidden * D:,}"
