"""The sequence apps' training (`fit`) runs in the shared loop: its log cadence, --max-time, and the divergence
policy (rollback to the last in-memory copy with a halved learning rate, then one error after the limit)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig, fit


def regression(nan_from: int, nan_to: int) -> tuple[nn.Module, Callable[[torch.Generator], torch.Tensor]]:
    """A linear model learning y = x1 + x2 and a batch_loss that is NaN on its calls nan_from..nan_to."""
    torch.manual_seed(0)
    module, calls = nn.Linear(2, 1), {"n": 0}

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        calls["n"] += 1
        x = torch.randn(8, 2, generator=generator)
        loss = F.mse_loss(module(x), x.sum(1, keepdim=True))
        return loss * math.nan if nan_from <= calls["n"] <= nan_to else loss

    return module, batch_loss


def test_a_nan_rolls_back_to_the_last_copy_and_training_still_finishes(capsys):
    module, batch_loss = regression(150, 150)
    logged: list[int] = []
    final = fit(module, batch_loss, SeqConfig(steps=250, lr=0.05), log=lambda step, loss: logged.append(step))
    assert "loss became nan; rolled back to step 100 and lowered the learning rate" in capsys.readouterr().err
    assert logged == [100, 200, 250]
    assert final < 1e-3 and not module.training


def test_training_that_keeps_diverging_ends_with_one_error():
    module, batch_loss = regression(50, 10**9)
    with pytest.raises(RnnlabError, match=r"^training kept diverging \(nan\) after 8 rollbacks; lower --lr$"):
        fit(module, batch_loss, SeqConfig(steps=250, lr=0.05))


def test_max_time_ends_training_before_the_step_budget():
    module, batch_loss = regression(1, 0)  # never NaN
    started = time.perf_counter()
    fit(module, batch_loss, SeqConfig(steps=10**8, lr=0.05, max_time=0.5))
    assert 0.5 <= time.perf_counter() - started < 10
