"""Training a language model: truncated BPTT over N parallel streams with the hidden state carried across chunks.

Read `train()` top to bottom: set up (or resume) the run directory, then run `_Loop`, the language model's
hooks over the shared training loop (rnnlab.train.loop: step, clipping, schedule, divergence policy, progress,
evaluation, checkpoints): the chunks of the streams and their carried state, random stream resets, epochs,
validation, checkpoints on disk for exact resume, and DDP. The trainer does not know which cell it trains; it
only sees `RNNLM`.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnlab.config import (
    ModelConfig,
    TrainConfig,
    build_configs,
    model_config_from_dict,
    train_config_from_dict,
    with_options,
)
from rnnlab.data.prepare import TokenStore, build_token_store
from rnnlab.data.stream import BatchStream
from rnnlab.errors import RnnlabError
from rnnlab.lm import curves
from rnnlab.lm.card import write_card
from rnnlab.lm.model import RNNLM, LanguageModel, resolve_device, total_nats
from rnnlab.metrics import LN2
from rnnlab.nn.recurrent import State, detach_state, reset_rows
from rnnlab.rundir import (
    CONFIG,
    METRICS,
    WEIGHTS,
    RunLock,
    atomic_save_tensors,
    make_temp_dir,
    read_config,
    read_run,
    remove_temporaries,
    write_run_config,
)
from rnnlab.train.checkpoint import Progress, load_checkpoint, save_checkpoint
from rnnlab.train.distributed import Distributed, SilentReporter, session
from rnnlab.train.loop import MAX_ROLLBACKS, Callback, Callbacks, Diverged, Loop
from rnnlab.train.optim import build_optimizer, initialise
from rnnlab.train.precision import Precision, check_precision, compile_model
from rnnlab.train.progress import Reporter
from rnnlab.ui import console, notice


@dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    run_dir: Path
    steps: int
    best_val_bpc: float | None  # None without validation
    last_train_loss: float
    elapsed: float
    interrupted: bool


@with_options
def train(
    inputs: list[str] | None = None,
    *,
    out: str | Path,
    texts: Sequence[str] | None = None,
    config: str | Path | None = None,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_log: Callback | None = None,
    on_eval: Callback | None = None,
    on_checkpoint: Callback | None = None,
    **options: Any,
) -> TrainResult:
    """Train a language model from Python on `inputs` (files, directories, globs), on `texts` (strings, each
    read as a file would be), or on neither (the default corpus), into the run directory `out`.

    Options are the fields of ModelConfig and TrainConfig (`hidden=512, max_steps=1000, max_time="20m", ...`):
    the CLI's flags with underscores; durations may be strings. `config` (a run's config.json) supplies every
    setting not given here, to train that run again. `resume=True` continues the run in `out`
    exactly where its last checkpoint left off; `overwrite=True` replaces the run in `out` (only once the new
    one is ready: a failed call leaves it as it was). The callbacks hear a dict of figures (`on_log` every
    `log_every` steps: step, loss, lr, elapsed; `on_eval`: step, val_loss, val_bpc, best; `on_checkpoint`:
    step); one that returns False stops training cleanly, with a checkpoint. Errors name these arguments.
    """
    try:
        options = _python_values(options)
        callbacks = Callbacks(on_log, on_eval, on_checkpoint)
        if texts is None:
            return run_training(inputs, out=out, preset=preset, resume=resume, overwrite=overwrite,
                                progress=progress, callbacks=callbacks, config=config, **options)  # fmt: skip
        if inputs:
            raise RnnlabError("give inputs or texts, not both")
        with _text_files(texts) as files:
            label = [f"<{len(files)} text{'s' if len(files) > 1 else ''} given in Python>"]
            return run_training(files, out=out, preset=preset, resume=resume, overwrite=overwrite,
                                progress=progress, callbacks=callbacks, label=label, config=config,
                                **options)  # fmt: skip
    except RnnlabError as exc:
        raise RnnlabError(_python_names(str(exc))) from None


def run_training(
    inputs: list[str] | None = None,
    *,
    out: str | Path,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Callbacks | None = None,
    label: list[str] | None = None,
    config: str | Path | None = None,
    **options: Any,
) -> TrainResult:
    """`train` as the command line runs it (its errors name flags): `inputs` are paths; `label`, where given, is
    what config.json records as the inputs instead of their paths (texts given in Python).

    With `resume` the run's model options must match. Under `torchrun` every process calls this; rank 0
    prepares the run directory while the others wait (see rnnlab.train.distributed). Everything is checked
    before the first write: a failed call leaves `out` as it was. While training, `out` is locked
    (`out/.lock`), so a second trainer on the same run stops with an error.
    """
    out = Path(out)
    options = {k: v for k, v in options.items() if v is not None}
    if inputs:
        options["inputs"] = list(inputs)
    if config is not None:
        if resume:
            raise RnnlabError("--config starts a new run from a saved config.json; --resume continues its own")
        options = {**_saved_options(Path(config)), **options}  # what is given explicitly wins
    if resume and overwrite:
        raise RnnlabError("--resume continues the run in --out and --overwrite replaces it: choose one")
    lock: RunLock | None = None
    try:
        with session(options.get("device", "auto")) as dist:
            if dist.is_main:
                if "device" in options:
                    resolve_device(options["device"])  # e.g. --device cuda without a GPU, before any write
                if resume:
                    read_run(out, "lm")  # a clear error when `out` is not a language-model run
                    lock = RunLock(out).acquire()
                    remove_temporaries(out)
                    model_cfg, train_cfg = _resume_configs(out, preset, options)
                    _check_resumable(out, model_cfg, train_cfg)
                    _write_config(out, model_cfg, train_cfg)
                else:
                    model_cfg, train_cfg = build_configs(preset, **options)
                    dist.rows(train_cfg.batch_size)  # indivisible N fails before anything is written
                    _check_fits(model_cfg, vocab_size=1)
                    lock = _create_run(out, model_cfg, train_cfg, overwrite, label)
            dist.barrier()
            if not dist.is_main:
                saved = read_config(out)
                model_cfg, train_cfg = model_config_from_dict(saved["model"]), train_config_from_dict(saved["train"])
            try:
                loop = _Loop(out, model_cfg, train_cfg, progress and dist.is_main, dist, callbacks)
            except BaseException:
                if dist.is_main and not resume:  # the run made a moment ago has not trained: take it back
                    shutil.rmtree(out, ignore_errors=True)
                raise
            return loop.run()
    finally:
        if lock is not None:
            lock.release()


def _create_run(
    out: Path, model_cfg: ModelConfig, train_cfg: TrainConfig, overwrite: bool = False, label: list[str] | None = None
) -> RunLock:
    """Build the run directory in a temporary sibling folder, then rename it into place, so a failure
    (bad input, Ctrl-C during tokenisation) never leaves a half-made or damaged run directory. With
    `overwrite`, a run already in `out` (locked meanwhile, so that no trainer writes to it) is replaced only then.
    Returns the run's lock, taken on the temporary folder and carried along by the rename."""
    old: RunLock | None = None
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise RnnlabError(
                f"{out} already exists; use --resume to continue it, --overwrite to replace it, or another --out"
            )
        _check_replaceable(out)
        old = RunLock(out).acquire()
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out)
    tmp = make_temp_dir(out.parent, prefix=f".{out.name}.")
    lock = RunLock(tmp).acquire()
    try:
        store = build_token_store(train_cfg, tmp)
        if label is not None:
            train_cfg.inputs = label
        model_cfg.vocab_size = store.tokenizer.vocab_size
        _check_fits(model_cfg, model_cfg.vocab_size)
        _check_precision(model_cfg, train_cfg)
        torch.manual_seed(train_cfg.seed)
        model = RNNLM(model_cfg)
        _write_config(tmp, model_cfg, train_cfg)
        initialise(model, train_cfg)
        save_checkpoint(tmp, model, build_optimizer(model, train_cfg), Progress(), None)
        if old is not None:  # the old run goes into a temporary sibling, which a later start would clear too
            trash = make_temp_dir(out.parent, prefix=f".{out.name}.")
            os.rename(out, trash / "replaced")
            old.release()
            old = None
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, out)  # atomic; fails if another process has filled `out` meanwhile
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise RnnlabError(f"{out} was created by another process while this run was being prepared") from None
            raise
        lock.moved_to(out)
        return lock
    except BaseException:
        lock.release()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            old.release()


