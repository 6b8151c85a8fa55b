"""`rnnlab eval RUN1 RUN2 ... INPUT`: the ensemble averages the runs' next-token probabilities."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import make_text

from rnnlab.baselines.ngram import NgramRun
from rnnlab.lm.ensemble import average_nats
from rnnlab.lm.model import LanguageModel


@pytest.fixture(scope="module")
def ngram_run(corpus_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-gram model of the network's training file, with the same character tokenizer."""
    from rnnlab.baselines.ngram import NgramTrainConfig, train

    out = tmp_path_factory.mktemp("ensemble") / "kn"
    train(NgramTrainConfig(inputs=[str(corpus_file)], order=3), out)
    return out


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("held_out") / "held_out.py"
    path.write_text(make_text(200, seed=7))  # one chunk of `rnnlab eval`'s 256 tokens: one forward pass
    return path


def _json(cli, *args: object) -> dict:
    code, out, err = cli("eval", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_ensemble_of_a_model_with_itself_is_the_model(cli, trained_run: Path, held_out: Path) -> None:
    alone, twice = _json(cli, trained_run, held_out), _json(cli, trained_run, trained_run, held_out)
    assert twice["tokens"] == alone["tokens"] and twice["chars"] == alone["chars"]
    assert twice["bits_per_char"] == pytest.approx(alone["bits_per_char"], rel=1e-12)


def test_ensemble_is_the_mean_probability(cli, trained_run: Path, ngram_run: Path, held_out: Path) -> None:
    """bpc of LSTM + 3-gram equals -log2 of the mean of the two models' probabilities, each computed here on its
    own: the network's softmax over the whole text in one forward pass, the n-gram's full distributions."""
    score = _json(cli, trained_run, ngram_run, held_out)
    lm, kn = LanguageModel.load(trained_run), NgramRun.load(ngram_run)
    text = held_out.read_text()
    ids = lm.tokenizer.encode(text)
    with torch.no_grad():
        logits, _, _ = lm.module(torch.as_tensor(ids[None, :-1]))
    p_net = torch.softmax(logits[0].double(), dim=-1)[torch.arange(len(ids) - 1), torch.as_tensor(ids[1:])].numpy()
    p_kn = np.array([kn.model.distribution(ids[max(0, i - 2) : i])[ids[i]] for i in range(1, len(ids))])
    bits = -np.log2((p_net + p_kn) / 2).sum()
    assert score["chars"] == len(text) - 1
    assert score["bits_per_char"] == pytest.approx(bits / (len(text) - 1), rel=1e-9)
    # -log of a mean is at most the mean of the -logs (Jensen): never worse than the members' average.
    assert score["bits_per_char"] < (-np.log2(p_net).sum() - np.log2(p_kn).sum()) / 2 / (len(text) - 1)


def test_ngram_run_scores_alone_as_ngram_eval(cli, ngram_run: Path, held_out: Path) -> None:
    code, out, err = cli("ngram", "eval", ngram_run, held_out, "--json")
    assert code == 0, err
    own = json.loads(out)
    assert _json(cli, ngram_run, held_out)["bits_per_char"] == pytest.approx(own["bits_per_char"], rel=1e-12)


def test_average_nats_is_stable() -> None:
    nats = [np.array([1000.0, 0.1, math.inf]), np.array([1001.0, 0.3, 2.0])]
    expected = [
        1000.0 - math.log((1 + math.exp(-1)) / 2),
        -math.log((math.exp(-0.1) + math.exp(-0.3)) / 2),
        2 + math.log(2),
    ]
    np.testing.assert_allclose(average_nats(nats), expected, rtol=1e-12)


def test_runs_must_share_a_tokenizer(cli, trained_run: Path, corpus_file: Path, tmp_path: Path) -> None:
    assert cli("ngram", "train", corpus_file, "--out", tmp_path / "w", "--tokenizer", "word", "--order", 2)[0] == 0
    code, _, err = cli("eval", trained_run, tmp_path / "w", corpus_file)
    assert code == 2 and err.count("\n") == 1 and "tokenize differently" in err
    code, _, err = cli("eval", trained_run, tmp_path / "w")  # no input after the runs
    assert code == 2 and "give the files to score" in err
    code, _, err = cli("eval", tmp_path / "w", corpus_file, "--dynamic")
    assert code == 2 and "none of these runs is a network" in err
