"""Echo state networks, rnnlab against reservoirpy: same data, same reservoir size and hyperparameters.

Both libraries build a reservoir with the same weight distributions (uniform ±1 recurrent weights at the same
density, rescaled to the same spectral radius; uniform input weights and biases), harvest states single-threaded
in float64, and solve the same ridge regression with the same washout. Each library draws its own random numbers,
so the reservoirs are statistically alike, not identical: the table reports several seeds.

    Mackey-Glass τ=17   1000 units, 4000 training steps, one-step predictor run freely; NRMSE at step 84 over
                        20 trials, each warmed up from rest on the 300 true steps before it.
    sine-frequency      300 units with output feedback, teacher-forced training on one 5000-step sequence;
                        NRMSE free-running on 5 unseen 1000-step sequences after a 100-step teacher-forced warm-up.

Setup, once (reservoirpy lives only in this benchmark's environment):

    python3 -m venv benchmarks/.venv-esn
    benchmarks/.venv-esn/bin/pip install -c constraints.txt reservoirpy -e .

Run:  benchmarks/.venv-esn/bin/python benchmarks/esn_vs_reservoirpy.py [--seeds 3] [--first-seed 0] [--repeats 3]
          [--tasks mg sine] [--sine-feedback 0.1] [--sine-leak 0.3]

The row "rnnlab on reservoirpy's matrices" runs rnnlab on the matrices reservoirpy drew for the seed: the same
reservoir in both libraries, so it separates the libraries' computation from their random draws.

Times: "build" draws the matrices and rescales W to its spectral radius; "fit" collects the states and solves
the readout. The libraries take turns, --repeats rounds per seed, so that both meet the same load from other
work; each time is the fastest of its rounds, and the ratios rnnlab / reservoirpy compare the same seed and run.
The NRMSE does not depend on the round.
"""

from __future__ import annotations

import argparse
import math
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # both libraries single-threaded: a fair, repeatable comparison

# The imports come after the thread settings, which numpy's BLAS reads when it loads.
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402

from rnnlab.esn.mackey_glass import mackey_glass  # noqa: E402
from rnnlab.esn.reservoir import EchoStateNetwork, ESNConfig, Reservoir  # noqa: E402
from rnnlab.esn.sine_frequency import frequency_sequence  # noqa: E402

torch.set_num_threads(1)

MG = {"units": 1000, "sparsity": 0.9, "sr": 1.25, "input_scaling": 1.0, "bias": 0.2, "lr": 0.3, "ridge": 1e-9}
MG_TRAIN, MG_WASHOUT, MG_TRIALS, MG_WARM, HORIZON = 4000, 200, 20, 300, 84
SINE = {"units": 300, "sparsity": 0.9, "sr": 0.8, "input_scaling": 1.0, "bias": 1.0, "lr": 0.3, "ridge": 1e-4}
SINE["fb"] = 0.1  # feedback weights: uniform ±0.1
SAME = "rnnlab on reservoirpy's matrices"
SINE_TRAIN, SINE_WASHOUT, SINE_TEST, SINE_SEQS, SINE_WARM = 5000, 100, 1000, 5, 100


# ---- data: generated once, handed to both libraries as float64 numpy arrays ------------------------------------
def mg_data() -> tuple[np.ndarray, list[int]]:
    s = mackey_glass(MG_TRAIN + MG_WARM + MG_TRIALS * 100 + 1)
    z = ((s - s[:MG_TRAIN].mean()) / s[:MG_TRAIN].std()).numpy()[:, None]
    starts = [MG_TRAIN + MG_WARM + 100 * k for k in range(MG_TRIALS)]  # first predicted index of each trial
    return z, starts


def sine_data() -> tuple[tuple[np.ndarray, np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    g = torch.Generator().manual_seed(0)
    train = frequency_sequence(SINE_TRAIN, g)
    tests = [frequency_sequence(SINE_WARM + SINE_TEST, g) for _ in range(SINE_SEQS)]
    return (train[0].numpy(), train[1].numpy()), [(u.numpy(), y.numpy()) for u, y in tests]


def nrmse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - target) ** 2)) / target.std())


