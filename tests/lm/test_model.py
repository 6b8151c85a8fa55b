"""The model's logits and loss against an independent float64 NumPy computation of the equations."""

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import make_text

from rnnlab.config import ModelConfig
from rnnlab.data.tokenizers import ByteTokenizer
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import RNNLM, WARMUP, LanguageModel, token_nats, total_nats


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def numpy_forward(model: RNNLM, tokens: np.ndarray) -> np.ndarray:
    """Logits (N, T, V) from the published equations, step by step, in float64 NumPy."""
    cfg = model.config
    w = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    x = w["embed.weight"][tokens] if cfg.embed else np.eye(cfg.vocab_size)[tokens]
    N, T, _ = x.shape
    for layer in range(cfg.layers):
        W, U = w[f"rnn.layers.{layer}.weight_ih"], w[f"rnn.layers.{layer}.weight_hh"]
        b, c = w[f"rnn.layers.{layer}.bias_ih"], w[f"rnn.layers.{layer}.bias_hh"]
        h = np.zeros((N, cfg.hidden))
        cell = np.zeros((N, cfg.hidden))
        outputs = []
        for t in range(T):
            a, r = x[:, t] @ W.T + b, h @ U.T + c
            if cfg.cell == "lstm":  # i, f, g, o
                i, f, g, o = np.split(a + r, 4, axis=1)
                cell = sigmoid(f) * cell + sigmoid(i) * np.tanh(g)
                h = sigmoid(o) * np.tanh(cell)
            elif cfg.cell == "gru":  # r, z, n; reset applied after the recurrent product (cuDNN form)
                ar, az, an = np.split(a, 3, axis=1)
                rr, rz, rn = np.split(r, 3, axis=1)
                reset, update = sigmoid(ar + rr), sigmoid(az + rz)
                n = np.tanh(an + reset * rn)
                h = (1 - update) * n + update * h
            elif cfg.cell == "rnn-tanh":
                h = np.tanh(a + r)
            else:
                h = np.maximum(a + r, 0)
            outputs.append(h)
        x = np.stack(outputs, axis=1)
    return x @ w["head.weight"].T + w["head.bias"]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn-tanh", "rnn-relu"])
@pytest.mark.parametrize("embed", [5, 0])
def test_logits_and_loss_match_independent_numpy(cell, embed):
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=7, cell=cell, layers=2, hidden=6, embed=embed)).double()
    tokens = torch.randint(7, (3, 9))
    targets = torch.randint(7, (3, 9))
    logits, _, loss = model(tokens, targets=targets)
    expected = numpy_forward(model, tokens.numpy())
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    log_probs = expected - np.log(np.exp(expected).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets.numpy()[..., None], -1).mean()
    assert loss.item() == pytest.approx(nll, rel=1e-10)


def test_lstm_forget_bias_starts_at_one():
    model = RNNLM(ModelConfig(vocab_size=5, cell="lstm", layers=2, hidden=4, embed=3))
    for cell in model.rnn.layers:
        total = cell.bias_ih + cell.bias_hh
        assert torch.all(total[4:8] == 1.0)


