"""The reference trainer with N = 1 is min-char-rnn: the same losses, iteration by iteration.

Training at lr 0.1 from N(0, 0.01²) weights is chaotic in its first iterations: min-char-rnn itself,
with W_hh changed by one part in 10^15, gives losses that differ by O(1) after 20 iterations
(Adagrad's first updates are lr·g/|g|, whatever the size of g). Two correct implementations that
round differently (a matrix product instead of a loop of outer products) therefore cannot agree
over 500 free-running iterations. So the test runs both loops side by side and, after comparing each
iteration's loss and updated weights, hands min-char-rnn's weights, Adagrad memory and hidden state
to the reference trainer: every one of the 500 iterations is compared, and rounding cannot compound.
"""

from __future__ import annotations

import numpy as np

from rnnlab.reference import CharRNN, train
from rnnlab.reference.optim import Adagrad
from rnnlab.reference.train import Iteration


def some_text(n_chars: int, seed: int) -> str:
    """English-like words with spaces and punctuation: enough structure to learn in a few hundred steps."""
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "mat", "and", "a", "dog", "ran", "to", "it", "hello", "world"]
    text = ""
    while len(text) < n_chars:
        text += " ".join(rng.choice(words, size=rng.integers(3, 9))) + ". "
    return text[:n_chars]


def min_char_rnn(data: str, Wxh, Whh, Why, bh, by, hidden_size, seq_length, learning_rate):
    """Karpathy's min-char-rnn.py (2015), transcribed literally; sampling and printing are left out, and it
    yields (loss, params, memories, hprev) after each iteration instead of looping forever."""
    chars = sorted(set(data))
    vocab_size = len(chars)
    char_to_ix = {ch: i for i, ch in enumerate(chars)}

    def lossFun(inputs, targets, hprev):  # noqa: N802 (the original name, transcribed literally)
        xs, hs, ys, ps = {}, {}, {}, {}
        hs[-1] = np.copy(hprev)
        loss = 0
        for t in range(len(inputs)):
            xs[t] = np.zeros((vocab_size, 1))
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
            ys[t] = np.dot(Why, hs[t]) + by
            ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
            loss += -np.log(ps[t][targets[t], 0])
        dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
        dbh, dby = np.zeros_like(bh), np.zeros_like(by)
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1
            dWhy += np.dot(dy, hs[t].T)
            dby += dy
            dh = np.dot(Why.T, dy) + dhnext
            dhraw = (1 - hs[t] * hs[t]) * dh
            dbh += dhraw
            dWxh += np.dot(dhraw, xs[t].T)
            dWhh += np.dot(dhraw, hs[t - 1].T)
            dhnext = np.dot(Whh.T, dhraw)
        for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
            np.clip(dparam, -5, 5, out=dparam)
        return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]

    n, p = 0, 0
    mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    mbh, mby = np.zeros_like(bh), np.zeros_like(by)
    while True:
        if p + seq_length + 1 >= len(data) or n == 0:
            hprev = np.zeros((hidden_size, 1))
            p = 0
        inputs = [char_to_ix[ch] for ch in data[p : p + seq_length]]
        targets = [char_to_ix[ch] for ch in data[p + 1 : p + seq_length + 1]]
        loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev)
        for param, dparam, mem in zip(
            [Wxh, Whh, Why, bh, by], [dWxh, dWhh, dWhy, dbh, dby], [mWxh, mWhh, mWhy, mbh, mby], strict=True
        ):
            mem += dparam * dparam
            param += -learning_rate * dparam / np.sqrt(mem + 1e-8)
        yield loss, [Wxh, Whh, Why, bh, by], [mWxh, mWhh, mWhy, mbh, mby], hprev
        p += seq_length
        n += 1


def test_reference_trainer_reproduces_min_char_rnn():
    data = some_text(3_000, seed=4)  # short enough that 500 iterations wrap around the text 4 times
    chars = sorted(set(data))
    H, V = 32, len(chars)
    model = CharRNN("rnn-tanh", V, H, rng=np.random.default_rng(0))
    model.params["b_h"][...] = np.random.default_rng(1).standard_normal(H) * 0.01  # nonzero biases test them too
    init = {k: v.copy() for k, v in model.params.items()}
    theirs = min_char_rnn(
        data, init["W_xh"], init["W_hh"], init["W_hy"], init["b_h"][:, None], init["b_y"][:, None], H, 25, 0.1
    )
    optimizer = Adagrad(model.params, lr=0.1)
    names = ["W_xh", "W_hh", "W_hy", "b_h", "b_y"]
    their_losses, weight_diffs = [], []

    def compare_then_sync(it: Iteration) -> None:
        loss, params, memories, hprev = next(theirs)
        their_losses.append(loss)
        for name, param, memory in zip(names, params, memories, strict=True):
            ours = model.params[name]
            weight_diffs.append(np.max(np.abs(ours - param.reshape(ours.shape))))
            ours[...] = param.reshape(ours.shape)
            optimizer.mem[name][...] = memory.reshape(ours.shape)
        it.state[0][...] = hprev.T  # the carried state, in place

    tokens = np.array([chars.index(c) for c in data])
    ours = train(
        model, tokens, optimizer, batch_size=1, seq_len=25, clip_value=5.0, max_iters=500, callback=compare_then_sync
    )
    assert len(ours) == len(their_losses) == 500
    assert their_losses[-1] < 0.5 * their_losses[0]  # it learned, so the comparison covers real training
    assert np.max(np.abs(np.array(ours) - np.array(their_losses))) < 1e-9
    assert max(weight_diffs) < 1e-9
