"""min-char-rnn's training loop (Karpathy 2015), batched over N parallel streams.

The text is cut into N equal stripes, one per stream; every iteration takes the next T characters of
each stripe, runs forward and backward from the state carried over from the previous chunk (truncated
BPTT), clips, and updates. When the chunk would run past the end, every stream starts again at the
beginning of its stripe with a fresh zero state. With N = 1 this is min-char-rnn exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnnlab.reference.clip import clip_elementwise, clip_global_norm
from rnnlab.reference.model import CharRNN, State
from rnnlab.reference.optim import SGD, Adagrad, Adam, RMSProp


@dataclass
class Iteration:
    """What the loop reports after each update (to print, log or sample from)."""

    n: int  # iterations done before this one
    loss: float  # this chunk's loss (summed over T, averaged over streams)
    smooth_loss: float  # exponential moving average of `loss`, as min-char-rnn prints it
    inputs: np.ndarray  # (N, T) the chunk just trained on
    state: State  # the state after the chunk, carried into the next


def train(
    model: CharRNN,
    tokens: np.ndarray,
    optimizer: Adagrad | SGD | RMSProp | Adam,
    *,
    batch_size: int = 1,
    seq_len: int = 25,
    clip_value: float = 5.0,
    clip_norm: float = 0.0,
    max_iters: int = 1000,
    callback: Callable[[Iteration], None] | None = None,
) -> list[float]:
    """Train `model` on `tokens` for `max_iters` updates; return the loss of every iteration."""
    N, T = batch_size, seq_len
    S = len(tokens) // N  # stripe length per stream
    if S < T + 2:
        raise ValueError(f"{len(tokens)} tokens are too few for {N} streams of {T + 1}-token chunks")
    streams = tokens[: N * S].reshape(N, S)
    smooth_loss = -math.log(1.0 / model.V) * T  # the loss of a uniform guess, min-char-rnn's start
    losses: list[float] = []
    p, state = 0, None
    for n in range(max_iters):
        if n == 0 or p + T + 1 >= S:  # past the end: back to the start, with a fresh memory
            p, state = 0, None
        inputs, targets = streams[:, p : p + T], streams[:, p + 1 : p + T + 1]
        _, state, loss = model.forward(inputs, targets, state)
        grads = model.backward()
        if clip_value:
            clip_elementwise(grads, clip_value)
        if clip_norm:
            clip_global_norm(grads, clip_norm)
        optimizer.step(grads)
        smooth_loss = smooth_loss * 0.999 + loss * 0.001
        losses.append(loss)
        if callback is not None:
            callback(Iteration(n, loss, smooth_loss, inputs, state))
        p += T
    return losses
