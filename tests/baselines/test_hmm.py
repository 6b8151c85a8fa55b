"""The HMM language model: forward algorithm and E-step against brute-force enumeration and the unscaled
recursion, Baum-Welch's monotone likelihood, learning a periodic text, and `rnnlab hmm` end to end with its
one-line errors."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from rnnlab.baselines.hmm import HMM, HMMConfig, describe, expected_counts, fit, maximise, unigram
from rnnlab.rundir import read_run


def random_model(states: int, vocab: int, seed: int) -> HMM:
    rng = np.random.default_rng(seed)
    return HMM(
        rng.dirichlet(np.ones(states)),
        rng.dirichlet(np.ones(states), states),
        rng.dirichlet(np.ones(vocab), states),
    )


def brute_force(model: HMM, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """log p(x) and the expected initial, transition and emission counts, summed over every state path."""
    N, V = model.states, model.vocab_size
    total, initial, transition, emission = 0.0, np.zeros(N), np.zeros((N, N)), np.zeros((N, V))
    for path in itertools.product(range(N), repeat=len(x)):
        p = model.initial[path[0]] * model.emission[path[0], x[0]]
        for t in range(1, len(x)):
            p *= model.transition[path[t - 1], path[t]] * model.emission[path[t], x[t]]
        total += p
        initial[path[0]] += p
        for t in range(len(x)):
            emission[path[t], x[t]] += p
            if t:
                transition[path[t - 1], path[t]] += p
    return math.log(total), initial / total, transition / total, emission / total


def unscaled_log_probs(model: HMM, x: np.ndarray) -> np.ndarray:
    """ln p(x_t | x_<t) from the textbook forward recursion without scaling: p(x_<=t) = sum alpha_t."""
    alpha = model.initial * model.emission[:, x[0]]
    totals = [alpha.sum()]
    for token in x[1:]:
        alpha = (alpha @ model.transition) * model.emission[:, token]
        totals.append(alpha.sum())
    joint = np.log(np.array(totals))
    return np.diff(joint, prepend=0.0)


@pytest.mark.parametrize(("states", "length", "seed"), [(2, 5, 0), (3, 6, 1), (3, 5, 2)])
def test_forward_and_e_step_equal_brute_force_enumeration(states: int, length: int, seed: int) -> None:
    model = random_model(states, 4, seed)
    x = np.random.default_rng(seed + 10).integers(0, 4, length)
    log_p, initial, transition, emission = brute_force(model, x)
    assert -model.token_nats(x).sum() == pytest.approx(log_p, abs=1e-12)
    counts = expected_counts(model, x, chunk=length)  # one chunk: the whole sequence
    assert counts.log_likelihood == pytest.approx(log_p, abs=1e-12)
    np.testing.assert_allclose(counts.initial, initial, atol=1e-12)
    np.testing.assert_allclose(counts.transition, transition, atol=1e-12)
    np.testing.assert_allclose(counts.emission.T, emission, atol=1e-12)


def test_chunks_are_independent_sequences_started_from_pi() -> None:
    """Cut into chunks of 4 (the last shorter), the E-step's likelihood is the sum over the chunks."""
    model = random_model(3, 4, 3)
    x = np.random.default_rng(3).integers(0, 4, 11)
    pieces = [x[0:4], x[4:8], x[8:11]]
    expected = sum(brute_force(model, piece)[0] for piece in pieces)
    assert expected_counts(model, x, chunk=4).log_likelihood == pytest.approx(expected, abs=1e-12)


def test_scaled_forward_equals_unscaled_where_it_does_not_underflow() -> None:
    model = random_model(4, 6, 5)
    x = np.random.default_rng(5).integers(0, 6, 40)
    unscaled = unscaled_log_probs(model, x)
    np.testing.assert_allclose(-model.token_nats(x), unscaled, rtol=1e-10, atol=1e-12)
    assert expected_counts(model, x, chunk=40).log_likelihood == pytest.approx(unscaled.sum(), rel=1e-12)
    fp32 = expected_counts(model, x, chunk=40, dtype=torch.float32).log_likelihood
    assert fp32 == pytest.approx(unscaled.sum(), rel=1e-5)
    # Where the unscaled recursion underflows to zero, the scaled one still gives the exact finite answer.
    long = np.tile(x, 200)
    with np.errstate(divide="ignore", under="ignore", invalid="ignore"):
        assert not np.isfinite(unscaled_log_probs(model, long).sum())
    assert np.isfinite(model.token_nats(long).sum())
    assert expected_counts(model, long, chunk=len(long)).log_likelihood == pytest.approx(
        -model.token_nats(long).sum(), rel=1e-10
    )


