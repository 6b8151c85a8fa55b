"""Echo state networks: the reservoir as configured, the readout as least squares, and the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.esn.reservoir import (
    EchoStateNetwork,
    ESNConfig,
    nrmse,
    ridge_cv,
    ridge_solve,
    spectral_radius,
)


def tiny(**overrides) -> ESNConfig:
    return ESNConfig(**{"input_size": 1, "output_size": 1, "hidden_size": 50, "washout": 20, **overrides})


@pytest.mark.parametrize(("radius", "sparsity"), [(0.9, 0.9), (1.3, 0.0), (0.1, 0.5)])
def test_spectral_radius_is_the_requested_one(radius: float, sparsity: float) -> None:
    esn = EchoStateNetwork(tiny(hidden_size=80, spectral_radius=radius, sparsity=sparsity, layers=2))
    for r in esn.reservoirs:
        assert spectral_radius(r.W) == pytest.approx(radius, abs=1e-6)
        zeros = (r.W == 0).double().mean().item()
        assert zeros == pytest.approx(sparsity, abs=0.05)


@pytest.mark.parametrize("sparsity", [0.0, 0.9, 0.98])
def test_large_reservoirs_get_their_radius_from_arpack_as_exact_as_lapack(sparsity: float) -> None:
    # 250 units take the ARPACK path; numpy's full eigendecomposition is the independent check.
    esn = EchoStateNetwork(tiny(hidden_size=250, spectral_radius=1.25, sparsity=sparsity, seed=3))
    W = esn.reservoirs[0].W.numpy()
    assert np.abs(np.linalg.eigvals(W)).max() == pytest.approx(1.25, abs=1e-6)
    g = torch.Generator().manual_seed(int(sparsity * 100))
    A = torch.randn(200, 200, generator=g, dtype=torch.float64) * (torch.rand(200, 200, generator=g) >= sparsity)
    assert spectral_radius(A) == pytest.approx(np.abs(np.linalg.eigvals(A.numpy())).max(), rel=1e-9)


def test_spectral_radius_of_a_zero_and_a_diagonal_matrix() -> None:
    assert spectral_radius(torch.zeros(200, 200)) == 0  # the Krylov space collapses at once: LAPACK answers
    D = torch.diag(torch.linspace(-2, 1, 200, dtype=torch.float64))
    assert spectral_radius(D) == pytest.approx(2, rel=1e-9)


def test_ridge_readout_equals_lstsq_on_the_augmented_design_matrix() -> None:
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(60, 12, generator=g, dtype=torch.float64)
    Y = torch.randn(60, 3, generator=g, dtype=torch.float64)
    for ridge in (0.0, 1e-3, 10.0):
        # min ‖Y − Z W‖² + ridge ‖W‖²  is ordinary least squares on [Z; √ridge I] against [Y; 0].
        Z_aug = np.vstack([Z.numpy(), np.sqrt(ridge) * np.eye(12)])
        Y_aug = np.vstack([Y.numpy(), np.zeros((12, 3))])
        expected = np.linalg.lstsq(Z_aug, Y_aug, rcond=None)[0].T
        np.testing.assert_allclose(ridge_solve(Z, Y, ridge).numpy(), expected, rtol=1e-9, atol=1e-12)


def test_fitted_readout_is_ridge_on_states_with_bias_and_input() -> None:
    u = torch.sin(torch.arange(300, dtype=torch.float64) * 0.2)[:, None]
    esn = EchoStateNetwork(tiny(ridge=1e-4)).fit(u[:-1], u[1:])
    Z, Y = esn.design_matrix(u[:-1], u[1:])
    assert Z.shape == (299 - 20, 1 + 1 + 50)
    assert torch.equal(Z[:, 0], torch.ones(len(Z), dtype=torch.float64))  # the bias column
    assert torch.equal(Z[:, 1:2], u[20:-1])  # the input itself
    Z_aug = np.vstack([Z.numpy(), 1e-2 * np.eye(Z.shape[1])])
    Y_aug = np.vstack([Y.numpy(), np.zeros((Z.shape[1], 1))])
    np.testing.assert_allclose(esn.W_out.numpy(), np.linalg.lstsq(Z_aug, Y_aug, rcond=None)[0].T, atol=1e-8)


def test_cross_validation_prefers_a_small_ridge_for_clean_linear_data_and_a_large_one_for_noise() -> None:
    g = torch.Generator().manual_seed(1)
    Z = torch.randn(200, 20, generator=g, dtype=torch.float64)
    clean = Z @ torch.randn(20, 1, generator=g, dtype=torch.float64)
    ridges = [1e-8, 1e-2, 1e2, 1e4]
    assert ridge_cv(Z, clean, ridges)[0] == 1e-8
    assert ridge_cv(Z, torch.randn(200, 1, generator=g, dtype=torch.float64), ridges)[0] >= 1e2


def test_tiny_esn_solves_a_delayed_copy_task() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.rand(1200, 2, generator=g, dtype=torch.float64) * 2 - 1
    delay = 3
    y = torch.cat([torch.zeros(delay, 2, dtype=torch.float64), u[:-delay]])  # y_t = u_{t−3}, both channels
    esn = EchoStateNetwork(tiny(input_size=2, output_size=2, hidden_size=100, spectral_radius=0.9, input_scaling=0.3))
    esn.fit(u[:1000], y[:1000], ridge="cv")
    _, state = esn.run(u[:1000])  # carry the state: the first test targets are the last training inputs
    out, _ = esn.run(u[1000:], state)
    assert nrmse(out, y[1000:]) < 0.05
    assert nrmse(torch.zeros_like(out), y[1000:]) > 0.9  # the score itself is not trivially small


def test_deep_esn_runs_and_feeds_all_layers_to_the_readout() -> None:
    u = torch.sin(torch.arange(400, dtype=torch.float64) * 0.3)[:, None]
    esn = EchoStateNetwork(tiny(layers=3, hidden_size=30)).fit(u[:-1], u[1:], ridge=1e-8)
    assert esn.W_out.shape == (1, 1 + 1 + 3 * 30)
    assert nrmse(esn.run(u[:-1])[0][20:], u[21:]) < 1e-3


def test_generate_continues_a_sine_on_its_own_outputs_and_matches_a_driven_run() -> None:
    u = torch.sin(torch.arange(700, dtype=torch.float64) * 0.2)[:, None]
    esn = EchoStateNetwork(tiny(hidden_size=100)).fit(u[:499], u[1:500], ridge=1e-9)
    _, state = esn.run(u[:500])
    generated = esn.generate(100, state)
    assert nrmse(generated, u[501:601]) < 0.01
    # feeding the same outputs back as inputs by hand gives the same numbers: the step and the loop agree
    driven, _ = esn.run(torch.cat([state.y[None], generated[:-1]]), state)
    torch.testing.assert_close(driven, generated, rtol=1e-10, atol=1e-12)


def test_feedback_teacher_forced_run_equals_free_run_when_the_teacher_is_its_own_output() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.rand(300, 1, generator=g, dtype=torch.float64)
    y = torch.sin(torch.cumsum(0.1 + 0.2 * u, 0))
    esn = EchoStateNetwork(tiny(feedback=True, noise=1e-4)).fit(u, y, ridge=1e-6)
    free, _ = esn.run(u[:50])
    forced, _ = esn.run(u[:50], teacher=free)  # the hoisted (teacher) path with the free run's outputs
    torch.testing.assert_close(forced, free, rtol=1e-9, atol=1e-12)


def test_save_and_load_give_identical_predictions(tmp_path: Path) -> None:
    u = torch.sin(torch.arange(300, dtype=torch.float64) * 0.25)[:, None]
    esn = EchoStateNetwork(tiny(layers=2, feedback=True, bias_scaling=0.3, dtype="float32")).fit(u[:-1], u[1:])
    esn.save(tmp_path / "esn")
    config = json.loads((tmp_path / "esn" / "config.json").read_text())
    assert config["kind"] == "esn"
    assert config["model"]["layers"] == 2
    assert "rnnlab_version" in config
    loaded = EchoStateNetwork.load(tmp_path / "esn")
    assert torch.equal(loaded.run(u)[0], esn.run(u)[0])
    _, state = esn.run(u[:100])
    assert torch.equal(loaded.generate(20, state), esn.generate(20, state))


def test_given_reservoir_matrices_replace_the_drawn_ones() -> None:
    u = torch.sin(torch.arange(300, dtype=torch.float64) * 0.25)[:, None]
    donor = EchoStateNetwork(tiny(feedback=True, bias_scaling=0.3, seed=7))
    taker = EchoStateNetwork(tiny(feedback=True, bias_scaling=0.3, seed=0), reservoirs=donor.reservoirs)
    assert not torch.equal(EchoStateNetwork(tiny(feedback=True, seed=0)).reservoirs[0].W, donor.reservoirs[0].W)
    donor.fit(u[:-1], u[1:])
    taker.fit(u[:-1], u[1:])
    assert torch.equal(taker.run(u)[0], donor.run(u)[0])
    with pytest.raises(RnnlabError, match="do not match the config"):
        EchoStateNetwork(tiny(hidden_size=40), reservoirs=donor.reservoirs)
    with pytest.raises(RnnlabError, match="do not match the config"):  # the config has no feedback weights
        EchoStateNetwork(tiny(), reservoirs=donor.reservoirs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"spectral_radius": 0.0}, "spectral radius must be > 0"),
        ({"spectral_radius": -1.0}, "spectral radius must be > 0"),
        ({"sparsity": 1.0}, "sparsity must be in [0, 1)"),
        ({"sparsity": -0.1}, "sparsity must be in [0, 1)"),
        ({"leak_rate": 0.0}, "leak rate must be in (0, 1]"),
        ({"hidden_size": 0}, "reservoir size must be >= 1"),
        ({"ridge": float("nan")}, "ridge must be >= 0"),
        ({"dtype": "float16"}, "dtype must be one of"),
    ],
)
def test_bad_hyperparameters_are_one_line_errors(overrides: dict, message: str) -> None:
    with pytest.raises(RnnlabError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        tiny(**overrides)


def test_bad_data_is_a_one_line_error() -> None:
    esn = EchoStateNetwork(tiny())
    u = torch.zeros(100, 1, dtype=torch.float64)
    with pytest.raises(RnnlabError, match="NaN"):
        esn.fit(torch.cat([u, torch.full((1, 1), float("nan"))]), torch.zeros(101, 1))
    with pytest.raises(RnnlabError, match="shape"):
        esn.fit(torch.zeros(100, 3), torch.zeros(100, 1))
    with pytest.raises(RnnlabError, match="not longer than the washout"):
        esn.fit(u[:10], u[:10])
    with pytest.raises(RnnlabError, match="call fit first"):
        esn.run(u)


def test_loading_a_broken_run_directory_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(RnnlabError, match="not a directory"):
        EchoStateNetwork.load(tmp_path / "missing")
    (tmp_path / "config.json").write_text('{"kind": "lm", "model": {}}')
    with pytest.raises(RnnlabError, match="not an echo state network"):
        EchoStateNetwork.load(tmp_path)
    u = torch.sin(torch.arange(100, dtype=torch.float64))[:, None]
    EchoStateNetwork(tiny()).fit(u[:-1], u[1:]).save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["hidden_size"] = 60
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(RnnlabError, match=r"does not match config\.json"):
        EchoStateNetwork.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RnnlabError, match="corrupt"):
        EchoStateNetwork.load(tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu() -> None:
    u = torch.sin(torch.arange(300, dtype=torch.float64) * 0.25)[:, None]
    cpu = EchoStateNetwork(tiny()).fit(u[:-1], u[1:])
    gpu = EchoStateNetwork(tiny(), device="cuda").fit(u[:-1], u[1:])
    torch.testing.assert_close(gpu.run(u)[0].cpu(), cpu.run(u)[0], rtol=1e-7, atol=1e-9)
