"""Long-range task generators against direct computations, the LSTM on binary addition, and the CLI."""

from __future__ import annotations

import pytest
import torch

from rnnlab.cli.app import main
from rnnlab.errors import RnnlabError
from rnnlab.lab.long_range import (
    COPY_LENGTH,
    SYMBOLS,
    adding_batch,
    binary_addition_batch,
    bits_to_ints,
    copy_batch,
    hand_built_repeated_ones,
    repeated_ones_batch,
    reverse_batch,
    train_task,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("bits", [1, 8, 64])
def test_binary_addition_matches_python_integers(bits: int) -> None:
    b = binary_addition_batch(50, bits, gen())
    a_int, b_int = bits_to_ints(b.x[:, :bits, 0].long()), bits_to_ints(b.x[:, :bits, 1].long())
    assert bits_to_ints(b.y) == [a + c for a, c in zip(a_int, b_int, strict=True)]
    assert b.x.shape == (50, bits + 1, 2) and (b.x[:, bits] == 0).all() and (b.mask == 1).all()


def test_repeated_ones_targets_mark_two_ones_in_a_row_and_the_hand_built_rnn_finds_them() -> None:
    T = 15
    b = repeated_ones_batch(40, T, gen())
    for bits, targets in zip(b.x[..., 0].long().tolist(), b.y.tolist(), strict=True):
        assert targets == [int(t > 0 and bits[t] == bits[t - 1] == 1) for t in range(T)]
    assert b.x.shape == (40, T, 1) and (b.mask == 1).all()
    assert hand_built_repeated_ones(b) == 1.0
    assert hand_built_repeated_ones(b._replace(y=1 - b.y)) == 0.0


def test_adding_target_is_the_sum_of_the_two_marked_values() -> None:
    T = 20
    b = adding_batch(100, T, gen())
    values, markers = b.x[..., 0], b.x[..., 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, : T // 2].sum(1) == 1).all() and (markers[:, T // 2 :].sum(1) == 1).all()
    for n in range(100):
        i, j = markers[n].nonzero().flatten().tolist()
        assert b.y[n, -1, 0] == pytest.approx(float(values[n, i] + values[n, j]))
    assert b.mask.sum() == 100 and (b.mask[:, -1] == 1).all()
    baseline = float(((adding_batch(20_000, T, gen(1)).y[:, -1, 0] - 1) ** 2).mean())
    assert baseline == pytest.approx(1 / 6, abs=0.01)


def test_copy_recalls_the_symbols_after_the_delay() -> None:
    T = 7
    b = copy_batch(30, T, gen())
    ids = b.x.argmax(-1)
    assert ids.shape == (30, COPY_LENGTH + T + COPY_LENGTH)
    symbols = ids[:, :COPY_LENGTH]
    assert (symbols < SYMBOLS).all()
    assert (ids[:, COPY_LENGTH : COPY_LENGTH + T - 1] == SYMBOLS).all()  # blanks
    assert (ids[:, COPY_LENGTH + T - 1] == SYMBOLS + 1).all()  # go marker
    assert torch.equal(b.y[:, -COPY_LENGTH:], symbols)
    assert b.mask[:, -COPY_LENGTH:].all() and b.mask.sum() == 30 * COPY_LENGTH


def test_reverse_targets_are_the_inputs_reversed() -> None:
    T = 6
    b = reverse_batch(10, T, gen())
    ids = b.x.argmax(-1)
    assert ids.shape == (10, 2 * T + 1) and (ids[:, T] == SYMBOLS + 1).all()
    for n in range(10):
        assert b.y[n, T + 1 :].tolist() == ids[n, :T].tolist()[::-1]
    assert b.mask.sum() == 10 * T


def test_lstm_learns_8_bit_addition_and_generalises_to_64_bits() -> None:
    result = train_task("binary-addition", cell="lstm", optimizer="adam", hidden=16, steps=600, seed=0)
    assert result.solved, result.metrics
    assert result.metrics["64-bit"] >= 0.99


def test_a_task_that_keeps_diverging_ends_with_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tasks train in the shared loop: a NaN loss rolls back (halving the rate) until the limit."""
    from rnnlab.lab import long_range

    real = long_range.masked_loss
    monkeypatch.setattr(long_range, "masked_loss", lambda *args: real(*args) * float("nan"))
    with pytest.raises(RnnlabError, match=r"^training kept diverging \(nan\) after 8 rollbacks; lower --lr$"):
        train_task("copy", length=3, hidden=4, steps=50)


def test_cli_runs_a_task(capsys: pytest.CaptureFixture[str]) -> None:
    main(["task", "adding", "--length", "5", "--steps", "2", "--hidden", "4", "--cell", "gru"])
    out = capsys.readouterr().out
    assert "step     2" in out and "not solved" in out


def test_cli_rejects_an_unknown_optimizer(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["task", "copy", "--optimizer", "lbfgs"])
    assert exit_info.value.code == 2 and "unknown optimizer" in capsys.readouterr().err