def test_carried_state_equals_one_long_pass():
    torch.manual_seed(1)
    model = RNNLM(ModelConfig(vocab_size=11, cell="lstm", layers=2, hidden=8, embed=4)).double()
    tokens = torch.randint(11, (2, 20))
    whole, _, _ = model(tokens)
    first, state, _ = model(tokens[:, :12])
    second, _, _ = model(tokens[:, 12:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-12, atol=1e-12)


def _direct_nats(model: RNNLM, segment: np.ndarray) -> np.ndarray:
    """-ln p of segment[1:] from one forward pass over the whole segment, starting from a fresh state."""
    t = torch.from_numpy(segment)
    logits, _, _ = model(t[None, :-1])
    return torch.nn.functional.cross_entropy(logits[0], t[1:], reduction="none").detach().numpy()


def test_one_stream_by_default_and_warmed_parallel_streams_score_every_token_once():
    torch.manual_seed(2)
    model = RNNLM(ModelConfig(vocab_size=9, cell="gru", layers=1, hidden=8, embed=4)).double()
    tokens = np.random.default_rng(0).integers(0, 9, size=50)
    nats, count = total_nats(model, tokens, seq_len=7)
    assert count == 49
    assert nats == pytest.approx(_direct_nats(model, tokens).sum(), rel=1e-10)
    # Two streams, warm-up 5: 44 predictions after the warm-up split 22 + 22; stream 0 scores predictions
    # 0..26 from a fresh state; stream 1 reads predictions 22..26 unscored, then scores 27..48.
    parallel = token_nats(model, tokens, batch_size=2, seq_len=7, warmup=5)
    expected = np.concatenate([_direct_nats(model, tokens[:28]), _direct_nats(model, tokens[22:])[5:]])
    assert len(expected) == 49
    np.testing.assert_allclose(parallel, expected, rtol=1e-10)
    assert total_nats(model, tokens, 2, 7, "cpu", warmup=5) == (pytest.approx(expected.sum(), rel=1e-10), 49)


def _token_by_token(module: RNNLM, ids: np.ndarray) -> np.ndarray:
    """Reference: feed the module one token at a time, carrying its state, in float64 log-softmax."""
    state, out = None, []
    with torch.no_grad():
        for current, following in itertools.pairwise(ids):
            logits, state, _ = module(torch.tensor([[int(current)]]), state)
            out.append(-torch.log_softmax(logits[0, -1].double(), -1)[int(following)].item())
    return np.array(out)


def test_single_stream_equals_feeding_one_token_at_a_time(trained_run: Path):
    """In float64, so that the two summation orders agree far below any score's precision."""
    lm = LanguageModel.load(trained_run)
    module = lm.module.double()
    ids = lm.tokenizer.encode(make_text(1500, seed=11))
    np.testing.assert_allclose(token_nats(module, ids), _token_by_token(module, ids), rtol=0, atol=1e-9)


def test_warmed_parallel_streams_are_within_0005_bpc_of_one_stream(trained_run: Path):
    """The fast form for training's validation: 16 warmed streams lose almost nothing; cold ones do."""
    lm = LanguageModel.load(trained_run)
    text = make_text(6000, seed=12)
    exact = lm.score(text).bits_per_char
    warm = lm.score(text, streams=16).bits_per_char
    ids = lm.tokenizer.encode(text)
    assert (len(ids) - 1) // max(256, WARMUP) >= 16  # 16 streams really run
    assert abs(warm - exact) < 0.005
    cold_nats, count = total_nats(lm.module, ids, 16, 256, warmup=0)  # the old layout: fresh mid-text states
    cold = cold_nats / math.log(2) / (len(text) - 1)
    assert count == len(ids) - 1 and cold - exact > 0.005


@pytest.mark.parametrize("text", ["", "d"])
def test_a_text_with_no_scored_token_is_an_error(trained_run: Path, text: str):
    with pytest.raises(RnnlabError, match="no tokens to score"):
        LanguageModel.load(trained_run).score(text)


def test_non_finite_scores_are_an_error(trained_run: Path):
    lm = LanguageModel.load(trained_run)
    with torch.no_grad():
        lm.module.head.bias.fill_(math.nan)
    with pytest.raises(RnnlabError, match="non-finite"):
        lm.score("def value(items):\n")


def test_a_byte_model_scores_the_raw_bytes_it_is_given():
    """Invalid UTF-8 is scored byte for byte (not as the replacement characters its decoding shows)."""
    torch.manual_seed(3)
    module = RNNLM(ModelConfig(vocab_size=256, cell="gru", layers=1, hidden=8, embed=4)).double()
    data = b"caf\xe9 \xff\xfe ok"
    score = LanguageModel(module, ByteTokenizer()).score(data)
    assert score.tokens == len(data) - 1
    expected = _direct_nats(module, np.frombuffer(data, dtype=np.uint8).astype(np.int64)).sum()
    assert score.nats_per_token * score.tokens == pytest.approx(expected, rel=1e-10)
