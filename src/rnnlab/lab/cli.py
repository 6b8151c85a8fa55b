"""`rnnlab task repeated-ones | binary-addition | adding | copy | reverse`: the lectures' tasks, each trained
until solved (repeated-ones first shows the hand-built detector, which needs no training)."""

from __future__ import annotations

from typing import Annotated

import typer

from rnnlab.cli.options import max_time_option, old_spellings
from rnnlab.cli.tasks import task_app
from rnnlab.lab.long_range import INITS, OPTIMIZERS, TASKS, train_task
from rnnlab.nn import registry
from rnnlab.reference.examples import repeated_ones_detector

Opt = typer.Option


def _register(name: str) -> None:
    """Add `rnnlab task NAME` with the shared options."""
    task = TASKS[name]

    def command(
        cell: Annotated[str, Opt(help=" | ".join(registry.names()))] = "lstm",
        optimizer: Annotated[str, Opt(help=" | ".join(OPTIMIZERS))] = "adam",
        init: Annotated[str, Opt(help=" | ".join(INITS) + " (esn: spectral radius 1.1)")] = "default",
        length: Annotated[int, Opt(help="T: training bits, delay or sequence length.")] = task.default_length,
        steps: Annotated[int, Opt("--max-steps", help="Most updates (HF: outer iterations).")] = 2000,
        seed: Annotated[int, Opt()] = 0,
        hidden: Annotated[int, Opt(help="Hidden units H.")] = 64,
        lr: Annotated[float | None, Opt(help="Learning rate (default per optimiser).")] = None,
        time_limit: Annotated[float | None, max_time_option("Stop after this much CPU time, e.g. 90s, 20m.")] = None,
    ) -> None:
        def report(step: int, seconds: float, metrics: dict[str, float]) -> None:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            print(f"step {step:5d}  {seconds:6.1f}s  {shown}", flush=True)

        if name == "repeated-ones":
            bits = [0, 1, 0, 1, 1, 1, 0, 1, 1]
            print("input       ", " ".join(map(str, bits)))
            print("hand-built  ", " ".join(map(str, repeated_ones_detector(bits))))

        result = train_task(
            name,
            cell=cell,
            optimizer=optimizer,
            init=init,
            length=length,
            steps=steps,
            seed=seed,
            hidden=hidden,
            lr=lr,
            time_limit=time_limit,
            callback=report,
        )
        verdict = "solved" if result.solved else "not solved"
        print(f"{verdict} ({task.criterion}) after {result.steps} steps, {result.seconds:.1f}s")

    command.__doc__ = f"Train on the {name} task until solved: {task.criterion}."
    task_app.command(name)(old_spellings(steps="--steps", time_limit="--time-limit")(command))


for _name in TASKS:
    _register(_name)