# ---- rnnlab --------------------------------------------------------------------------------------------------
def rnnlab_config(p: dict, seed: int, feedback: bool, washout: int, noise: float = 0.0) -> ESNConfig:
    return ESNConfig(
        input_size=1,
        output_size=1,
        hidden_size=p["units"],
        sparsity=p["sparsity"],
        spectral_radius=p["sr"],
        input_scaling=p["input_scaling"],
        bias_scaling=p["bias"],
        leak_rate=p["lr"],
        feedback=feedback,
        feedback_scaling=p.get("fb", 1.0),
        noise=noise,
        ridge=p["ridge"],
        washout=washout,
        seed=seed,
    )


def race(contenders: dict[str, tuple], repeats: int) -> dict[str, tuple[object, float, float]]:
    """Build and fit each library in turn, `repeats` rounds (same seed, same result each round).

    Per library: the model and its fastest build and fit. Alternating puts both libraries under the same load from
    other work on the machine; the minimum is the least disturbed.
    """
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    models: dict[str, object] = {}
    for _ in range(repeats):
        for name, (build, fit) in contenders.items():
            t0 = time.perf_counter()
            model = build()
            t1 = time.perf_counter()
            fit(model)
            times[name].append((t1 - t0, time.perf_counter() - t1))
            models[name] = model
    return {name: (models[name], *(min(column) for column in zip(*times[name], strict=True))) for name in contenders}


def rnnlab_mg(z: np.ndarray, seed: int) -> tuple:
    Z = torch.from_numpy(z)
    return (
        lambda: EchoStateNetwork(rnnlab_config(MG, seed, False, MG_WASHOUT)),
        lambda m: m.fit(Z[:MG_TRAIN], Z[1 : MG_TRAIN + 1]),
    )


def rnnlab_mg_score(esn: EchoStateNetwork, z: np.ndarray, starts: list[int]) -> dict:
    Z = torch.from_numpy(z)
    preds, truth = [], []
    for s in starts:
        _, state = esn.run(Z[s - 1 - MG_WARM : s])  # from rest; the last input is z[s-1], so state.y predicts z[s]
        ahead = torch.cat([state.y[None], esn.generate(HORIZON - 1, state)])[:, 0].numpy()
        preds.append(ahead)
        truth.append(z[s : s + HORIZON, 0])
    return _mg_scores(np.array(preds), np.array(truth), z[MG_TRAIN:].var())


def rnnlab_sine(train: tuple, seed: int, noise: float) -> tuple:
    return (
        lambda: EchoStateNetwork(rnnlab_config(SINE, seed, True, SINE_WASHOUT, noise)),
        lambda m: m.fit(torch.from_numpy(train[0]), torch.from_numpy(train[1])),
    )


def rnnlab_sine_score(esn: EchoStateNetwork, tests: list) -> dict:
    outs, targets = [], []
    for u, y in tests:
        u, y = torch.from_numpy(u), torch.from_numpy(y)
        _, state = esn.run(u[:SINE_WARM], teacher=y[:SINE_WARM])
        outs.append(esn.run(u[SINE_WARM:], state)[0].numpy())
        targets.append(y[SINE_WARM:].numpy())
    return {"nrmse": nrmse(np.concatenate(outs), np.concatenate(targets))}


# ---- reservoirpy ---------------------------------------------------------------------------------------------
def reservoirpy_esn(p: dict, seed: int, feedback: bool):
    from reservoirpy import ESN
    from reservoirpy.mat_gen import uniform
    from reservoirpy.nodes import Reservoir, Ridge

    reservoir = Reservoir(
        p["units"],
        lr=p["lr"],
        sr=p["sr"],
        # reservoirpy 0.4 feeds y_{t-1} back through Win, after u_t: one scale for each column
        input_scaling=[p["input_scaling"], p["fb"]] if feedback else p["input_scaling"],
        input_connectivity=1.0,
        rc_connectivity=1 - p["sparsity"],
        W=uniform(low=-1, high=1),
        Win=uniform(low=-1, high=1),
        bias=uniform(low=-p["bias"], high=p["bias"]),
        seed=seed,
    )
    # input_to_readout: like rnnlab's readout, it sees [1, u_t, x_t]
    return ESN(reservoir=reservoir, readout=Ridge(ridge=p["ridge"]), feedback=feedback, input_to_readout=True)


def reservoirpy_built(p: dict, seed: int, feedback: bool, x: np.ndarray, y: np.ndarray):
    esn = reservoirpy_esn(p, seed, feedback)
    esn.initialize(x[:1], y[:1])  # reservoirpy draws and rescales its matrices here
    return esn


