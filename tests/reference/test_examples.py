"""The lectures' worked examples, and the gradient-flow demonstration."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.reference.examples import repeated_ones_detector, train_hello, train_repeated_ones, worked_example
from rnnlab.reference.gradient_flow import gradient_norms


def test_three_hidden_four_input_worked_example():
    h1, y1 = worked_example()
    assert np.round(h1, 2).tolist() == [0.54, 0.20, 0.72]
    assert np.round(y1, 2).tolist() == [0.32, 0.21, 0.24, 0.22]


def test_hand_built_relu_rnn_detects_repeated_ones():
    assert repeated_ones_detector([0, 1, 0, 1, 1, 1, 0, 1, 1]) == [0, 0, 0, 0, 1, 1, 0, 0, 1]


def test_rnn_trained_from_random_weights_learns_repeated_ones():
    _, accuracy = train_repeated_ones(seed=0)
    assert accuracy == 1.0


def test_hello_model_learns_ello():
    _, answer = train_hello(seed=0)
    assert answer == "ello"


@pytest.mark.parametrize("nonlinearity", ["linear", "relu", "tanh"])
def test_gradients_vanish_below_one_and_only_explode_above_it(nonlinearity: str):
    assert gradient_norms(nonlinearity, 0.9)[60] < 1e-2
    assert gradient_norms(nonlinearity, 2.0)[60] > 1e2


def test_linear_recurrence_gradient_is_rho_to_the_k():
    assert gradient_norms("linear", 1.1, T=50)[50] == pytest.approx(1.1**50, rel=1e-9)