def _saved_options(path: Path) -> dict[str, Any]:
    """The settings of a run's config.json (or of the run directory holding it), as options: what `--config`
    starts a new run from. The vocabulary size is left out (the new run's tokenizer sets it)."""
    run_dir = path if path.is_dir() else path.parent
    if not path.is_dir() and path.name != CONFIG:
        raise RnnlabError(f"--config takes a run's {CONFIG} (or its run directory), got {path}")
    saved = read_run(run_dir, "lm")
    model = model_config_from_dict(saved.get("model"), str(run_dir / CONFIG))
    train = train_config_from_dict(saved.get("train"), str(run_dir / CONFIG))
    options = {**dataclasses.asdict(model), **dataclasses.asdict(train)}
    options.pop("vocab_size")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _check_replaceable(out: Path) -> None:
    """--overwrite deletes `out`: only an rnnlab run directory (a config.json with a run kind), never another
    folder or file that happens to be there."""
    try:
        if out.is_dir() and not out.is_symlink():
            read_run(out)
            return
    except RnnlabError:
        pass
    raise RnnlabError(f"--overwrite replaces a run directory; {out} is not one, so it is left alone")


@contextmanager
def _text_files(texts: Sequence[str]) -> Iterator[list[str]]:
    """`texts` as UTF-8 files in a temporary folder, for the token store (which reads files), removed after."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise RnnlabError("texts must be a list of strings")
    if not texts:
        raise RnnlabError("texts is empty")
    with tempfile.TemporaryDirectory(prefix="rnnlab-texts-") as folder:
        files = []
        for i, text in enumerate(texts):
            path = Path(folder) / f"text-{i:05d}.txt"
            path.write_text(text, encoding="utf-8")
            files.append(str(path))
        yield files


# Option values a Python caller may give in a friendlier form, read as the command line reads its text.
_PARSED = {f.name: f.metadata["parse"] for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)
           if "parse" in f.metadata}  # fmt: skip
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")


def _python_values(options: dict[str, Any]) -> dict[str, Any]:
    """Durations and the like given as strings ("20m"), parsed as their flags' text is."""
    return {k: _PARSED[k](v) if k in _PARSED and isinstance(v, str) else v for k, v in options.items()}


