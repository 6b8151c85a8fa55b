"""The token store (a memory-mapped array on disk) and truncated-BPTT batches over N parallel streams.

Layout (min-char-rnn's scheme, batched): the M training tokens are cut into N contiguous streams of
S = M // N tokens. Step k of an epoch reads columns [kT, kT + T] of every stream, so row i of batch
k + 1 continues exactly where row i of batch k stopped, and the hidden state can be carried across.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rnnlab.errors import RnnlabError


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


class TokenWriter:
    """Append token ids to a .bin file piece by piece, so memory stays bounded by one piece."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path, self.dtype, self.count = path, dtype, 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close(), used across calls

    def write(self, ids: np.ndarray) -> None:
        self._file.write(ids.astype(self.dtype, copy=False).tobytes())
        self.count += len(ids)

    def close(self) -> None:
        self._file.close()


def open_tokens(path: Path, dtype: np.dtype) -> np.ndarray:
    """Map a token file read-only; an empty file gives an empty array (np.memmap refuses size 0)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


class BatchStream:
    """Chunks of T tokens from N parallel streams; `batch(k)` is the k-th chunk of an epoch.

    `rows` keeps a slice of the N streams (one process's share under torchrun); batches are then
    (len(rows), T), and the streams are exactly those rows of the full (N, S) grid.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, rows: slice = slice(None)) -> None:
        N, T = batch_size, seq_len
        S = len(tokens) // N
        if S < T + 1:
            raise RnnlabError(
                f"training text has {len(tokens)} tokens, too short for --batch-size {N} x --seq-len {T} "
                f"(needs at least {N * (T + 1)}); use a smaller --batch-size or --seq-len"
            )
        self.batch_size, self.seq_len = N, T
        self.grid = tokens[: N * S].reshape(N, S)[rows]  # still a memmap view: nothing is read yet
        self.chunks_per_epoch = (S - 1) // T

    def batch(self, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets, both (N, T) int64."""
        if not 0 <= chunk < self.chunks_per_epoch:
            raise IndexError(f"chunk {chunk} outside epoch of {self.chunks_per_epoch}")
        start = chunk * self.seq_len
        block = torch.from_numpy(np.array(self.grid[:, start : start + self.seq_len + 1], dtype=np.int64))
        return block[:, :-1], block[:, 1:]
