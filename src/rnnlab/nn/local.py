"""The mLSTM block with local attention heads: half its heads keep the matrix memory, half read the last W tokens
exactly, by softmax attention over a sliding window.

The matrix memory (nn/mlstm.py) recalls by key, but everything it stores is summed into d x d numbers and fades;
copying an identifier seen a few lines earlier, character for character, is what attention does best. Griffin
(De et al. 2024, "Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient Language Models")
interleaves recurrent layers with local-attention layers; Hymba (Dong et al. 2024) puts attention and recurrent
heads side by side in one layer, which is what this block does, so that every layer has one state of one shape.

The window is part of the recurrent state: the keys and values of the last W tokens, (N, local heads, W, d) each,
carried from chunk to chunk like the memory, so the block is still a recurrence (O(W) work and memory per token,
whatever the length of the text) and a sequence gives the same result however it is cut into chunks. Step t
attends to itself and the W − 1 steps before it; slots not yet written (the first W − 1 steps of a stream) hold
zero keys and values, which attract a logit of 0 and add nothing. Sampling and coding step it in NumPy
(`numpy_step`, the mLSTM block's with this read), shifting the window by one token per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from rnnlab.nn.mlstm import MLSTMCell
from rnnlab.nn.registry import register


def local_attention(
    q: Tensor, k: Tensor, v: Tensor, window: tuple[Tensor, Tensor]
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Softmax attention of each of T steps over itself and the W − 1 steps before it.

    q, k, v (N, heads, T, d); window: the keys and values of the W steps before these, (N, heads, W, d) each.
    Returns the outputs (N, heads, T, d) and the keys and values of the last W steps.
    """
    keys, values = torch.cat([window[0], k], 2), torch.cat([window[1], v], 2)
    W, T = window[0].shape[2], q.shape[2]
    t = torch.arange(T, device=q.device)[:, None]
    j = torch.arange(W + T, device=q.device)[None]
    visible = (j > t) & (j <= t + W)  # step t sits at W + t: itself and the W − 1 before it
    logits = (q @ keys.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # written out: vmap (Hessian-free) batches it
    h = torch.softmax(logits.masked_fill(~visible, -math.inf), -1) @ values
    return h, (keys[:, :, T:], values[:, :, T:])


@register(
    "mlstm-local",
    state=("conv", "C", "n", "m", "keys", "values"),
    per_unit=False,
    options=("window",),
    no_onnx="the exporter has no operator for its RMSNorm",
)
class LocalMLSTMCell(MLSTMCell):
    """The mLSTM block (nn/mlstm.py) whose last half of heads attend over the last `window` tokens instead of
    keeping a matrix memory; the projections, convolution, head norm and output gate are the mLSTM block's, and
    only the memory heads have gates.

    State: the mLSTM block's (conv inputs, C, n, m) for its memory heads, then the window's keys and values
    (N, local heads, W, d) each.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        window: int = 64,
        heads: int | None = None,
        expand: int = 2,
        d_conv: int = 4,
    ) -> None:
        if window < 1:
            raise ValueError(f"mlstm-local: the window must be at least 1 token, got {window}")
        super().__init__(input_size, hidden_size, heads, expand, d_conv)
        self.window = window

    def _memory_head_count(self, heads: int) -> int:
        """Half the heads keep a matrix memory; the other half attend over the window."""
        if heads < 2:
            raise ValueError(f"mlstm-local needs at least 2 heads (a memory head and a local one), got {heads}")
        return heads // 2

    def initial_state(self, N: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
        """The mLSTM block's zeros for the memory heads, then an empty window: (N, local heads, W, d) zeros twice."""
        local, d = self.heads - self.memory_heads, self.inner // self.heads
        keys = torch.zeros(N, local, self.window, d, device=device, dtype=dtype)
        return (*super().initial_state(N, device, dtype), keys, keys.clone())

    def _read(
        self, q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, f_pre: Tensor, state: tuple[Tensor, ...]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The memory heads as in the mLSTM block, the local heads over the window: h̃ (N, heads, T, d), new state."""
        C, n, m, keys, values = state
        M = self.memory_heads
        h_memory, memory = super()._read(q[:, :M], k[:, :M], v[:, :M], i_pre, f_pre, (C, n, m))
        h_local, window = local_attention(q[:, M:], k[:, M:], v[:, M:], (keys, values))
        return torch.cat([h_memory, h_local], 1), (*memory, *window)

    def _numpy_read(self) -> Callable[..., tuple[np.ndarray, tuple]]:
        """`_read` for one token in NumPy: the memory heads as the mLSTM block's, the local heads over the window
        shifted by one token."""
        memory_read, M = super()._numpy_read(), self.memory_heads

        def read(q: np.ndarray, k: np.ndarray, v: np.ndarray, c: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
            C, n, m, keys, values = state
            h_memory, memory = memory_read(q[:M], k[:M], v[:M], c, (C, n, m))
            keys = np.concatenate([keys[:, 1:], k[M:, None]], 1)  # (local heads, W, d): the oldest step leaves
            values = np.concatenate([values[:, 1:], v[M:, None]], 1)
            logits = np.einsum("hd,hwd->hw", q[M:], keys) * np.float32(1 / math.sqrt(q.shape[-1]))
            weights = np.exp(logits - logits.max(-1, keepdims=True))
            weights /= weights.sum(-1, keepdims=True)
            h_local = np.einsum("hw,hwd->hd", weights, values)
            return np.concatenate([h_memory, h_local]), (*memory, keys, values)

        return read
