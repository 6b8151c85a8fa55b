"""The lectures' worked examples, computed with the reference layers."""

from __future__ import annotations

import numpy as np

from rnnlab.reference.loss import softmax
from rnnlab.reference.model import CharRNN
from rnnlab.reference.optim import Adam
from rnnlab.reference.rnn import RNN

W_H = np.array([[0.1, 0.5, 0.1], [0.5, 0.9, 0.3], [0.3, 0.2, 0.1]])
W_X = np.array([[0.6, 0.8, 0.4, 0.8], [0.2, 0.2, 0.8, 0.7], [0.9, 0.8, 0.1, 0.2]])
W_Y = np.array([[0.9, 0.8, 0.3], [0.2, 0.3, 0.4], [0.6, 0.9, 0.1], [0.5, 0.0, 0.3]])


def worked_example() -> tuple[np.ndarray, np.ndarray]:
    """One step of the 3-hidden, 4-input tanh RNN from h_0 = 0, x_1 = e_1: returns (h_1, softmax(W_Y h_1))."""
    layer = RNN(4, 3, "tanh")
    layer.params["W_xh"][...], layer.params["W_hh"][...] = W_X, W_H
    h, _ = layer.forward(np.array([[[1.0, 0.0, 0.0, 0.0]]]), (np.zeros((1, 3)),))
    h1 = h[0, 0]
    return h1, softmax(W_Y @ h1)


def repeated_ones_detector(bits: list[int]) -> list[int]:
    """The hand-built ReLU RNN that outputs 1 exactly when the current and the previous input are both 1.

    h_1 = x_t, h_2 = h_1 of the previous step (= x_{t−1}), h_3 = 1 forever (h_0 = (0, 0, 1), w_hh[2, 2] = 1),
    so y_t = w_yh · h_t = x_t + x_{t−1} − 1 ∈ {−1, 0, 1}, and the output ReLU(y_t) is 1 iff both are 1.
    (A threshold y_t > 0 gives the same outputs; a sigmoid would not give 0 and 1.)
    """
    layer = RNN(1, 3, "relu")
    layer.params["W_xh"][...] = [[1.0], [0.0], [0.0]]
    layer.params["W_hh"][...] = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    w_yh = np.array([1.0, 1.0, -1.0])
    h, _ = layer.forward(np.array(bits, dtype=float).reshape(1, -1, 1), (np.array([[0.0, 0.0, 1.0]]),))
    y = np.maximum(h[0] @ w_yh, 0.0)
    return [int(v) for v in y]


def repeated_ones_targets(bits: np.ndarray) -> np.ndarray:
    """1 where a bit and the one before it are both 1 (before the first bit counts as 0); bits (N, T)."""
    previous = np.concatenate([np.zeros_like(bits[:, :1]), bits[:, :-1]], axis=1)
    return bits & previous


def train_repeated_ones(seed: int = 0, iters: int = 300, H: int = 8) -> tuple[CharRNN, float]:
    """Learn the repeated-ones task from random weights; return the model and its accuracy on fresh sequences."""
    rng = np.random.default_rng(seed)
    model = CharRNN("rnn-tanh", 2, H, rng=rng, std=0.5, reduction="mean")
    optimizer = Adam(model.params, lr=0.05)
    for _ in range(iters):
        bits = rng.integers(0, 2, (32, 20))
        model.forward(bits, repeated_ones_targets(bits))
        optimizer.step(model.backward())
    bits = rng.integers(0, 2, (200, 50))
    logits, _, _ = model.forward(bits)
    return model, float(np.mean(logits.argmax(-1) == repeated_ones_targets(bits)))


def train_hello(seed: int = 0, iters: int = 200, H: int = 8) -> tuple[CharRNN, str]:
    """The char model over [h, e, l, o] taught to answer "ello" to "hell"; returns it and its greedy answer."""
    vocab = ["h", "e", "l", "o"]
    inputs = np.array([[vocab.index(c) for c in "hell"]])
    targets = np.array([[vocab.index(c) for c in "ello"]])
    model = CharRNN("rnn-tanh", 4, H, rng=np.random.default_rng(seed), std=0.5)
    optimizer = Adam(model.params, lr=0.05)
    for _ in range(iters):
        model.forward(inputs, targets)
        optimizer.step(model.backward())
    logits, _, _ = model.forward(inputs)
    return model, "".join(vocab[i] for i in logits[0].argmax(-1))
