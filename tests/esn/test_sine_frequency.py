"""The tunable frequency generator: data as specified, and a small ESN that follows unseen frequencies."""

from __future__ import annotations

from pathlib import Path

import torch

from rnnlab.esn.sine_frequency import default_config, frequency_sequence, plot, run


def test_frequency_sequence_is_piecewise_constant_and_sets_the_sine_frequency() -> None:
    u, y = frequency_sequence(2000, torch.Generator().manual_seed(0), hold=(100, 200), omega=(0.1, 0.4))
    assert u.shape == y.shape == (2000, 1)
    changes = (u[1:] != u[:-1]).nonzero()[:, 0]
    assert 2000 // 200 - 1 <= len(changes) <= 2000 // 100
    assert (changes[1:] - changes[:-1]).min() >= 100
    # Any sinusoid of frequency ω obeys y_{t+1} + y_{t−1} = 2 cos(ω) y_t; ω = ω_min + u (ω_max − ω_min).
    steady = (u[2:, 0] == u[1:-1, 0]) & (u[1:-1, 0] == u[:-2, 0])
    omega = 0.1 + 0.3 * u[1:-1, 0]
    residual = y[2:, 0] + y[:-2, 0] - 2 * torch.cos(omega) * y[1:-1, 0]
    assert residual[steady].abs().max() < 1e-12
    assert residual[~steady].abs().max() > 1e-3  # and the test would notice a wrong frequency
    assert y.abs().max() <= 1


def test_small_esn_generates_unseen_frequencies_and_plots(tmp_path: Path) -> None:
    result = run(default_config(hidden_size=300), train_steps=5000, test_steps=500, test_sequences=3)
    assert result.teacher_forced_nrmse < 0.01
    assert result.test_nrmse < 0.1  # free-running on its own outputs, on frequency sequences it never saw
    png = plot(result, tmp_path / "sine.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
