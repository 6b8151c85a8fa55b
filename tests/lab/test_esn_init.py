"""ESN initialisation: the requested spectral radius on every recurrent gate block, sparsity, zero biases."""

from __future__ import annotations

import pytest
import torch

from rnnlab.lab.long_range import SequenceModel
from rnnlab.nn.init import esn_init_, spectral_radius
from rnnlab.nn.recurrent import Recurrent


@pytest.mark.parametrize(("cell", "fused"), [("rnn-tanh", True), ("rnn-tanh", False), ("lstm", True), ("gru", False)])
def test_spectral_radius_is_the_requested_one(cell: str, fused: bool) -> None:
    layer = Recurrent(cell, 3, 20, num_layers=2, fused=fused).double()
    esn_init_(layer, 1.1, generator=torch.Generator().manual_seed(0))
    recurrent = [p for name, p in layer.named_parameters() if "weight_hh" in name]
    assert len(recurrent) == 2
    for W in recurrent:
        for block in W.view(-1, 20, 20):
            assert spectral_radius(block) == pytest.approx(1.1, abs=1e-6)
    for name, p in layer.named_parameters():
        if "bias" in name:
            assert (p == 0).all(), name


def test_float32_weights_hit_the_radius_and_sparsity() -> None:
    model = SequenceModel("rnn-tanh", 2, 50, 1)
    readout_bias = model.readout.bias.clone()
    esn_init_(model.rnn, 0.9, sparsity=0.8, input_scaling=2.0, generator=torch.Generator().manual_seed(1))
    W = model.rnn.layers[0].weight_hh
    assert spectral_radius(W) == pytest.approx(0.9, abs=1e-6)
    assert float((W == 0).float().mean()) == pytest.approx(0.8, abs=0.05)
    assert torch.equal(model.readout.bias, readout_bias)  # only the recurrent layers change


def test_rejects_a_module_without_recurrent_weights() -> None:
    with pytest.raises(ValueError, match="no recurrent weight"):
        esn_init_(torch.nn.Linear(3, 3))
