"""`rnnlab reference train`: min-char-rnn on the NumPy reference, writing a normal run directory;
and the lectures' worked examples as `rnnlab task` demos."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

from rnnlab.cli.app import app
from rnnlab.cli.options import old_spellings
from rnnlab.cli.tasks import task_app
from rnnlab.config import ModelConfig, TrainConfig
from rnnlab.data.corpus import read_text, resolve_inputs
from rnnlab.data.tokenizers import CharTokenizer, save_tokenizer
from rnnlab.errors import RnnlabError
from rnnlab.reference.model import CELLS, CharRNN
from rnnlab.reference.optim import OPTIMIZERS, make_optimizer
from rnnlab.reference.train import Iteration
from rnnlab.reference.train import train as train_reference
from rnnlab.rundir import (
    CONFIG,
    METRICS,
    REFERENCE_ENGINE,
    TOKENIZER,
    WEIGHTS,
    atomic_save_tensors,
    write_run_config,
)

reference_app = typer.Typer(help="The NumPy reference implementation (min-char-rnn, batched).", no_args_is_help=True)
app.add_typer(reference_app, name="reference")

Opt = typer.Option


@reference_app.command("train")
@old_spellings(max_iters="--max-iters")
def train(
    inputs: Annotated[list[str], typer.Argument(help="Text files, directories or globs.")],
    out: Annotated[Path, Opt(help="Run directory to create.")],
    cell: Annotated[str, Opt(help=" | ".join(CELLS))] = "rnn-tanh",
    hidden: Annotated[int, Opt(help="Hidden units H.")] = 100,
    seq_len: Annotated[int, Opt(help="BPTT length T.")] = 25,
    batch_size: Annotated[int, Opt(help="Parallel streams N (min-char-rnn: 1).")] = 1,
    optimizer: Annotated[str, Opt(help="adagrad | sgd | rmsprop | adam")] = "adagrad",
    lr: Annotated[float, Opt(help="Learning rate.")] = 0.1,
    clip_value: Annotated[float, Opt(help="Clip each gradient element to ±value (0: off).")] = 5.0,
    clip_norm: Annotated[float, Opt(help="Clip the global L2 gradient norm (0: off).")] = 0.0,
    max_iters: Annotated[int, Opt("--max-steps", help="Stop after this many iterations.")] = 10_000,
    print_every: Annotated[int, Opt(help="Print the smoothed loss every N iterations.")] = 100,
    sample_every: Annotated[int, Opt(help="Print a sample every N iterations (0: never).")] = 1000,
    sample_length: Annotated[int, Opt(help="Characters per sample.")] = 200,
    seed: Annotated[int, Opt()] = 1337,
) -> None:
    """Train a one-layer char model with the NumPy reference (min-char-rnn's defaults)."""
    if cell not in CELLS:
        raise RnnlabError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")
    if optimizer not in OPTIMIZERS:
        raise RnnlabError(f"unknown optimizer {optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    for flag, value in (("--hidden", hidden), ("--seq-len", seq_len), ("--batch-size", batch_size)):
        if value < 1:
            raise RnnlabError(f"{flag} must be >= 1, got {value}")
    if max_iters < 1 or print_every < 1 or sample_every < 0 or not lr > 0 or clip_value < 0 or clip_norm < 0:
        raise RnnlabError("--max-steps and --print-every must be >= 1, --lr > 0, clipping and --sample-every >= 0")
    if (out / CONFIG).exists():
        raise RnnlabError(f"{out} already holds a run; choose another --out")
    text = "".join(read_text(path) for path in resolve_inputs(inputs))
    tokenizer = CharTokenizer.fit([text])
    tokens = tokenizer.encode(text)
    if len(tokens) // batch_size < seq_len + 2:
        raise RnnlabError(f"{len(tokens)} characters are too few for {batch_size} stream(s) of {seq_len + 1}")
    rng = np.random.default_rng(seed)
    model = CharRNN(cell, tokenizer.vocab_size, hidden, rng=rng)
    opt = make_optimizer(optimizer, model.params, lr)
    out.mkdir(parents=True, exist_ok=True)
    metrics = (out / METRICS).open("w", encoding="utf-8")
    started = time.perf_counter()

    def report(it: Iteration) -> None:
        n = it.n + 1
        if n % print_every == 0 or n == max_iters:
            elapsed = time.perf_counter() - started
            print(f"iter {n}, loss: {it.smooth_loss:f}", flush=True)
            row = {
                "step": n,
                "train_loss": it.loss / seq_len,
                "train_bpc": it.loss / seq_len / math.log(2),
                "smooth_loss": it.smooth_loss,
                "tokens_per_s": n * batch_size * seq_len / max(elapsed, 1e-9),
                "elapsed": elapsed,
            }
            metrics.write(json.dumps(row) + "\n")
        if sample_every and n % sample_every == 0:
            state = tuple(s[:1].copy() for s in it.state)
            ids = model.sample(int(it.inputs[0, -1]), sample_length, state, rng)
            print(f"----\n{tokenizer.decode(ids)}\n----", flush=True)

    with metrics:
        train_reference(
            model,
            tokens,
            opt,
            batch_size=batch_size,
            seq_len=seq_len,
            clip_value=clip_value,
            clip_norm=clip_norm,
            max_iters=max_iters,
            callback=report,
        )
    train_cfg = TrainConfig(
        inputs=list(inputs),
        val_fraction=0.0,
        batch_size=batch_size,
        seq_len=seq_len,
        optimizer=optimizer,
        lr=lr,
        clip_norm=clip_norm,
        clip_value=clip_value,
        warmup=0,
        decay="none",
        min_lr_ratio=1.0,
        max_steps=max_iters,
        seed=seed,
        device="cpu",
    )
    _write_run(out, model, tokenizer, train_cfg)
    print(f"{max_iters} iterations in {time.perf_counter() - started:.0f}s; run saved in {out}")


def _write_run(out: Path, model: CharRNN, tokenizer: CharTokenizer, train_cfg: TrainConfig) -> None:
    """A "reference" run: config.json, tokenizer.json and model.safetensors in `rnnlab train`'s format (float32,
    RNNLM names), so that every language-model command loads it."""
    model_cfg = ModelConfig(vocab_size=model.V, cell=model.cell, layers=1, hidden=model.H, embed=0, dropout=0.0)
    save_tokenizer(tokenizer, out / TOKENIZER)
    weights = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in model.to_torch().items()}
    atomic_save_tensors(out / WEIGHTS, weights)
    train = {**dataclasses.asdict(train_cfg), "engine": REFERENCE_ENGINE}
    write_run_config(out, "reference", dataclasses.asdict(model_cfg), {"train": train})


@task_app.command("worked-example")
def worked_example_task() -> None:
    """The 3-hidden, 4-input RNN of the lecture: h_1 and y_1 = softmax(W_Y h_1) from x_1 = e_1."""
    from rnnlab.reference.examples import worked_example

    h1, y1 = worked_example()
    print("h_1 =", np.array2string(h1, precision=2))
    print("y_1 =", np.array2string(y1, precision=2))


@task_app.command("hello")
def hello_task(seed: Annotated[int, Opt()] = 0) -> None:
    """The [h, e, l, o] char model trained to answer "ello" to "hell"."""
    from rnnlab.reference.examples import train_hello

    _, answer = train_hello(seed=seed)
    print(f"hell -> {answer}")


@task_app.command("gradient-flow")
@old_spellings(plot="--out")
def gradient_flow_task(
    plot: Annotated[Path | None, Opt(help="Save the plot as this PNG.")] = None,
    steps: Annotated[int, Opt(help="Steps to back-propagate through.")] = 60,
) -> None:
    """‖∂L/∂h_{T−k}‖ for linear, ReLU and tanh recurrences as the singular values ρ of W_hh vary."""
    from rnnlab.reference.gradient_flow import gradient_flow_table, plot_gradient_flow

    if steps < 1:
        raise RnnlabError(f"--steps must be >= 1, got {steps}")
    rhos = (0.5, 0.9, 1.0, 1.1, 1.5, 2.0)
    print(gradient_flow_table(rhos, T=steps, steps=tuple(sorted({min(10, steps), steps // 2 or 1, steps}))))
    if plot is not None:
        plot_gradient_flow(str(plot), rhos, T=steps)
        print(f"plot saved to {plot}")
