"""The n-gram mixer: counts match a brute-force model, every mixture is a distribution, merging keeps the counts,
nothing peeks ahead, and memorised text gets cheaper."""

import json
from pathlib import Path

import numpy as np
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.ngram import NgramConfig, OnlineMixer, discounted_chain, mixed_nats

D = 0.7


def brute_force(seq: list[int], i: int, x: int, max_order: int, vocab: int) -> float:
    """Interpolated absolute discounting for token x at position i, straight from the definition."""
    p = 1.0 / vocab
    for n in range(max_order + 1):
        if i - n < 0:
            continue
        followers = [seq[j] for j in range(n, i) if seq[j - n : j] == seq[i - n : i]]
        if followers:
            p = (max(followers.count(x) - D, 0) + D * len(set(followers)) * p) / len(followers)
    return p


def test_expert_distributions_equal_the_definition_and_sum_to_one():
    rng = np.random.default_rng(0)
    V = 4
    history, tokens = rng.integers(0, V, 150), rng.integers(0, V, 25)
    config = NgramConfig(orders=(0, 1, 3), discount=D)
    mixer = OnlineMixer(history, V, config, merge_every=8)
    mixer.feed(int(tokens[0]))
    seq = [int(t) for t in np.concatenate([history, tokens])]
    network = np.full(V, 1 / V)
    for k in range(1, len(tokens)):
        i = len(history) + k
        mixer.predict(network)
        for column, n in enumerate(config.orders):
            expected = [brute_force(seq, i, x, n, V) for x in range(V)]
            np.testing.assert_allclose(mixer.experts[1 + column], expected, rtol=0, atol=1e-12)
            assert mixer.experts[1 + column].sum() == pytest.approx(1.0, abs=1e-12)
        mixer.update(seq[i])


def brute_force_local(seq: list[int], i: int, start: int, window: int, orders: tuple[int, ...], vocab: int):
    """The local experts at position i, straight from their definition: the same estimator over the tokens fed
    (from `start`) among the last `window`, from the order-1 distribution up; an order whose context is not in
    the window repeats the one below."""
    p = np.array([brute_force(seq, i, x, 1, vocab) for x in range(vocab)])
    experts = {}
    for n in range(1, max(orders) + 1):
        followers = [seq[j] for j in range(max(start, i - window), i) if j >= n and seq[j - n : j] == seq[i - n : i]]
        if followers:
            counts = np.bincount(followers, minlength=vocab)
            p = (np.maximum(counts - D, 0) + D * np.count_nonzero(counts) * p) / len(followers)
        else:
            for m in range(n, max(orders) + 1):
                experts[m] = p
            break
        experts[n] = p
    return [experts[n] for n in sorted(orders)]


