"""The training loop itself, with a toy app (a one-weight linear regression): schedule, evaluation cadence,
the divergence policy (rollback, halved learning rate, total limit, time not rewound) and Ctrl-C."""

from __future__ import annotations

import itertools
import math
import signal
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.config import TrainConfig
from rnnlab.errors import RnnlabError
from rnnlab.train.loop import Loop
from rnnlab.train.optim import build_optimizer, lr_factor


class Regression(Loop):
    """Fit y = 2x + 1 with plain SGD; the loss is NaN at the steps in `poison` (once each unless `always`)."""

    def __init__(
        self, poison: tuple[int, ...] = (), always: bool = False, max_rollbacks: int = 8, **settings: object
    ) -> None:
        torch.manual_seed(0)
        model = nn.Linear(1, 1)
        options = {"optimizer": "sgd", "momentum": 0.0, "lr": 0.1, "warmup": 0, "decay": "none", "clip_norm": 0.0,
                   "checkpoint_every": 5, "max_steps": 12, **settings}  # fmt: skip
        config = TrainConfig(**options)  # type: ignore[arg-type]
        super().__init__(model, build_optimizer(model, config), config, max_rollbacks=max_rollbacks, clock=_ticks())
        self.poison, self.always = set(poison), always
        self.x = torch.linspace(-1, 1, 16).unsqueeze(1)
        self.steps: list[int] = []  # progress.step after each successful update
        self.lrs: list[float] = []  # the learning rate of each successful update
        self.weights: dict[int, list[float]] = {}  # the weight each time a step's batch is drawn
        self.evaluations: list[int] = []
        self.checkpoints: list[int] = []

    def batch(self, step: int) -> int:
        self.weights.setdefault(step, []).append(self.model.weight.item())
        return step

    def loss(self, batch: int) -> torch.Tensor:
        loss = F.mse_loss(self.model(self.x), 2 * self.x + 1)
        if batch in self.poison:
            if not self.always:
                self.poison.discard(batch)
            return loss * math.nan
        return loss

    def after_step(self, batch: int, loss: float) -> None:
        self.steps.append(self.progress.step)
        self.lrs.append(self.optimizer.param_groups[0]["lr"])

    def evaluate(self) -> None:
        self.evaluations.append(self.progress.step)
        self.goal_reached = self.last_loss < 1e-3

    def save_checkpoint(self) -> None:
        self.checkpoints.append(self.progress.step)
        super().save_checkpoint()


def _ticks() -> Callable[[], float]:
    """A clock on which every training step takes exactly one second."""
    counter = itertools.count()
    return lambda: float(next(counter))


def test_it_trains_on_the_schedule_and_checkpoints_on_the_cadence():
    app = Regression(warmup=3, decay="cosine", max_steps=10, checkpoint_every=4)
    app.run()
    cfg = app.config
    assert app.steps == list(range(1, 11))
    assert app.lrs == [cfg.lr * lr_factor(step, step / 10, cfg) for step in range(10)]
    assert app.checkpoints == [0, 4, 8, 10]  # the start, every 4 steps, the end
    assert app.progress.elapsed == 10.0


def test_evaluation_runs_every_eval_every_steps_and_a_reached_goal_stops_training():
    app = Regression(eval_every=3, max_steps=200, lr=0.3)
    app.evaluates = True
    app.run()
    assert app.evaluations == list(range(3, app.progress.step + 1, 3))  # no second evaluation at the end
    assert app.goal_reached and app.progress.step < 200


def test_a_nan_rolls_back_to_the_last_checkpoint_and_halves_the_learning_rate(capsys):
    app = Regression(poison=(7,))
    app.run()
    assert app.steps == [1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 10, 11, 12]  # steps 6 and 7 again after the rollback
    assert app.lrs == [0.1] * 7 + [0.05] * 7
    assert app.weights[5][1] == app.weights[5][0]  # the step-5 weights came back
    assert app.progress.lr_scale == 0.5 and app.rollbacks == 1
    assert "loss became nan; rolled back to step 5 and lowered the learning rate to 0.05" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("poison", "message"),
    [
        ("loss", "(nan)"),
        ("gradient", "(0.0)"),  # a finite loss with an infinite gradient
        ("weights", "(non-finite weights)"),
    ],
)
def test_the_rollback_limit_ends_training_with_one_error(poison: str, message: str, monkeypatch):
    app = Regression(poison=(3,) if poison == "loss" else (), always=True, max_rollbacks=2)
    if poison == "gradient":
        weight = app.model.weight  # sqrt's slope at 0 is infinite
        monkeypatch.setattr(app, "loss", lambda batch: torch.sqrt(weight - weight.detach()).sum())
    if poison == "weights":
        real = app.optimizer.step
        monkeypatch.setattr(app.optimizer, "step", lambda: (real(), app.model.bias.data.fill_(math.inf)))
    with pytest.raises(RnnlabError, match=r"^training kept diverging \S") as error:
        app.run()
    assert str(error.value) == f"training kept diverging {message} after 2 rollbacks; lower --lr"
    assert app.rollbacks == 3


def test_a_rollback_does_not_rewind_the_time_budget():
    app = Regression(poison=(4,), max_time=10.0, max_steps=0, checkpoint_every=100)
    app.run()
    # 4 steps, 1 rolled back to step 0 (the first checkpoint), then 5 more: 10 seconds in all.
    assert app.progress.elapsed == 10.0 and app.progress.step == 5
    assert app.steps == [1, 2, 3, 4, 1, 2, 3, 4, 5]


def test_ctrl_c_finishes_the_step_checkpoints_and_stops_and_a_second_one_aborts():
    handler = signal.getsignal(signal.SIGINT)

    class Interrupted(Regression):
        def after_step(self, batch: int, loss: float) -> None:
            super().after_step(batch, loss)
            if self.progress.step == 3:
                signal.raise_signal(signal.SIGINT)

    app = Interrupted(eval_every=100)
    app.evaluates = True
    app.run()
    assert app.stop_requested and app.steps == [1, 2, 3]
    assert app.checkpoints == [0, 3] and app.evaluations == []  # saved at the stop; no evaluation after it
    assert signal.getsignal(signal.SIGINT) is handler  # the loop's handler is gone again

    class Impatient(Regression):
        def after_step(self, batch: int, loss: float) -> None:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        Impatient().run()


def test_the_time_budget_is_wall_time_with_validation_included():
    """--max-time 10 s with a validation that takes 4 s after each 1 s step: 2 steps, not 10."""
    app = Regression(max_time=10.0, max_steps=0, eval_every=1, checkpoint_every=100)
    app.evaluates = True
    app.evaluate = lambda: [app.clock() for _ in range(4)] and None  # four more ticks of the clock: 4 s
    app.run()
    assert app.progress.step == 2 and app.progress.elapsed == 10.0
