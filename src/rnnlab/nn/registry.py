"""THE list of cells: every `--cell` name, the class that implements it, and what the rest of rnnlab asks about it.

A cell registers itself where it is defined, with `@register("name", ...)` on its class (nn/cells.py, nn/scan.py);
`rnnlab.nn` imports those modules, so every cell is registered as soon as anything under `rnnlab.nn` is imported.
Adding a cell is one class and one registration: the CLI's choices and help, config validation, the recurrent
stack, the steppers, the probes, the exporter and the cell test suite (tests/nn/test_cells.py) all read it here.

Hessian-free needs no entry: every cell has a step loop (`Cell.step`), which it runs (`step_loops`), and the cell
test suite checks its gradient through that loop for every registered cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from rnnlab.errors import RnnlabError

C = TypeVar("C", bound=type)


@dataclass(frozen=True)
class CellSpec:
    """One registered cell and the facts about it that other modules act on."""

    name: str  # as in `--cell`
    cls: type[nn.Module]  # an `rnnlab.nn.cells.Cell`, built as cls(input_size, hidden_size, **options)
    state: tuple[str, ...] = ("h",)  # the parts of the state, in order: ("h", "c") for the LSTM
    # Every part of the state is (N, H), one value per hidden unit: what --learn-init learns, what the probes record
    # and the web page shows, what a vector can initialise (models/sequence.py). False for a block like the ssm.
    per_unit: bool = True
    options: tuple[str, ...] = ()  # ModelConfig fields the constructor takes (e.g. "peephole"); others do not apply
    same_width: bool = False  # adds its input un-weighted, so it needs input size = hidden size (--embed = --hidden)
    max_lr: float | None = None  # a default learning rate above this is lowered to it (an explicit --lr is kept)
    no_onnx: str = ""  # why the ONNX exporter cannot record the cell's step ("": it can)

    @property
    def equations(self) -> Callable[..., tuple[Any, Any]] | None:
        """The cell's step as a function of plain arrays, `Cell.equations`, which the NumPy stepper
        (models/stepper.py) and the gradient probe run; None where the cell has none."""
        return self.cls.equations

    @property
    def torch_mode(self) -> str | None:
        """The mode of `torch.nn.RNNBase` whose equations and parameters are the cell's (`Cell.torch_mode`): the
        stack runs PyTorch's op for all its layers at once on the cells' weights; None where PyTorch has none."""
        return self.cls.torch_mode


_CELLS: dict[str, CellSpec] = {}


def register(name: str, **facts: Any) -> Callable[[C], C]:
    """Class decorator: the cell `name` is this class; `facts` are the other fields of its `CellSpec`."""

    def add(cls: C) -> C:
        if name in _CELLS:
            raise ValueError(f"cell {name!r} is registered twice")
        _CELLS[name] = CellSpec(name, cls, **facts)
        return cls

    return add


def get(name: str) -> CellSpec:
    """The registered cell `name`; an unknown name is an RnnlabError that lists the registered ones."""
    if name not in _CELLS:
        raise RnnlabError(f"unknown cell {name!r}; choose one of: {', '.join(_CELLS)}")
    return _CELLS[name]


def cells() -> tuple[CellSpec, ...]:
    """Every registered cell, in registration order."""
    return tuple(_CELLS.values())


def names() -> tuple[str, ...]:
    """Every registered `--cell` name, in registration order."""
    return tuple(_CELLS)