@pytest.mark.parametrize("window", [1, 9, 1000])
def test_local_experts_equal_the_definition_over_their_window(window: int):
    rng = np.random.default_rng(5)
    V = 3
    history, tokens = rng.integers(0, V, 60), rng.integers(0, V, 90)
    config = NgramConfig(orders=(0, 2), discount=D, local_orders=(1, 2, 4), local_window=window)
    mixer = OnlineMixer(history, V, config, merge_every=16)
    mixer.feed(int(tokens[0]))
    seq = [int(t) for t in np.concatenate([history, tokens])]
    for k in range(1, len(tokens)):
        i = len(history) + k
        mixer.predict(np.full(V, 1 / V))
        expected = brute_force_local(seq, i, len(history), window, config.local_orders, V)
        np.testing.assert_allclose(mixer.experts[1 + len(config.orders) :], expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(mixer.experts.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        mixer.update(seq[i])


def test_local_experts_adapt_to_the_text_being_read():
    """Text whose statistics differ from the training text's (0 nine times in ten here, uniform there) is learnt
    from the window, while the large training counts of every context still say otherwise (the first stage
    alone, short global orders: their recent counts would otherwise adapt too)."""
    rng = np.random.default_rng(6)
    V = 2
    history, tokens = rng.integers(0, V, 20_000), (rng.random(1000) < 0.1).astype(np.int64)
    network = np.full((len(tokens) - 1, V), 1 / V)
    with_local, without = (
        mixed_nats([network], history, tokens, V, NgramConfig(orders=(1, 2), second_stage=False, local_orders=orders))
        for orders in ((1, 2), ())
    )
    assert with_local[300:].mean() < 0.8 * without[300:].mean()


@pytest.mark.parametrize("start", ["uniform", "distribution"])
def test_the_chain_of_orders_equals_its_recurrence(start: str):
    """discounted_chain unrolls pₙ = (max(c − d, 0) + d · u · pₙ₋₁) / c(ctx): the same rows as the loop, new
    contexts repeating the row below, and tiny discounts (products of many small factors) staying finite."""
    rng = np.random.default_rng(7)
    V = 9
    for d in (D, 1e-12):
        counts = rng.integers(0, 4, (6, V)) * (rng.random((6, V)) < 0.5)
        counts[0] += rng.integers(10**6, 10**7, V)  # a huge order 0: its factor d · u / c is tiny
        counts[4] = 0  # a context never seen
        p = np.full(V, 1 / V) if start == "uniform" else rng.dirichlet(np.ones(V))
        first = 1 / V if start == "uniform" else p
        expected = []
        for c in counts:
            if c.sum():
                p = (np.maximum(c - d, 0) + d * np.count_nonzero(c) * p) / c.sum()
            expected.append(p)
        chain = discounted_chain(counts, counts.sum(axis=1), np.count_nonzero(counts, axis=1), d, first)
        np.testing.assert_allclose(chain, expected, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(chain.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("second_stage", [False, True])
def test_every_mixture_is_a_distribution_over_the_next_token(second_stage: bool):
    rng = np.random.default_rng(1)
    V = 5
    history, tokens = rng.integers(0, V, 300), rng.integers(0, V, 400)
    network = rng.dirichlet(np.ones(V) * 0.3, size=len(tokens))  # some nearly certain, some flat
    mixer = OnlineMixer(history, V, NgramConfig(orders=(1, 2, 4), block=16, second_stage=second_stage))
    mixer.feed(int(tokens[0]))
    for i in range(1, len(tokens)):
        p = mixer.predict(network[i])
        assert p.shape == (V,) and p.min() > 0 and p.sum() == pytest.approx(1.0, abs=1e-12)
        mixer.update(int(tokens[i]))


def test_merging_recent_tokens_changes_no_distribution():
    """The counts of recent tokens (compared all at once) and of merged ones (sorted, searched) are the same
    counts: merging every 7 tokens or never gives the same distributions."""
    rng = np.random.default_rng(4)
    V = 6
    history, tokens = rng.integers(0, V, 500) % rng.integers(1, V, 500), rng.integers(0, V, 300) % 4
    network = rng.dirichlet(np.ones(V), size=len(tokens))
    often, never = (OnlineMixer(history, V, NgramConfig(), merge_every=m) for m in (7, 1000))
    for mixer in (often, never):
        mixer.feed(int(tokens[0]))
    for i in range(1, len(tokens)):
        np.testing.assert_allclose(often.predict(network[i]), never.predict(network[i]), rtol=1e-13, atol=0)
        often.update(int(tokens[i]))
        never.update(int(tokens[i]))


def test_mixing_makes_training_text_cheaper(trained_run: Path, corpus_file: Path):
    lm = LanguageModel.load(trained_run)
    text = corpus_file.read_text()[:3000]  # memorised by the counts of the training text
    plain, mixed = lm.score(text), lm.score(text, mix=NgramConfig())
    assert mixed.tokens == plain.tokens and mixed.chars == plain.chars
    assert mixed.bits_per_char < plain.bits_per_char - 0.3


def test_mixing_without_a_run_directory_is_a_clear_error(trained_run: Path):
    lm = LanguageModel.load(trained_run)
    lm.run_dir = None
    with pytest.raises(RnnlabError, match="tokens/"):
        lm.score("def f():\n", mix=NgramConfig())


def test_eval_mix_flag(trained_run: Path, corpus_file: Path, tmp_path: Path, cli):
    sample = tmp_path / "sample.py"
    sample.write_text(corpus_file.read_text()[:2000])
    _, plain, _ = cli("eval", trained_run, sample, "--json")
    _, mixed, _ = cli("eval", trained_run, sample, "--json", "--mix")
    assert json.loads(mixed)["bits_per_char"] < json.loads(plain)["bits_per_char"]
    code, _, err = cli("eval", trained_run, sample, "--mix", "--mix-discount", "1.5")
    assert code != 0 and "discount" in err


def test_mixed_nats_never_look_ahead():
    """The score of every token is unchanged by any change to the tokens after it: n-gram counts, context
    classes, both stages' weights and maps only use what came before (cuts inside a mixer block included)."""
    rng = np.random.default_rng(3)
    V = 6
    history, tokens = rng.integers(0, V, 400), rng.integers(0, V, 300)
    network = rng.dirichlet(np.ones(V), size=len(tokens) - 1)
    config = NgramConfig(orders=(1, 2, 3, 5), block=16)
    full = mixed_nats([network], history, tokens, V, config)
    for cut in (1, 37, 64, 150, 299):
        changed, changed_network = tokens.copy(), network.copy()
        changed[cut:] = rng.integers(0, V, len(tokens) - cut)
        changed_network[cut - 1 :] = rng.dirichlet(np.ones(V), size=len(tokens) - cut)
        again = mixed_nats([changed_network[:100], changed_network[100:]], history, changed, V, config)
        np.testing.assert_array_equal(again[: cut - 1], full[: cut - 1])  # scores of tokens[1:cut]
        assert not np.array_equal(again[cut - 1 :], full[cut - 1 :])