def test_baum_welch_never_decreases_the_training_log_likelihood() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 5, 400)
    x[::3] = 0  # some structure to find
    model = HMM.random(3, unigram(x, 5), seed=0)
    likelihoods = []
    for _ in range(40):
        counts = expected_counts(model, x, chunk=50)
        likelihoods.append(counts.log_likelihood)
        model = maximise(model, counts, unigram(x, 5), prior=0.0)  # maximum likelihood: EM's guarantee holds
    steps = np.diff(likelihoods)
    assert (steps >= -1e-9).all(), steps.min()
    assert likelihoods[-1] > likelihoods[0] + 10  # and it did climb


def test_rows_are_probability_distributions_after_training() -> None:
    x = np.random.default_rng(8).integers(0, 50, 3000)
    result = fit(x, x[:500], 60, HMMConfig(states=7, max_iters=5, prior=0.5))  # ids 50..59 never occur
    model = result.model
    for rows in (model.initial[None], model.transition, model.emission):
        assert (rows >= 0).all()
        np.testing.assert_allclose(rows.sum(1), 1.0, atol=1e-12)
    assert (model.emission[:, 50:] > 0).all()  # the prior keeps unseen tokens possible
    assert len(result.history) == 6 and result.stop == "max-iters"


def test_a_periodic_text_is_learned_far_below_the_unigram() -> None:
    period = np.array([0, 1, 2, 3, 1, 2, 4, 0, 3, 4, 2])  # 11 symbols, 5 distinct: unigram ~2.3 bits
    x = np.tile(period, 300)
    train, val = x[:3000], x[3000:]
    result = fit(train, val, 5, HMMConfig(states=16, max_iters=60, seed=1))
    p = np.bincount(val[1:], minlength=5) / (len(val) - 1)
    unigram_bits = float(-(p * np.log2(p)).sum())
    bits = float(result.model.token_nats(val)[1:].mean()) / math.log(2)
    assert unigram_bits > 2.2
    assert bits < 0.1 * unigram_bits


def test_the_bigram_start_is_already_a_bigram_model() -> None:
    """A Markov chain over 4 symbols (next = previous + 1 with probability 0.9): the class bigram start of EM
    already predicts far better than the unigram (2 bits); the random start does not."""
    rng = np.random.default_rng(9)
    x = np.cumsum(np.where(rng.random(4000) < 0.9, 1, rng.integers(0, 4, 4000))) % 4
    train, val = x[:3000], x[3000:]
    for init, low, high in (("bigram", 0.0, 1.2), ("random", 1.8, 2.5)):
        result = fit(train, val, 4, HMMConfig(states=4, max_iters=1, init=init))
        start_bits = result.history[0].val_nats / math.log(2)
        assert low < start_bits < high, (init, start_bits)


# ---------------------------------------------------------------------------------------------------------
# The command line

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("the cat sat on the mat. " * 120)
    return path


