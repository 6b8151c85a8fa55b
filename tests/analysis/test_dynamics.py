"""Fixed points, Lyapunov exponents and state machines against independent computations; `probe dynamics`
end to end."""

from __future__ import annotations

import itertools
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from rnnlab import rundir
from rnnlab.analysis import automata, dynamics
from rnnlab.analysis.automata import Automaton
from rnnlab.analysis.gradients import set_spectral_radius, untrained
from rnnlab.config import ModelConfig
from rnnlab.reference.examples import repeated_ones_detector

X_STAR = brentq(lambda x: math.tanh(2 * x) - x, 0.5, 1.0)  # the nonzero fixed point of x -> tanh(2x)


def _as_set(points: list[dynamics.FixedPoint]) -> dict[tuple[float, ...], str]:
    return {tuple(np.round(p.h, 5)): p.kind for p in points}


def test_fixed_points_of_a_diagonal_tanh_network() -> None:
    """h' = tanh(diag(2, 2) h): each unit has 0 (slope 2: repels) and ±x* with x* = tanh(2x*) (slope
    2(1 − x*²) < 1: attracts), so 9 fixed points: 0 unstable, (±x*, ±x*) stable, the other four saddles."""
    W = torch.diag(torch.tensor([2.0, 2.0], dtype=torch.float64))
    starts = torch.rand(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2.4 - 1.2
    points = dynamics.find_fixed_points(lambda h, x: torch.tanh(h @ W.T), torch.zeros(1), starts)
    assert len(points) == 9 and all(p.status == "fixed" for p in points)
    expected = {}
    for a, b in itertools.product((-X_STAR, 0.0, X_STAR), repeat=2):
        zeros = (a == 0) + (b == 0)
        expected[(a, b)] = ["stable", "saddle", "unstable"][zeros]
    for point in points:
        key = min(expected, key=lambda e: np.abs(np.array(e) - point.h).max())
        assert np.abs(np.array(key) - point.h).max() < 1e-6, (point.h, key)
        assert point.kind == expected.pop(key)
        slopes = sorted(2.0 if v == 0 else 2 * (1 - X_STAR**2) for v in key)
        assert np.allclose(sorted(np.abs(point.eigenvalues)), slopes, atol=1e-6)
    assert not expected


def _sample(net: dynamics.Network, n: int = 64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    visited = net.run(torch.randint(len(net.symbols), (4, 60), generator=generator))
    return dynamics.sample_starts(visited.reshape(-1, visited.shape[-1]), n, 0.05, generator)


@pytest.mark.parametrize(("name", "w"), [("parity", [1.0, 1.0]), ("addition", [0.0, 1.0, 0.0])])
def test_builtin_fixed_points_match_a_one_dimensional_root_search(name: str, w: list[float]) -> None:
    """The hand-built sigmoid networks read their state only through s = w · h (parity: h1 + h2; the adder: the
    carry h2), so h* = F(s*) where s* solves w · F(s) = s, found here by bisection on a grid; the Jacobian has
    rank one, its nonzero eigenvalue d(w · F)/ds at s*."""
    net = dynamics.BUILTINS[name].network()
    w_ = torch.tensor(w, dtype=torch.float64)
    for a, symbol in enumerate(net.symbols):
        x = net.inputs[a]

        def image(s: float, x: torch.Tensor = x) -> torch.Tensor:
            return net.step((s * w_ / (w_ @ w_))[None], x[None])[0]

        def g(s: float) -> float:
            return float(w_ @ image(s)) - s

        grid = np.linspace(-0.5, 2.5, 3000)  # no grid point on a root
        values = [g(s) for s in grid]
        roots = [brentq(g, lo, hi, xtol=1e-14) for lo, hi, u, v in
                 zip(grid, grid[1:], values, values[1:], strict=False) if u * v < 0]  # fmt: skip
        points = dynamics.find_fixed_points(net.step, x, _sample(net))
        assert len(points) == len(roots) >= 1, (symbol, [p.h for p in points], roots)
        for s in roots:
            h = image(s).numpy()
            match = min(points, key=lambda p: np.abs(p.h - h).max())
            assert np.abs(match.h - h).max() < 1e-6 and match.status == "fixed"
            slope = (float(w_ @ image(s + 1e-6)) - float(w_ @ image(s - 1e-6))) / 2e-6
            assert abs(np.abs(match.eigenvalues).max() - abs(slope)) < 1e-4
            assert match.kind == ("stable" if abs(slope) < 1 else "saddle")  # the other eigenvalue is 0


def test_repeated_ones_fixed_points_and_its_bias_unit() -> None:
    """Under a constant 0 the detector sits at (0, 0, 1), under 1 at (1, 1, 1); h3 = 1 is a constant unit
    (w_hh[2, 2] = 1), an eigenvalue 1 along a line of fixed points: marginal, not stable."""
    net = dynamics.repeated_ones_network()
    for symbol, expected in (("0", [0.0, 0.0]), ("1", [1.0, 1.0])):
        points = dynamics.find_fixed_points(net.step, net.inputs[net.symbol(symbol)], _sample(net))
        assert len(points) >= 1 and all(p.status == "fixed" and p.kind == "marginal" for p in points)
        assert all(np.allclose(p.h[:2], expected, atol=1e-9) for p in points)
        assert np.allclose(np.abs(points[0].eigenvalues), [1.0, 0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.2])
def test_lyapunov_exponent_of_a_linear_map_is_log_spectral_radius(radius: float) -> None:
    A = torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    A *= radius / float(torch.linalg.eigvals(A).abs().max())
    xs = torch.zeros(2, 1500, 1, dtype=torch.float64)  # the state grows as radius^T: float64 holds 1.2^1500
    exponents = dynamics.lyapunov(lambda h, x: h @ A.T, xs, torch.ones(2, 6, dtype=torch.float64))
    assert np.allclose(exponents, math.log(radius), atol=1e-2), exponents


def test_sweep_runs_rnnlabs_rnn_tanh_and_crosses_into_chaos() -> None:
    """The batched sweep step is the rnn-tanh cell's own step (as `lm_network` runs it) with W_hh scaled; the
    exponent is negative at small radius and positive at large."""
    config = ModelConfig(vocab_size=7, cell="rnn-tanh", layers=1, hidden=24, embed=5)
    model = untrained(config, "rnn-tanh", 0)
    set_spectral_radius(model, 1.7)
    net = dynamics.lm_network(model, tuple("abcdefg"))
    W_ih, W_hh, b_ih, b_hh = (w.detach().double() for w in model.rnn.layers[0].gate_weights())
    step = dynamics.sweep_step(W_ih, W_hh / 1.7, b_ih + b_hh, (0.3, 1.7))
    h = torch.randn(2, 24, dtype=torch.float64)
    x = net.inputs[torch.tensor([1, 4])]
    both = step(torch.cat([h, h]), torch.cat([x, x]))
    assert torch.allclose(both[2:], net.step(h, x), atol=1e-12)
    tokens = torch.randint(7, (2, 300), generator=torch.Generator().manual_seed(0))
    sweep = dynamics.spectral_sweep(config, (0.5, 3.0), tokens)
    assert sweep[0.5] < -0.1 and sweep[3.0] > 0.1
    assert dynamics.threshold({0.5: -0.4, 1.0: -0.1, 1.5: 0.1, 2.0: 0.3}) == pytest.approx(1.25)


def test_planar_examples_oscillate_and_settle() -> None:
    examples = dynamics.planar_examples()
    ring, point = examples["oscillation"], examples["point attractor"]
    radii = np.linalg.norm(ring.trajectories[:, -20:], axis=-1)
    assert radii.min() > 0.5 and abs(ring.exponent) < 0.01  # a closed curve: neutral along it
    assert np.linalg.norm(point.trajectories[:, -1], axis=-1).max() < 0.01
    assert point.exponent == pytest.approx(math.log(0.9), abs=1e-3)  # tanh'(0) = 1: the linear part's radius


def _all_strings(symbols: int, longest: int) -> list[np.ndarray]:
    """Every string of each length 1..longest, one (symbols^n, n) array per length."""
    return [np.array(list(itertools.product(range(symbols), repeat=n))) for n in range(1, longest + 1)]


def test_minimisation_merges_equivalent_states() -> None:
    """Parity written with six states: two copies of 'even', three of 'odd', and one no string reaches."""
    machine = Automaton(
        ("0", "1"),
        np.array([[1, 2], [0, 3], [4, 1], [2, 0], [3, 1], [5, 0]]),
        np.array([0, 0, 1, 1, 1, 0]),
    )
    small = automata.minimise(machine)
    assert small.size == 2 and automata.isomorphic(small, automata.parity())
    for strings in _all_strings(2, 8):
        assert np.array_equal(small.run(strings), machine.run(strings))
    assert automata.minimise(automata.no_three_a()).size == 4


def test_counterexample_is_a_shortest_difference() -> None:
    no_aa = Automaton(("a", "b"), np.array([[1, 0], [2, 0], [2, 2]]), np.array([1, 1, 0]))
    assert automata.counterexample(no_aa, automata.no_three_a()) == ["a", "a"]
    assert automata.counterexample(automata.no_three_a(), automata.minimise(automata.no_three_a())) is None


@pytest.mark.parametrize("name", ["repeated-ones", "parity", "addition"])
def test_machine_of_each_hand_built_network_is_the_true_one(name: str) -> None:
    report = dynamics.builtin_machine(name)
    assert report.equivalent and automata.isomorphic(report.extraction.machine, report.truth)
    assert report.network_accuracy == report.machine_accuracy == 1.0
    if name == "repeated-ones":  # against the reference network, on every string up to length 10
        assert report.extraction.machine.size == 3
        for strings in _all_strings(2, 10):
            reference = np.array([repeated_ones_detector(row) for row in strings.tolist()])
            assert np.array_equal(report.extraction.machine.run(strings), reference)


def test_machine_of_a_trained_network() -> None:
    report = dynamics.trained_machine("no-aaa", steps=300)
    assert report.equivalent and report.extraction.machine.size == 4
    assert report.machine_accuracy == 1.0 and report.network_accuracy > 0.99


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) > 20_000
    return struct.unpack(">II", data[16:24])


def test_probe_dynamics_end_to_end(probe_run: Path, tmp_path: Path, cli) -> None:
    plot, report = tmp_path / "d.png", tmp_path / "d.html"
    code, out, err = cli(
        "probe", "dynamics", "--builtin", "parity", "--plot", plot, "--report", report,
        "--language", "", "--steps", "80", "--starts", "16", "--rho", "0.5,3",
    )  # fmt: skip
    assert code == 0, err
    assert "2 fixed stable, 1 fixed saddle" in out and "machine of parity: 2 states (true 2)" in out
    width, height = _png_size(plot)
    assert width > 800 and height > 800
    page = report.read_text()
    for section in ('id="fixed-points"', 'id="lyapunov"', 'id="automata"', "data:image/png;base64,"):
        assert section in page
    assert page.count("<td>fixed</td>") == 3 and "(chaotic)" in page and "equivalent to the true machine" in page
    code, out, err = cli(
        "probe", "dynamics", probe_run, "--input-token", "\\n", "--plot", plot, "--report", report,
        "--language", "parity", "--max-steps", "60", "--steps", "80", "--starts", "16", "--rho", "0.5,1,3",
    )  # fmt: skip
    assert code == 0, err
    assert "points under '\\n'" in out and "machine of parity" in out
    page = report.read_text()
    assert "lstm language model" in page and "<h3>parity</h3>" in page and "training text" in page
    _png_size(plot)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["{missing}"], "missing"),
        (["{tagrun}"], "tag"),
        (["--builtin", "xor"], "unknown --builtin"),
        (["{run}", "--input-token", "§"], "not in the vocabulary"),
        (["--builtin", "parity", "--input-token", "2"], "not in the vocabulary"),
        (["{run}", "--builtin", "parity"], "one of them"),
        ([], "one of them"),
        (["--builtin", "parity", "--language", "dyck"], "--language takes"),
        (["--builtin", "parity", "--rho", "1,x"], "--rho takes"),
        (["--builtin", "parity", "--steps", "10"], "--steps must be"),
    ],
)
def test_probe_dynamics_errors_are_one_line(probe_run: Path, tmp_path: Path, cli, args: list[str], match: str) -> None:
    tagrun = tmp_path / "tagrun"
    tagrun.mkdir()
    rundir.write_run_config(tagrun, "tag", {"cell": "gru"}, {"vocab": [], "tags": []})
    plot, report = tmp_path / "d.png", tmp_path / "d.html"
    filled = [a.format(run=probe_run, missing=tmp_path / "missing", tagrun=tagrun) for a in args]
    code, _, err = cli("probe", "dynamics", "--plot", plot, "--report", report, "--language", "", *filled)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and match in err, err
    assert not plot.exists() and not report.exists()
