"""Mackey-Glass: our integrator against a finer one, and a small ESN that predicts the series freely."""

from __future__ import annotations

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.esn.mackey_glass import HORIZON, default_config, mackey_glass, run


def test_integration_converges_and_stays_on_the_attractor() -> None:
    coarse = mackey_glass(300, dt=0.1, discard=0)
    fine = mackey_glass(300, dt=0.02, discard=0)
    assert (coarse - fine).abs()[:150].max() < 1e-4  # a five times finer step barely moves the series
    series = mackey_glass(2000)
    assert 0.2 < series.min() < 0.6 < 1.2 < series.max() < 1.4  # the familiar τ=17 attractor
    assert series.std() == pytest.approx(0.23, abs=0.03)


def test_bad_parameters_are_errors() -> None:
    with pytest.raises(RnnlabError, match="multiples of dt"):
        mackey_glass(10, tau=17.05)
    with pytest.raises(RnnlabError, match="tau > 0"):
        mackey_glass(10, tau=0)


def test_small_esn_predicts_84_steps_freely() -> None:
    series = mackey_glass(1500 + 600 + 1)
    result = run(default_config(hidden_size=200), train_steps=1500, test_steps=600, trials=5, series=series, ridge=1e-6)
    assert result.one_step_nrmse < 5e-3
    assert result.nrmse_84 < 0.2
    assert result.free_run.shape == result.free_run_target.shape == (HORIZON,)
    persistence = (series[1:] - series[:-1]).pow(2).mean().sqrt() / series.std()
    assert result.one_step_nrmse < persistence / 10  # far better than "tomorrow equals today"
