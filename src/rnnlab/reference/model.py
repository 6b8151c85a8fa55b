"""A character-level language model: one-hot tokens -> one recurrent layer -> linear head -> softmax.

    x_t = onehot(token_t)                 (N, T, V)
    h = layer(x, h_0)                     (N, T, H)
    y_t = W_hy h_t + b_y                  (N, T, V) logits
    L = cross_entropy(y, targets)

This is min-char-rnn's model (with `cell="rnn-tanh"`, N = 1) and `RNNLM` with `embed=0, layers=1`;
`to_torch`/`load_torch` translate between our parameter names and `RNNLM`'s state-dict names.
"""

from __future__ import annotations

import numpy as np

from rnnlab.reference.gru import GRU
from rnnlab.reference.loss import cross_entropy, softmax
from rnnlab.reference.lstm import LSTM
from rnnlab.reference.rnn import RNN

CELLS = ("rnn-tanh", "rnn-relu", "lstm", "gru", "gru-cho")
TORCH_PREFIX = "rnn.layers.0."  # where RNNLM keeps its one layer's weights

Layer = RNN | LSTM | GRU
State = tuple[np.ndarray, ...]


def make_layer(cell: str, D: int, H: int, rng: np.random.Generator, std: float) -> Layer:
    """The recurrent layer called `cell` (see CELLS), weights ~ N(0, std²), biases zero."""
    if cell in ("rnn-tanh", "rnn-relu"):
        return RNN(D, H, cell.removeprefix("rnn-"), rng=rng, std=std)
    if cell == "lstm":
        return LSTM(D, H, rng=rng, std=std)
    if cell in ("gru", "gru-cho"):
        return GRU(D, H, form="cho" if cell == "gru-cho" else "torch", rng=rng, std=std)
    raise ValueError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")


class CharRNN:
    """tokens (N, T) -> logits (N, T, V), with a hand-written backward pass through the whole model.

    Initialised like min-char-rnn: weights ~ N(0, 0.01²), biases zero. `reduction` is the loss's
    (see `cross_entropy`): "sequence" for min-char-rnn's summed loss, "mean" for torch's.
    """

    def __init__(
        self,
        cell: str,
        V: int,
        H: int,
        rng: np.random.Generator | None = None,
        std: float = 0.01,
        reduction: str = "sequence",
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        self.cell, self.V, self.H, self.reduction = cell, V, H, reduction
        self.layer = make_layer(cell, V, H, rng, std)
        self.head = {"W_hy": rng.standard_normal((V, H)) * std, "b_y": np.zeros(V)}

    @property
    def params(self) -> dict[str, np.ndarray]:
        """All parameters by name (the arrays themselves, so in-place updates reach the layer)."""
        return {**self.layer.params, **self.head}

    def forward(
        self, tokens: np.ndarray, targets: np.ndarray | None = None, state: State | None = None
    ) -> tuple[np.ndarray, State, float | None]:
        """Returns (logits (N, T, V), final state, loss or None), like `RNNLM.forward`."""
        x = np.eye(self.V)[tokens]  # one-hot input: x_t = e_{token_t}
        h, state = self.layer.forward(x, state)
        logits = h @ self.head["W_hy"].T + self.head["b_y"]  # y_t = W_hy h_t + b_y
        loss = None
        if targets is not None:
            loss, self._dlogits = cross_entropy(logits, targets, self.reduction)
            self._h = h
        return logits, state, loss

    def backward(self) -> dict[str, np.ndarray]:
        """Gradients of the last forward's loss for every parameter (and `self.dstate0` for the initial state)."""
        dy, h = self._dlogits, self._h
        H, V = self.H, self.V
        grads = {
            "W_hy": dy.reshape(-1, V).T @ h.reshape(-1, H),  # dW_hy = Σ_t dy_t h_tᵀ
            "b_y": dy.reshape(-1, V).sum(axis=0),  # db_y = Σ_t dy_t
        }
        dh = dy @ self.head["W_hy"]  # dh_t = W_hyᵀ dy_t (the recurrence adds its share in the layer)
        _, self.dstate0 = self.layer.backward(dh)
        return {**self.layer.grads, **grads}

    def sample(self, token: int, length: int, state: State | None, rng: np.random.Generator) -> list[int]:
        """Feed `token`, then draw `length` tokens one at a time, each fed back in (min-char-rnn's `sample`)."""
        out = []
        for _ in range(length):
            logits, state, _ = self.forward(np.array([[token]]), state=state)
            p = softmax(logits[0, -1])
            token = int(rng.choice(self.V, p=p))
            out.append(token)
        return out

    def to_torch(self) -> dict[str, np.ndarray]:
        """All weights under `rnnlab.lm.model.RNNLM`'s state-dict names."""
        weights = {TORCH_PREFIX + k: v for k, v in _cell_weights(self.layer.params).items()}
        return {**weights, "head.weight": self.head["W_hy"], "head.bias": self.head["b_y"]}

    def load_torch(self, weights: dict[str, np.ndarray]) -> None:
        """Load weights named as in `RNNLM.state_dict()` (as NumPy arrays)."""
        n = len(TORCH_PREFIX)
        _load_cell_weights(self.layer.params, {k[n:]: v for k, v in weights.items() if k.startswith(TORCH_PREFIX)})
        self.head["W_hy"][...] = weights["head.weight"]
        self.head["b_y"][...] = weights["head.bias"]


def _cell_weights(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A layer's weights under the names of the rnnlab cell with the same equations and gate order (nn/cells.py):
    where the layer has one bias b_h, it is the cell's bias_ih and bias_hh is zero."""
    one_bias = "b_h" in params
    b_ih, b_hh = (params["b_h"], 0 * params["b_h"]) if one_bias else (params["b_xh"], params["b_hh"])
    return {"weight_ih": params["W_xh"], "weight_hh": params["W_hh"], "bias_ih": b_ih, "bias_hh": b_hh}


def _load_cell_weights(params: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> None:
    """Take a cell's weights into a layer's `params`, in place; a layer with one bias gets their sum."""
    params["W_xh"][...] = weights["weight_ih"]
    params["W_hh"][...] = weights["weight_hh"]
    if "b_h" in params:
        params["b_h"][...] = weights["bias_ih"] + weights["bias_hh"]
    else:
        params["b_xh"][...], params["b_hh"][...] = weights["bias_ih"], weights["bias_hh"]
