"""CPU thread control for code that must run on one thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run PyTorch's CPU kernels on one thread for the duration, then restore the previous count.

    Two reasons to want it: reductions then have one fixed order (the compressor's two sides must compute
    bit-identical predictions), and a time loop of tiny operations gains nothing from splitting them while
    paying for the threads' synchronisation on a busy machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