def _python_names(message: str) -> str:
    """An error's flags as the Python arguments they are: "--max-steps" -> "max_steps", "--resume" -> "resume=True"."""
    names = {f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)} | {"out", "preset"}

    def name(match: re.Match[str]) -> str:
        python = match.group(1).replace("-", "_")
        if python in ("resume", "overwrite"):
            return f"{python}=True"
        return python if python in names else match.group(0)

    return _FLAG.sub(name, message)


# Training options that may change on --resume; the others define the data, the batch layout, the
# optimiser's state or the random streams, and a changed value would not continue the same run.
RESUMABLE = {"max_steps", "max_time", "epochs", "eval_every", "eval_tokens", "checkpoint_every", "log_every",
             "sample_every", "patience", "device", "precision", "compile", "lr", "warmup", "decay", "min_lr_ratio",
             "clip_norm", "clip_value", "reset_prob"}  # fmt: skip


def _resume_configs(out: Path, preset: str | None, options: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """The run's saved configs with the allowed training options overridden; any other change is an error.
    Nothing is written here."""
    saved = read_run(out, "lm")
    model_cfg = model_config_from_dict(saved.get("model"), f"{out / CONFIG}")
    train_cfg = train_config_from_dict(saved.get("train"), f"{out / CONFIG}")
    requested_model, requested_train = build_configs(preset, **options)
    given = dict(_preset_values(preset), **options)
    for f in dataclasses.fields(ModelConfig):
        if f.name in given and getattr(requested_model, f.name) != getattr(model_cfg, f.name):
            raise RnnlabError(
                f"--{f.name.replace('_', '-')} {getattr(requested_model, f.name)} differs from the run's "
                f"{getattr(model_cfg, f.name)}; model arguments cannot change on --resume"
            )
    if "inputs" in options and options["inputs"] != train_cfg.inputs:
        raise RnnlabError("inputs differ from the run's; --resume continues on the run's own token store")
    changes = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in given or f.name == "inputs":
            continue
        new, old = getattr(requested_train, f.name), getattr(train_cfg, f.name)
        if new == old:
            continue
        if f.name not in RESUMABLE:
            raise RnnlabError(
                f"--{f.name.replace('_', '-')} {new} differs from the run's {old}; it cannot change on --resume "
                f"(it can: {', '.join('--' + n.replace('_', '-') for n in sorted(RESUMABLE))})"
            )
        changes[f.name] = new
    train_cfg = dataclasses.replace(train_cfg, **changes)
    train_cfg.validate()
    return model_cfg, train_cfg


def _check_resumable(out: Path, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """Load the run's token store and checkpoint into a throwaway model and optimiser, so that a run
    that cannot continue fails before config.json is rewritten."""
    store = TokenStore.open(out)
    if store.tokenizer.vocab_size != model_cfg.vocab_size:
        raise RnnlabError(
            f"{out}/tokenizer.json has {store.tokenizer.vocab_size} tokens but the model was built for "
            f"{model_cfg.vocab_size}"
        )
    BatchStream(store.train.tokens, train_cfg.batch_size, train_cfg.seq_len)
    _check_fits(model_cfg, model_cfg.vocab_size)
    model = RNNLM(model_cfg)
    rng = torch.get_rng_state()
    load_checkpoint(out, model, build_optimizer(model, train_cfg), torch.device("cpu"), train_cfg.batch_size)
    torch.set_rng_state(rng)
    _check_precision(model_cfg, train_cfg)


def _check_fits(model_cfg: ModelConfig, vocab_size: int) -> None:
    """Refuse a model whose parameters and training state (weights, gradients, two optimiser moments,
    a checkpoint copy) cannot fit in this machine's memory, before allocating any of it."""
    with torch.device("meta"):
        count = RNNLM(dataclasses.replace(model_cfg, vocab_size=max(vocab_size, 1))).num_parameters()
    need = count * 4 * 5
    available = _available_memory()
    if available is not None and need > available:
        raise RnnlabError(
            f"the model has {count:,} parameters; training it needs about {need / 2**30:,.1f} GiB of memory "
            f"and {available / 2**30:,.1f} GiB are available (use a smaller --hidden, --layers or --embed)"
        )


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _check_precision(model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """Run one tiny step of this model in the requested precision on the training device (see
    precision.check_precision); Hessian-free always runs in fp32."""
    if train_cfg.optimizer == "hf" or train_cfg.precision == "fp32":
        return
    device = resolve_device(train_cfg.device)
    probe_cfg = dataclasses.replace(model_cfg, vocab_size=8)
    check_precision(train_cfg.precision, device, RNNLM(probe_cfg).to(device), probe_cfg.vocab_size)


def _preset_values(preset: str | None) -> dict[str, Any]:
    from rnnlab.config import PRESETS

    return dict(PRESETS.get(preset, {})) if preset else {}


def _write_config(run_dir: Path, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    write_run_config(run_dir, "lm", dataclasses.asdict(model_cfg), {"train": dataclasses.asdict(train_cfg)})


SAMPLE_TOKENS = 160  # tokens of the samples printed while training


class _Loop(Loop):
    """The language model's hooks over the training loop, for one session over a run directory (fresh or
    resumed): chunks of the N parallel streams with the hidden state carried across them, random stream
    resets, epochs, validation, checkpoints on disk for exact resume, and DDP under torchrun."""

    def __init__(
        self,
        run_dir: Path,
        model_cfg: ModelConfig,
        config: TrainConfig,
        show_progress: bool,
        dist: Distributed | None = None,
        callbacks: Callbacks | None = None,
    ) -> None:
        self.run_dir, self.config, self.dist = run_dir, config, dist or Distributed()
        self.device = self.dist.device(resolve_device(config.device))
        self.store = TokenStore.open(run_dir)
        rows = self.dist.rows(config.batch_size)  # this process's streams (all N when single-process)
        self.stream = BatchStream(self.store.train.tokens, config.batch_size, config.seq_len, rows)
        self.model = RNNLM(model_cfg).to(self.device)
        self.optimizer = build_optimizer(self.model, config)
        self.carried: State | None = None
        self.state: State | None = None  # the chunk's final state, carried once its update succeeds
        progress = self.load_checkpoint()
        # What the training step calls: DDP around the model (gradient averaging), optionally compiled.
        self.step_model = compile_model(self.dist.wrap(self.model, self.device), config.compile)
        precision = Precision(config.precision, self.device)
        if config.precision == "auto" and self.dist.is_main and config.optimizer != "hf":
            notice(f"--precision auto: the training step runs in {precision.name} on {self.device.type}")
        total_steps = self._step_budget()
        reporter = (
            Reporter(run_dir, config, total_steps, show_progress, chars_per_token=self.store.train.chars_per_token)
            if self.dist.is_main
            else SilentReporter()
        )
        super().__init__(
            self.model,
            self.optimizer,
            config,
            progress=progress,
            total_steps=total_steps,
            reporter=reporter,
            dist=self.dist,
            device=self.device,
            precision=precision,
            max_rollbacks=MAX_ROLLBACKS,  # this module's name, read now: a test can raise the limit
            callbacks=callbacks,
        )
        self.evaluates = self.store.val is not None
        # -1: a sample at each validation, where someone watches (the bar is live on a terminal)
        self.sample_at_evaluations = config.sample_every == -1 and show_progress and console.is_terminal
        self.curves_drawn = time.monotonic()  # RUN/loss.png: when it was last drawn (none yet: the start)
        self.curves_exist = False

    def _step_budget(self) -> int:
        """The step horizon from --max-steps and --epochs (0 when only time, or nothing, limits training)."""
        budgets = []
        if self.config.max_steps:
            budgets.append(self.config.max_steps)
        if self.config.epochs:
            budgets.append(max(1, int(self.config.epochs * self.stream.chunks_per_epoch)))
        return min(budgets) if budgets else 0

    def run(self) -> TrainResult:  # type: ignore[override]
        super().run()
        p = self.progress
        best = p.best_val / LN2 / self.store.val.chars_per_token if self.store.val is not None else None
        if self.stopped_by_callback:
            notice(f"a callback stopped training at step {p.step}; checkpoint saved (resume=True continues it)")
        elif self.stop_requested:
            notice(
                f"interrupted at step {p.step}; checkpoint saved. "
                f"Continue with: rnnlab train --out {self.run_dir} --resume"
            )
        return TrainResult(self.run_dir, p.step, best, self.last_loss, p.elapsed, self.stop_requested)

    # ---- the hooks ----------------------------------------------------------------------------------

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The next chunk (x, y) of this rank's streams; at an epoch boundary the streams start afresh."""
        p = self.progress
        if p.chunk >= self.stream.chunks_per_epoch:
            p.epoch, p.chunk, self.carried = p.epoch + 1, 0, None
        x, y = self.stream.batch(p.chunk)
        if self.device.type == "cuda":  # pinned pages: the copy runs asynchronously with the GPU's work
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        self.carried = self._reset_streams(self.carried, step)
        return x, y

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        _, self.state, loss = self.step_model(x, self.carried, y)
        return loss

    def update(self, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        """--optimizer hf: one Hessian-free update from the chunk's incoming state (no learning rate, no
        clipping); any other optimiser: the loop's first-order step."""
        if self.config.optimizer != "hf":
            return super().update(batch)
        carried = detach_state(self.carried) if self.carried is not None else None  # HF: no learned init
        loss_value, self.state = self.optimizer.step(*batch, carried)
        if not math.isfinite(loss_value):
            raise Diverged(loss_value)
        return loss_value

    def after_step(self, batch: tuple[torch.Tensor, torch.Tensor], loss: float) -> None:
        """Carry the chunk's final state into the next chunk and advance the data cursor."""
        p = self.progress
        self.carried = detach_state(self.state)
        ranks = 1 if self.config.optimizer == "hf" else self.dist.world  # HF steps each rank on its own rows
        p.chunk, p.tokens = p.chunk + 1, p.tokens + batch[0].numel() * ranks
        if self.config.sample_every > 0 and p.step % self.config.sample_every == 0:
            self._print_sample()

    def evaluate(self) -> dict[str, Any]:
        p, val = self.progress, self.store.val
        assert val is not None
        tokens = val.tokens[: self.config.eval_tokens] if self.config.eval_tokens else val.tokens
        self.reporter.validating(p)
        nats, count = total_nats(self.model, tokens, self.config.batch_size, self.config.seq_len, self.device)
        val_loss = nats / max(count, 1)
        improved = val_loss < p.best_val
        if improved:
            p.best_val, p.best_step, p.bad_evals = val_loss, p.step, 0
            self._save_weights()
        else:
            p.bad_evals += 1
        val_bpc = val_loss / LN2 / val.chars_per_token
        self.reporter.evaluation(p, val_loss, val_bpc, improved)
        if self.sample_at_evaluations:
            self._print_sample()
        if time.monotonic() - self.curves_drawn >= curves.REFRESH_S:
            self._draw_curves()
        return {"val_loss": val_loss, "val_bpc": val_bpc, "best": improved}

    def save_checkpoint(self) -> None:
        """Every rank contributes its carried rows and RNG state; rank 0 writes; all wait until it has."""
        carried, rng = self.dist.gather_state(self.carried), self.dist.rng_tensors(self.device)
        if self.dist.is_main:
            save_checkpoint(self.run_dir, self.model, self.optimizer, self.progress, carried, rng)
        self.dist.barrier()

    def load_checkpoint(self) -> Progress:
        """Load the checkpoint; under torchrun keep this rank's rows of the carried state and its RNG."""
        progress, carried = load_checkpoint(
            self.run_dir, self.model, self.optimizer, self.device, self.config.batch_size
        )
        self.dist.restore_rng(self.run_dir, self.config.seed, progress.step, self.device)
        self.carried = self.dist.slice_state(carried, self.config.batch_size)
        return progress

    def on_start(self) -> None:
        """The run directory already holds the checkpoint to return to; drop metrics logged after it."""
        self._truncate_metrics(self.progress.step)

    def on_rollback(self) -> None:
        self._truncate_metrics(self.progress.step)

    def on_end(self) -> None:
        """Without validation there is no best model: the final weights are the model. The model card is
        written; the loss curves are drawn a last time where they were drawn before or the session was long
        enough to want them."""
        if self.store.val is None:
            self._save_weights()
        if self.dist.is_main:
            write_card(self.run_dir)
        if self.curves_exist or time.monotonic() - self.curves_drawn >= curves.REFRESH_S:
            self._draw_curves()

    def divergence_hint(self) -> str:
        return f"lower --lr or --clip-norm (the run can be resumed from step {self.progress.step} with other values)"

    # ---- the language model's own parts -------------------------------------------------------------

    def _reset_streams(self, carried: State | None, step: int) -> State | None:
        """Start each stream afresh with probability --reset-prob before this step, so the model learns to
        predict from the initial state (the learned one with --learn-init), not only deep inside a stream.
        The choice depends only on (seed, step): a resumed run resets the same streams."""
        if carried is None or not self.config.reset_prob:
            return carried
        generator = torch.Generator().manual_seed((self.config.seed * 1_000_003 + step) % 2**63)
        keep = torch.rand(self.config.batch_size, generator=generator) >= self.config.reset_prob
        keep = keep[self.dist.rows(self.config.batch_size)].to(self.device)
        if bool(keep.all()):
            return carried
        return reset_rows(carried, keep, self.model.rnn.initial_state(int(keep.numel())))

    def _print_sample(self) -> None:
        """A short sample of what the model writes now (temperature 0.8, its own NumPy generator: the training's
        random streams are untouched, so a run with samples trains exactly as one without)."""
        if not self.dist.is_main:
            return
        lm = LanguageModel(self.model, self.store.tokenizer)
        text = lm.generate(length=SAMPLE_TOKENS, temperature=0.8, seed=self.progress.step)
        self.model.train()
        console.rule(f"sample at step {self.progress.step}", style="dim")
        console.print(text, markup=False, highlight=False, soft_wrap=True)
        console.rule(style="dim")

    def _draw_curves(self) -> None:
        """RUN/loss.png from metrics.jsonl; a failure to draw it is a notice, never the end of training."""
        if not self.dist.is_main:
            return
        try:
            curves.write_curves(self.run_dir)
            self.curves_exist = True
        except (OSError, RnnlabError) as exc:
            notice(f"could not draw {curves.CURVES}: {exc}")
        self.curves_drawn = time.monotonic()

    def _save_weights(self) -> None:
        if self.dist.is_main:
            atomic_save_tensors(self.run_dir / WEIGHTS, self.model.state_dict())

    def _truncate_metrics(self, step: int) -> None:
        """Drop metric rows logged after `step` (they are about to be recomputed after a resume)."""
        path = self.run_dir / METRICS
        if not self.dist.is_main or not path.exists():
            return
        rows = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(row + "\n" for row in rows))
