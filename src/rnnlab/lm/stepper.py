"""One token at a time through an `RNNLM`, with the per-call overhead stripped: for coding and sampling loops
that must run strictly step by step (the arithmetic decoder needs each prediction before the next input, the
sampler each token before it can feed it back).

`RNNLM.forward` on a (1, 1) input pays for generality: module dispatch, PyTorch's fused sequence op (whose
fixed cost dominates at T = 1 on the CPU), state packing. For the cells that write their step as `equations`
(nn/cells.py; today the Elman cells, IRNN, LSTM and GRU: the equations of `nn.RNN/LSTM/GRU`), in a stack with no
per-layer extra but dropout (`Recurrent.layer_weights`), `FusedStepper` runs those same equations in NumPy
float32 on views of the weights, a dozen array operations per layer (NumPy's per-call cost is lower than
PyTorch's; benchmarks/results/sampling.md has the figures):

    layer 0 input share   table[token]           (V, G·H): embedding @ W_ih^T + b_ih (+ b_hh), once per weights
    layer l > 0           b + W_ih h_{l-1}
    recurrent share       W_hh h_l (+ b_hh), then the cell's `equations` on NumPy arrays (`ops=NUMPY`)
    head                  b + W (proj(h_top))

For a large vocabulary the layer-0 table would be large (V rows of G·H): past `TABLE_LIMIT` entries, layer 0's
input share is one product per step instead.

A cell whose step is more than that (the mLSTM block: norm, projections, convolution, matrix memory) writes its
own NumPy step instead (`Cell.numpy_step`), and `CellStepper` runs a stack of those.

Results equal `RNNLM.forward` to float32 rounding, not bitwise (other kernels, other summation order).
Every other model, and any model not in float32 on the CPU, goes through `ModuleStepper`, the plain
one-step forward. Both start from the model's initial state, or from any state in `RNNLM.forward`'s format
given to `set_state` (sampling runs the prime through the sequence forward and continues from its state).
Callers that need bit-identical results on two runs (the compressor) must use the same stepper class with
the same PyTorch and NumPy builds on the same kind of CPU. (NumPy's BLAS may use several threads for a matrix-vector
product; on this project's machine its results were bitwise the same with 1 and 2 threads.)

Weights are views of the module's parameters, so in-place updates (dynamic evaluation) are seen at once;
`refresh()` must then rebuild the tensors derived from them (the layer-0 table, summed biases).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from rnnlab.nn.cells import NUMPY
from rnnlab.nn.recurrent import State, state_from_tensors, state_tensors

if TYPE_CHECKING:  # for annotations only: language_model.py imports this module
    from rnnlab.lm.model import RNNLM

TABLE_LIMIT = 1 << 22  # entries of layer 0's per-token table (16 MB of float32); above it, a product per step


class ModuleStepper:
    """The general path: `module(token, state)` one step at a time."""

    def __init__(self, module: RNNLM) -> None:
        self.module = module
        self.state: State | None = None
        self.x = torch.zeros((1, 1), dtype=torch.long, device=module.head.weight.device)

    def refresh(self) -> None:
        """Nothing is derived from the weights here."""

    @torch.no_grad()
    def step(self, token: int) -> np.ndarray:
        """Feed `token`; the float32 logits (V,) of the next token (on the CPU, whatever the module's device)."""
        self.x[0, 0] = token
        logits, self.state, _ = self.module(self.x, self.state)
        return logits[0, -1].float().cpu().numpy()

    def set_state(self, state: State | None) -> None:
        """Continue from `state`, in `RNNLM.forward`'s format (None: the model's initial state)."""
        self.state = state

    def module_state(self) -> State | None:
        """The carried state in `RNNLM.forward`'s format (None: the initial state)."""
        return self.state


class FusedStepper:
    """The fast path for stacks of cells with `equations` (see the module docstring); CPU, float32, eval mode.
    `supports(module)` says whether a model is one."""

    def __init__(self, module: RNNLM) -> None:
        rnn = module.rnn
        self.module, self.L, self.H = module, rnn.num_layers, rnn.hidden_size
        self.equations, self.parts, self.fold = rnn.spec.equations, len(rnn.spec.state), rnn.spec.cls.bias_hh_foldable
        self.w_ih, self.w_hh, self.b_ih, self.b_hh = (
            [_array(p) for p in params] for params in zip(*rnn.layer_weights(), strict=True)
        )
        self.head_w, self.head_b = _array(module.head.weight), _array(module.head.bias)
        proj = module.proj
        self.proj = (_array(proj.weight), _array(proj.bias)) if proj is not None else None
        self.refresh()
        self.set_state(None)

    @staticmethod
    def supports(module: RNNLM) -> bool:
        """True for a float32 CPU model whose stack is its cells' `equations` with no per-layer extra but dropout."""
        weight = module.head.weight
        return weight.device.type == "cpu" and weight.dtype == torch.float32 and module.rnn.layer_weights() is not None

    def refresh(self) -> None:
        """Rebuild what is derived from the weights: the input share of layer 0 for every token, and b_ih + b_hh
        folded into one bias where the equations read only the sum of the two shares (`Cell.bias_hh_foldable`;
        not the GRU's, whose b_hn sits inside the reset gate's product: its b_hh is added to the recurrent share)."""
        pairs = list(zip(self.b_ih, self.b_hh, strict=True))
        self.bias = [b_ih + b_hh if self.fold else b_ih for b_ih, b_hh in pairs]
        self.recurrent_bias = [None if self.fold else b_hh for _, b_hh in pairs]
        embed = self.module.embed
        w = self.w_ih[0].T  # one-hot input (embed = 0): row v of the table is column v of W_ih
        self.embedding = _array(embed.weight) if embed is not None else None
        if self.embedding is None:
            self.table = w + self.bias[0]
        elif self.embedding.shape[0] * w.shape[1] <= TABLE_LIMIT:
            self.table = self.embedding @ w + self.bias[0]
        else:
            self.table = None

    def set_state(self, state: State | None) -> None:
        """Continue from `state`, in `RNNLM.forward`'s format: (L, 1, H) tensors, a tuple (h, c) of them for
        the LSTM (None: the model's initial state, learned or zeros). The values are copied."""
        if state is None:
            state = self.module.rnn.initial_state(1)
        if state is None:
            parts = [np.zeros((self.L, self.H), dtype=np.float32)] * self.parts
        else:
            parts = [p[:, 0].detach().numpy().copy() for p in state_tensors(state)]
        self.h = list(parts[0])  # each layer's h, the next step's recurrent input
        self.state = [layer if len(layer) > 1 else layer[0] for layer in zip(*parts, strict=True)]  # as `equations`

    def step(self, token: int) -> np.ndarray:
        """Feed `token`; the float32 logits (V,) of the next token."""
        if self.table is not None:
            x = self.table[token]
        else:
            x = self.w_ih[0] @ self.embedding[token]
            x += self.bias[0]
        h, state, equations, recurrent_bias = self.h, self.state, self.equations, self.recurrent_bias
        for i in range(self.L):
            if i:
                x = self.w_ih[i] @ x
                x += self.bias[i]
            hw = self.w_hh[i] @ h[i]
            if recurrent_bias[i] is not None:
                hw += recurrent_bias[i]
            x, state[i] = equations(x, hw, state[i], NUMPY)
            h[i] = x
        if self.proj is not None:
            x = self.proj[0] @ x + self.proj[1]
        logits = self.head_w @ x
        logits += self.head_b
        return logits

    def module_state(self) -> State:
        """The carried state in `RNNLM.forward`'s format: (L, 1, H), or a tuple (h, c) of them."""
        layers = [s if isinstance(s, tuple) else (s,) for s in self.state]
        return state_from_tensors([torch.from_numpy(np.stack(part)[:, None]) for part in zip(*layers, strict=True)])


class CellStepper:
    """The fast path for stacks of cells that write their own NumPy step (`Cell.numpy_step`, today the mLSTM
    block): embedding row, each layer's step, head, in float32 on views of the weights; CPU, eval mode, no
    per-layer extra. `supports(module)` says whether a model is one."""

    def __init__(self, module: RNNLM) -> None:
        self.module, self.layers = module, [cell.numpy_step() for cell in module.rnn.layers]
        embed, proj = module.embed, module.proj
        self.embedding = _array(embed.weight) if embed is not None else None
        self.proj = (_array(proj.weight), _array(proj.bias)) if proj is not None else None
        self.head_w, self.head_b = _array(module.head.weight), _array(module.head.bias)
        self.set_state(None)

    @staticmethod
    def supports(module: RNNLM) -> bool:
        """True for a float32 CPU model whose layers all have a NumPy step and nothing between them but dropout."""
        weight, rnn = module.head.weight, module.rnn
        numpy = weight.device.type == "cpu" and weight.dtype == torch.float32 and rnn.plain
        return numpy and all(cell.numpy_step() is not None for cell in rnn.layers)

    def refresh(self) -> None:
        """Nothing is derived from the weights: the steps read views of them."""

    def set_state(self, state: State | None) -> None:
        """Continue from `state`, in `RNNLM.forward`'s format (None: the initial state). The values are copied."""
        if state is None:
            state = self.module.rnn.initial_state(1)
        if state is None:
            cpu = torch.device("cpu")
            layers = [state_tensors(cell.initial_state(1, cpu, torch.float32)) for cell in self.module.rnn.layers]
        else:
            layers = list(zip(*(part.unbind(0) for part in state_tensors(state)), strict=True))
        self.state = [tuple(p[0].detach().numpy().copy() for p in layer) for layer in layers]

    def step(self, token: int) -> np.ndarray:
        """Feed `token`; the float32 logits (V,) of the next token."""
        if self.embedding is not None:
            x = self.embedding[token]
        else:
            x = np.zeros(self.head_w.shape[0], dtype=np.float32)
            x[token] = 1
        for i, step in enumerate(self.layers):
            x, self.state[i] = step(x, self.state[i])
        if self.proj is not None:
            x = self.proj[0] @ x + self.proj[1]
        return self.head_w @ x + self.head_b

    def module_state(self) -> State:
        """The carried state in `RNNLM.forward`'s format: each part stacked over layers, (L, 1, ...)."""
        parts = zip(*self.state, strict=True)
        return state_from_tensors([torch.from_numpy(np.stack(part)[:, None]) for part in parts])


def _array(p: Tensor) -> np.ndarray:
    """A NumPy view of a parameter: in-place updates of the parameter show through."""
    return p.detach().numpy()


def make_stepper(module: RNNLM) -> FusedStepper | CellStepper | ModuleStepper:
    """A fast stepper for the models it supports (`FusedStepper.supports`, `CellStepper.supports`), else the
    general one."""
    if FusedStepper.supports(module):
        return FusedStepper(module)
    return CellStepper(module) if CellStepper.supports(module) else ModuleStepper(module)