def reservoirpy_mg(z: np.ndarray, seed: int) -> tuple:
    return (
        lambda: reservoirpy_built(MG, seed, False, z, z[1:]),
        lambda m: m.fit(z[:MG_TRAIN], z[1 : MG_TRAIN + 1], warmup=MG_WASHOUT),
    )


def reservoirpy_mg_score(esn, z: np.ndarray, starts: list[int]) -> dict:
    preds, truth = [], []
    for s in starts:
        esn.reset()
        y = esn.run(z[s - 1 - MG_WARM : s])[-1]  # the same warm-up: predicts z[s]
        ahead = [y]
        for _ in range(HORIZON - 1):
            y = esn.step(y)
            ahead.append(y)
        preds.append(np.array(ahead)[:, 0])
        truth.append(z[s : s + HORIZON, 0])
    return _mg_scores(np.array(preds), np.array(truth), z[MG_TRAIN:].var())


def reservoirpy_sine(train: tuple, seed: int) -> tuple:
    return (
        lambda: reservoirpy_built(SINE, seed, True, *train),
        lambda m: m.fit(train[0], train[1], warmup=SINE_WASHOUT),  # reservoirpy teacher-forces the feedback
    )


def reservoirpy_sine_score(esn, tests: list) -> dict:
    outs, targets = [], []
    for u, y in tests:
        esn.reset()
        for t in range(SINE_WARM):  # teacher-forced warm-up: the feedback buffer holds the true y_{t−1}
            if t:
                esn.feedback_buffers = {k: y[t - 1 : t].copy() for k in esn.feedback_buffers}
            esn.step(u[t])
        esn.feedback_buffers = {k: y[SINE_WARM - 1 : SINE_WARM].copy() for k in esn.feedback_buffers}
        outs.append(esn.run(u[SINE_WARM:]))
        targets.append(y[SINE_WARM:])
    return {"nrmse": nrmse(np.concatenate(outs), np.concatenate(targets))}


def on_reservoirpy_matrices(rp_esn, config: ESNConfig) -> EchoStateNetwork:
    """An rnnlab ESN on the matrices reservoirpy drew (its Win's second column is the feedback's): the same
    reservoir in both libraries, so any difference in NRMSE is the libraries' and not the random draw's."""
    r = rp_esn.reservoir
    W = torch.from_numpy(r.W.toarray() if hasattr(r.W, "toarray") else np.asarray(r.W))
    W_in = torch.from_numpy(np.asarray(r.Win, dtype=np.float64))
    b = torch.from_numpy(np.asarray(r.bias, dtype=np.float64).reshape(-1))
    W_fb = W_in[:, config.input_size :] if config.feedback else None
    return EchoStateNetwork(config, reservoirs=[Reservoir(W_in[:, : config.input_size], W.double(), b, W_fb)])


def _mg_scores(preds: np.ndarray, truth: np.ndarray, var: float) -> dict:
    """NRMSE at step 84 (Jaeger's measure) and over steps 1-84, normalised by the test series' variance."""
    return {
        "nrmse84": float(np.sqrt(np.mean((preds[:, -1] - truth[:, -1]) ** 2) / var)),
        "nrmse_1_84": float(np.sqrt(np.mean((preds - truth) ** 2) / var)),
    }


# ---- report --------------------------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, nproc {os.cpu_count()}, load average at start {load:.2f}"


def versions() -> str:
    import reservoirpy

    import rnnlab

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    return (
        f"rnnlab {rnnlab.__version__} (git {commit}), torch {torch.__version__}, reservoirpy {reservoirpy.__version__},"
        f" numpy {np.__version__}, single-threaded, float64"
    )


