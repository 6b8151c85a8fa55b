"""THE training loop, shared by every app: budget, step, clipping, schedule, divergence policy, progress,
evaluation, checkpoints and Ctrl-C.

Read `Loop.run()` top to bottom:
    while the budget lasts (--max-steps / epochs, --max-time, --patience, a success test, Ctrl-C):
        batch -> forward and loss -> backward -> clip -> optimiser step -> finite checks -> log
        every --eval-every steps: evaluate;  every --checkpoint-every steps: checkpoint
    then a last evaluation and checkpoint.
A non-finite loss, gradient norm or weight rolls back to the last checkpoint and halves the learning
rate; the time already spent still counts, and after `max_rollbacks` rollbacks training stops with an
RnnlabError, so divergence handling always ends.

An app subclasses `Loop` and fills in its hooks: `batch` and `loss` (required), and where it needs them
`update` (an optimiser with its own step, e.g. Hessian-free), `after_step`, `evaluate`, `save_checkpoint`
and `load_checkpoint` (default: a copy in memory), `on_start`, `on_rollback`, `on_end`. The loop knows
nothing of cells, data or run directories.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnlab.config import TrainConfig
from rnnlab.errors import RnnlabError
from rnnlab.train.checkpoint import Progress
from rnnlab.train.distributed import Distributed, SilentReporter
from rnnlab.train.optim import lr_factor
from rnnlab.train.precision import Precision
from rnnlab.ui import notice

MAX_ROLLBACKS = 8


class Diverged(Exception):  # noqa: N818 - an event the loop handles, not an error that reaches users
    """Raised by `Loop.update` when a step went non-finite; `what` is the loss (a float) or a description."""

    def __init__(self, what: float | str) -> None:
        super().__init__(what)
        self.what = what


Callback = Callable[[dict[str, Any]], object]


@dataclass(frozen=True)
class Callbacks:
    """What a Python caller hears while training (`rnnlab.train(on_log=..., on_eval=..., on_checkpoint=...)`). Each
    gets a dict of figures; one that returns False stops training cleanly, as Ctrl-C does: after the current step,
    with a checkpoint (a resumed run continues from there). Called in the main process only."""

    on_log: Callback | None = None  # every `log_every` steps: step, loss, lr, elapsed (seconds, validation included)
    on_eval: Callback | None = None  # after each evaluation: step and the app's figures (the LM's val_bpc, ...)
    on_checkpoint: Callback | None = None  # after each checkpoint is written: step


class Loop:
    """One training session: `run()` trains `model` with `optimizer` under the budget in `config`.

    `config` supplies the learning rate and its schedule (lr, warmup, decay, min_lr_ratio), clipping
    (clip_norm, clip_value), the budget (max_time, patience) and the cadence (eval_every,
    checkpoint_every). `total_steps` is the step budget (default `config.max_steps`; 0: none), so that an
    app can add its own, such as epochs; `progress`, where training starts (a resumed run's); `device`,
    the model's by default; `clock` measures --max-time (wall time by default).
    """

    evaluates = False  # whether `evaluate` runs every `config.eval_every` steps and at the end

    def __init__(
        self,
        model: nn.Module,
        optimizer: Any,
        config: TrainConfig,
        *,
        progress: Progress | None = None,
        total_steps: int | None = None,
        reporter: Any = None,
        dist: Distributed | None = None,
        device: torch.device | None = None,
        precision: Precision | None = None,
        max_rollbacks: int = MAX_ROLLBACKS,
        clock: Callable[[], float] = time.perf_counter,
        callbacks: Callbacks | None = None,
    ) -> None:
        self.model, self.optimizer, self.config = model, optimizer, config
        self.progress = progress or Progress()
        self.total_steps = config.max_steps if total_steps is None else total_steps
        self.reporter = reporter or SilentReporter()
        self.dist = dist or Distributed()
        self.device = device or next(model.parameters()).device
        self.precision = precision or Precision("fp32", self.device)
        self.max_rollbacks, self.clock, self.callbacks = max_rollbacks, clock, callbacks or Callbacks()
        self.stop_requested = False  # Ctrl-C, or a stop request from a test or a callback
        self.stopped_by_callback = False
        self.goal_reached = False  # set by an app's `evaluate` when its success test passes
        self.rollbacks = 0  # in this session, in total: divergence handling always ends
        self.last_loss = math.nan
        self.evaluated_at = -1
        self._memory: tuple[dict[str, Any], dict[str, Any], Progress] | None = None

    # ---- hooks: what an app supplies ---------------------------------------------------------------

    def batch(self, step: int) -> Any:
        """The training batch for optimiser step `step` (the app owns its data cursor)."""
        raise NotImplementedError

    def loss(self, batch: Any) -> Tensor:
        """The forward pass on `batch` and its scalar loss (run under the precision's autocast)."""
        raise NotImplementedError

    def update(self, batch: Any) -> float:
        """One first-order update on `batch`: learning rate, forward, backward, clipping, optimiser step.

        Returns the loss; raises Diverged, before stepping, when the loss or the gradient norm is not finite.
        An optimiser with its own step (Hessian-free) overrides this.
        """
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        with self.precision.autocast():
            loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.precision.scaler
        scaler.scale(loss).backward()  # DDP averages the gradients over ranks here
        scaler.unscale_(self.optimizer)
        if cfg.clip_value:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), cfg.clip_value)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm or math.inf)
        loss_value = self.dist.mean(loss)
        # fp16: an overflowing gradient is the scaler's business (it skips the step and lowers its scale).
        if not (math.isfinite(loss_value) and (torch.isfinite(norm) or scaler.is_enabled())):
            raise Diverged(loss_value)
        scaler.step(self.optimizer)
        scaler.update()
        return loss_value

    def after_step(self, batch: Any, loss: float) -> None:
        """After a successful update (`progress.step` already counts it): carry state, advance cursors."""

    def evaluate(self) -> dict[str, Any] | None:
        """Periodic evaluation (when `evaluates`); may set `goal_reached` or `progress.bad_evals`. Returns the
        figures an `on_eval` callback hears, if any."""

    def save_checkpoint(self) -> None:
        """Keep what a rollback restores. Default: a copy of model, optimiser and progress in memory."""
        self._memory = (
            copy.deepcopy(self.model.state_dict()),
            copy.deepcopy(self.optimizer.state_dict()),
            dataclasses.replace(self.progress),
        )

    def load_checkpoint(self) -> Progress:
        """Restore the last checkpoint in place and return its progress."""
        assert self._memory is not None, "on_start saves the first checkpoint"
        model_state, optimizer_state, progress = self._memory
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(copy.deepcopy(optimizer_state))  # the copy kept stays untouched
        return dataclasses.replace(progress)

    def on_start(self) -> None:
        """Before the first step. Default: checkpoint, so that a divergence has a state to return to."""
        self.save_checkpoint()

    def on_rollback(self) -> None:
        """After a rollback to `progress.step` (e.g. drop the metrics logged since)."""

    def on_end(self) -> None:
        """After the last checkpoint (e.g. save the final weights)."""

    def divergence_hint(self) -> str:
        """What to do when training keeps diverging, for the error's message."""
        return "lower --lr"

    # ---- the loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        """Train until the budget is spent, the goal is reached or Ctrl-C; evaluate and checkpoint at the end."""
        p, cfg = self.progress, self.config
        self.on_start()
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._request_stop) if in_main_thread else None
        try:
            with self.reporter:
                self.reporter.start(p)
                while not self._done():
                    started = self.clock()  # --max-time is wall time: validation and checkpoints count too
                    loss = self._train_step()
                    if loss is not None:  # None: diverged, rolled back to the last checkpoint
                        self.last_loss = loss
                        self.reporter.step(p, loss, self._lr())
                        if p.step % cfg.log_every == 0:
                            self._tell("on_log", loss=loss, lr=self._lr(), elapsed=p.elapsed)
                        if self.evaluates and p.step % cfg.eval_every == 0:
                            self._evaluate()
                        if p.step % cfg.checkpoint_every == 0:
                            self._checkpoint()
                    p.elapsed += self.clock() - started
                if self.evaluates and self.evaluated_at != p.step and not self.stop_requested:
                    self._evaluate()
                self._checkpoint()
                self.on_end()
        finally:
            if in_main_thread:
                signal.signal(signal.SIGINT, previous)
            self.reporter.close()

    def _request_stop(self, signum: int, frame: object) -> None:
        """Ctrl-C: finish the current step, write a checkpoint, stop. A second Ctrl-C aborts at once."""
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True

    def _done(self) -> bool:
        p, cfg = self.progress, self.config
        self.stop_requested, p.elapsed = self.dist.agree(self.stop_requested, p.elapsed, self.device)
        return bool(
            self.stop_requested
            or self.goal_reached
            or (self.total_steps and p.step >= self.total_steps)
            or (cfg.max_time and p.elapsed >= cfg.max_time)
            or (cfg.patience and p.bad_evals >= cfg.patience)
        )

    def _lr(self) -> float:
        """The learning rate of the next step: the schedule over the step or time budget, times the rollbacks' scale."""
        p, cfg = self.progress, self.config
        fraction = max(
            p.step / self.total_steps if self.total_steps else 0.0,
            p.elapsed / cfg.max_time if cfg.max_time else 0.0,
        )
        return cfg.lr * p.lr_scale * lr_factor(p.step, fraction, cfg)

    def _train_step(self) -> float | None:
        """One optimiser step on the next batch. Returns the loss, or None after a divergence rollback."""
        p = self.progress
        batch = self.batch(p.step)
        try:
            loss = self.update(batch)
            if not self._weights_finite():
                raise Diverged("non-finite weights")
        except Diverged as exc:
            self._rollback(exc.what)
            return None
        p.step += 1
        self.after_step(batch, loss)
        return loss

    def _weights_finite(self) -> bool:
        """Whether every weight is finite after an update (a finite loss can still step into NaN)."""
        sums = torch.stack([p.detach().sum(dtype=torch.float64) for p in self.model.parameters()])
        return bool(torch.isfinite(sums).all())

    def _rollback(self, what: float | str) -> None:
        """Non-finite loss, gradient or weights: restore the last checkpoint and halve the learning rate.
        The time already spent still counts against --max-time, and after `max_rollbacks` rollbacks in
        one session training stops with an error (the last checkpoint stays as it was)."""
        self.rollbacks += 1
        if self.rollbacks > self.max_rollbacks:
            raise RnnlabError(
                f"training kept diverging ({what}) after {self.max_rollbacks} rollbacks; {self.divergence_hint()}"
            )
        scale, elapsed = self.progress.lr_scale / 2, self.progress.elapsed
        restored = self.load_checkpoint()
        vars(self.progress).update(vars(restored))  # in place: the loop holds a reference to it
        self.progress.lr_scale, self.progress.elapsed = scale, elapsed
        notice(
            f"{'loss became ' if isinstance(what, float) else ''}{what}; rolled back to step "
            f"{self.progress.step} and lowered the learning rate to {self._lr():.3g}"
        )
        self.on_rollback()

    def _evaluate(self) -> None:
        self.evaluated_at = self.progress.step
        self._tell("on_eval", **(self.evaluate() or {}))

    def _checkpoint(self) -> None:
        self.save_checkpoint()
        self._tell("on_checkpoint")

    def _tell(self, event: str, **figures: Any) -> None:
        """Call the `event` callback, if any, with the step and `figures`; False from it stops training."""
        callback = getattr(self.callbacks, event)
        if callback is not None and self.dist.is_main and callback({"step": self.progress.step, **figures}) is False:
            self.stop_requested = self.stopped_by_callback = True
