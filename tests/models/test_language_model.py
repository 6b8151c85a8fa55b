"""The model's logits and loss against an independent float64 NumPy computation of the equations."""

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.models.language_model import RNNLM, total_nats


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def numpy_forward(model: RNNLM, tokens: np.ndarray) -> np.ndarray:
    """Logits (N, T, V) from the published equations, step by step, in float64 NumPy."""
    cfg = model.config
    w = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    x = w["embed.weight"][tokens] if cfg.embed else np.eye(cfg.vocab_size)[tokens]
    N, T, _ = x.shape
    for layer in range(cfg.layers):
        W, U = w[f"rnn.rnn.weight_ih_l{layer}"], w[f"rnn.rnn.weight_hh_l{layer}"]
        b, c = w[f"rnn.rnn.bias_ih_l{layer}"], w[f"rnn.rnn.bias_hh_l{layer}"]
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
    for layer in range(2):
        total = getattr(model.rnn.rnn, f"bias_ih_l{layer}") + getattr(model.rnn.rnn, f"bias_hh_l{layer}")
        assert torch.all(total[4:8] == 1.0)


def test_carried_state_equals_one_long_pass():
    torch.manual_seed(1)
    model = RNNLM(ModelConfig(vocab_size=11, cell="lstm", layers=2, hidden=8, embed=4)).double()
    tokens = torch.randint(11, (2, 20))
    whole, _, _ = model(tokens)
    first, state, _ = model(tokens[:, :12])
    second, _, _ = model(tokens[:, 12:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-12, atol=1e-12)


def test_total_nats_scores_every_token_once_with_streams_from_fresh_state():
    torch.manual_seed(2)
    model = RNNLM(ModelConfig(vocab_size=9, cell="gru", layers=1, hidden=8, embed=4)).double()
    tokens = np.random.default_rng(0).integers(0, 9, size=50)

    def direct(segment: np.ndarray) -> float:
        t = torch.from_numpy(segment)
        logits, _, _ = model(t[None, :-1])
        return torch.nn.functional.cross_entropy(logits[0], t[1:], reduction="sum").item()

    nats, count = total_nats(model, tokens, batch_size=1, seq_len=7)
    assert count == 49
    assert nats == pytest.approx(direct(tokens), rel=1e-10)
    # Two streams: predictions 0..24 and 25..48, the second starting from a fresh state at token 25.
    nats2, count2 = total_nats(model, tokens, batch_size=2, seq_len=7)
    assert count2 == 49
    assert nats2 == pytest.approx(direct(tokens[:26]) + direct(tokens[25:]), rel=1e-10)