def test_train_eval_sample_info_round_trip(cli: Cli, text_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, err = cli("hmm", "train", text_file, "--states", "12", "--max-iters", "30", "--out", out)
    assert code == 0, err
    assert "held-out" in err and f"run saved in {out}" in err
    config = read_run(out, "hmm")
    assert config["model"] == {"states": 12, "vocab_size": 11}
    assert config["result"]["iterations"] >= 1
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "metrics.jsonl",
        "model.safetensors",
        "tokenizer.json",
        "tokens",
    ]

    code, stdout, err = cli("hmm", "eval", out, text_file, "--json")
    assert code == 0, err
    score = json.loads(stdout)
    assert set(score) == {"nats_per_token", "bits_per_char", "perplexity", "tokens", "chars"}
    assert score["tokens"] == score["chars"] == len(text_file.read_text()) - 1
    assert score["bits_per_char"] < 1.0  # the unigram of this text is about 3.2 bits
    assert score["perplexity"] == pytest.approx(math.exp(score["nats_per_token"]))

    code, stdout, _ = cli("hmm", "sample", out, "--length", "60", "--seed", "3", "--prime", "the ")
    assert code == 0 and stdout.startswith("the ") and len(stdout) == 4 + 60 + 1
    assert set(stdout[4:-1]) <= set("the cat sat on mat.")
    assert cli("hmm", "sample", out, "--length", "60", "--seed", "3", "--prime", "the ")[1] == stdout

    code, stdout, _ = cli("info", out)
    assert code == 0 and "hmm" in stdout
    lines = describe(out, config)
    assert lines[0].startswith("model        hidden Markov model, 12 states over 11 tokens")
    assert lines[1].startswith(f"parameters   {12 + 144 + 12 * 11:,} probabilities")
    assert any(line.startswith("train tokens") for line in lines)


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--states", "0"], "--states must be >= 1"),
        (["--chunk", "1"], "--chunk must be >= 2"),
        (["--prior", "-1"], "--prior must be >= 0"),
    ],
)
def test_impossible_options_are_one_line_and_write_nothing(
    cli: Cli, text_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    before = _files(tmp_path)
    code, _, err = cli("hmm", "train", text_file, "--out", tmp_path / "run", *args)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert _files(tmp_path) == before


def test_empty_text_is_one_line_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    before = _files(tmp_path)
    code, _, err = cli("hmm", "train", empty, "--out", tmp_path / "run")
    assert code == 2 and err == "error: the training input is empty\n"
    assert _files(tmp_path) == before


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rnnlab.baselines.hmm import train_run

    folder = tmp_path_factory.mktemp("hmm")
    (folder / "text.txt").write_text("abcab" * 100)
    return train_run(folder / "run", inputs=[str(folder / "text.txt")], states=3, max_iters=3).run_dir


def test_nan_in_an_edited_weights_file_is_one_line(cli: Cli, trained: Path, tmp_path: Path) -> None:
    run = tmp_path / "edited"
    run.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (run / name).write_bytes((trained / name).read_bytes())
    (run / "text.txt").write_text("abcab")
    from safetensors.torch import load_file

    tensors = load_file(trained / "model.safetensors")
    tensors["transition"][0, 0] = float("nan")
    save_file(tensors, run / "model.safetensors")  # no content hash: the values themselves must be checked
    before = _files(run)
    for command in (("eval", run, run / "text.txt"), ("sample", run)):
        code, out, err = cli("hmm", *command)
        assert code == 2 and out == "" and err.count("\n") == 1 and "transition holds NaN" in err
    tensors["transition"][0, 0] = 0.5  # finite, but the row no longer sums to one
    save_file(tensors, run / "model.safetensors")
    code, _, err = cli("hmm", "sample", run)
    assert code == 2 and "transition is not made of probability distributions" in err
    assert _files(run) == before


def test_bad_run_directories_are_one_line(cli: Cli, trained: Path, tmp_path: Path, text_file: Path) -> None:
    cases = [
        (tmp_path / "missing", "is not a directory"),
        (tmp_path, "is not an rnnlab run directory"),
    ]
    not_hmm = tmp_path / "lm"
    not_hmm.mkdir()
    (not_hmm / "config.json").write_text(json.dumps({"kind": "lm", "model": {}}))
    cases.append((not_hmm, "use `rnnlab sample`"))
    for run, message in cases:
        code, out, err = cli("hmm", "eval", run, text_file)
        assert code == 2 and out == "" and message in err and err.count("\n") == 1
    code, _, err = cli("hmm", "train", text_file, "--out", trained)  # an existing run is not overwritten silently
    assert code == 2 and "already exists" in err


def test_ctrl_c_keeps_the_best_model_so_far(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An interrupt during the third E-step: the run is saved with iteration 2's model, marked interrupted."""
    import rnnlab.baselines.hmm as hmm

    calls = []
    real = hmm.expected_counts

    def interrupted_third_time(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(hmm, "expected_counts", interrupted_third_time)
    (tmp_path / "text.txt").write_text("abcab" * 100)
    run = hmm.train_run(tmp_path / "run", inputs=[str(tmp_path / "text.txt")], states=3, val_fraction=0)
    assert run.result.interrupted and run.result.best_iteration == 2
    config = read_run(run.run_dir, "hmm")
    assert config["result"]["stop"] == "interrupted" and config["result"]["iterations"] == 2
    saved = hmm.HMMRun.load(run.run_dir).model
    np.testing.assert_array_equal(saved.transition, run.result.model.transition)