def summarise(rows: list[dict], key: str) -> str:
    values = [r[key] for r in rows]
    if key in ("build", "fit"):
        return "-" if math.isnan(values[0]) else f"{statistics.median(values):.2f}"
    return f"{statistics.median(values):.2e} ({min(values):.1e}–{max(values):.1e})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="reservoir seeds per library (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here")
    parser.add_argument("--repeats", type=int, default=3, help="timed build+fit runs per seed (the fastest counts)")
    parser.add_argument("--tasks", nargs="+", choices=["mg", "sine"], default=["mg", "sine"], help="which tasks")
    parser.add_argument("--sine-feedback", type=float, default=SINE["fb"], help="sine task: feedback weight scale")
    parser.add_argument("--sine-leak", type=float, default=SINE["lr"], help="sine task: leak rate")
    args = parser.parse_args()
    SINE.update(fb=args.sine_feedback, lr=args.sine_leak)
    print(machine())
    print(versions())
    z, starts = mg_data()
    train, tests = sine_data()
    results: dict[str, list[dict]] = {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        mg, sine = {}, {}
        if "mg" in args.tasks:
            mg = race({"rnnlab": rnnlab_mg(z, seed), "reservoirpy": reservoirpy_mg(z, seed)}, args.repeats)
        if "sine" in args.tasks:
            sine = race(
                {
                    "rnnlab": rnnlab_sine(train, seed, 0.0),
                    "rnnlab noise 1e-5": rnnlab_sine(train, seed, 1e-5),
                    "reservoirpy": reservoirpy_sine(train, seed),
                },
                args.repeats,
            )
        scorers = {
            "mg": lambda m: rnnlab_mg_score(m, z, starts),
            "mg reservoirpy": lambda m: reservoirpy_mg_score(m, z, starts),
            "sine": lambda m: rnnlab_sine_score(m, tests),
            "sine reservoirpy": lambda m: reservoirpy_sine_score(m, tests),
        }
        fitted = {f"mg {k}": v for k, v in mg.items()} | {f"sine {k}": v for k, v in sine.items()}
        # Not timed: the same reservoir in both libraries, so a difference in NRMSE is the libraries', not the draw's.
        if mg:
            model = on_reservoirpy_matrices(mg["reservoirpy"][0], rnnlab_config(MG, seed, False, MG_WASHOUT))
            rnnlab_mg(z, seed)[1](model)
            fitted[f"mg {SAME}"] = (model, math.nan, math.nan)
        if sine:
            model = on_reservoirpy_matrices(sine["reservoirpy"][0], rnnlab_config(SINE, seed, True, SINE_WASHOUT))
            rnnlab_sine(train, seed, 0.0)[1](model)
            fitted[f"sine {SAME}"] = (model, math.nan, math.nan)
        for name, (model, build, fit) in fitted.items():
            scorer = scorers[name] if name in scorers else scorers[name.split()[0]]  # rnnlab rows: by task
            row = scorer(model) | {"build": build, "fit": fit}
            results.setdefault(name, []).append(row)
            print(f"seed {seed} {name}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)

    print("\n| task | library | NRMSE (median, min–max over seeds) | build s | fit s |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        task, library = name.split(" ", 1)
        if task == "mg":
            score = f"at step 84: {summarise(rows, 'nrmse84')}; steps 1–84: {summarise(rows, 'nrmse_1_84')}"
            label = f"Mackey-Glass τ=17, {MG['units']} units"
        else:
            score = f"free-running: {summarise(rows, 'nrmse')}"
            label = f"sine-frequency, {SINE['units']} units"
        print(f"| {label} | {library} | {score} | {summarise(rows, 'build')} | {summarise(rows, 'fit')} |")

    print("\nNRMSE, rnnlab / reservoirpy:")
    for task in args.tasks:
        key = "nrmse84" if task == "mg" else "nrmse"
        ours, theirs = results[f"{task} rnnlab"], results[f"{task} reservoirpy"]
        same = [a[key] / b[key] for a, b in zip(results[f"{task} {SAME}"], theirs, strict=True)]
        test = mannwhitneyu([r[key] for r in ours], [r[key] for r in theirs])
        print(
            f"  {task}: on reservoirpy's matrices, median {statistics.median(same):.4f} (range {min(same):.4f}–"
            f"{max(same):.4f}); each on its own draws, Mann-Whitney U two-sided p = {test.pvalue:.2f}"
        )

    print("\nrnnlab time / reservoirpy time, same seed, same run (median over seeds; per seed):")
    for task, ours in (("mg", "rnnlab"), ("sine", "rnnlab"), ("sine", "rnnlab noise 1e-5")):
        if task not in args.tasks:
            continue
        for key in ("build", "fit"):
            pairs = zip(results[f"{task} {ours}"], results[f"{task} reservoirpy"], strict=True)
            ratios = [a[key] / b[key] for a, b in pairs]
            each = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"  {task} {ours} {key}: {statistics.median(ratios):.2f} ({each})")


if __name__ == "__main__":
    main()
