"""The n-gram mixer: counts match a brute-force model, every mixture is a distribution, nothing peeks
ahead, and memorised text gets cheaper."""

import json
from pathlib import Path

import numpy as np
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.lm.model import LanguageModel
from rnnlab.lm.ngram import NgramConfig, mix, mixed_nats, ngram_probs

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


def test_ngram_probs_equal_the_definition_and_sum_to_one():
    rng = np.random.default_rng(0)
    V = 4
    history, tokens = rng.integers(0, V, 150), rng.integers(0, V, 25)
    config = NgramConfig(orders=(0, 1, 3), discount=D)
    probs, longest_seen = ngram_probs(history, tokens, V, config)
    seq = [int(t) for t in np.concatenate([history, tokens])]
    for k in range(len(tokens)):
        i = len(history) + k
        for column, n in enumerate(config.orders):
            assert probs[k, column] == pytest.approx(brute_force(seq, i, seq[i], n, V), abs=1e-12)
        assert sum(brute_force(seq, i, x, 3, V) for x in range(V)) == pytest.approx(1.0, abs=1e-12)
        assert 0 <= longest_seen[k, 0] <= 3 and longest_seen[k, 1] >= 1


def test_mixture_is_a_distribution_over_the_next_token():
    """Put each possible token last: the mixed probabilities of the last position sum to one."""
    rng = np.random.default_rng(1)
    V = 5
    history, prefix = rng.integers(0, V, 300), list(rng.integers(0, V, 150))
    network = rng.dirichlet(np.ones(V), size=len(prefix))  # a fake network: one distribution per step
    total = 0.0
    for x in range(V):
        tokens = np.array([*prefix, x])
        nats = -np.log(network[np.arange(len(prefix)), tokens[1:]])
        total += np.exp(-mixed_nats(nats, history, tokens, V, NgramConfig(orders=(1, 2, 4), block=16))[-1])
    assert total == pytest.approx(1.0, abs=1e-9)


def test_mixer_weights_for_a_block_come_only_from_earlier_blocks():
    rng = np.random.default_rng(2)
    experts = rng.uniform(0.01, 1, size=(100, 3))
    classes = rng.integers(0, 2, 100)
    config = NgramConfig(block=32)
    changed = experts.copy()
    changed[40:] = rng.uniform(0.01, 1, size=(60, 3))
    a, b = mix(experts, classes, 2, config), mix(changed, classes, 2, config)
    np.testing.assert_array_equal(a[:40], b[:40])
    assert not np.allclose(a[64:], b[64:])


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
    classes and mixer weights only use what came before (cuts inside a mixer block included)."""
    rng = np.random.default_rng(3)
    V = 6
    history, tokens = rng.integers(0, V, 400), rng.integers(0, V, 300)
    network = rng.uniform(0.1, 3.0, len(tokens) - 1)
    config = NgramConfig(orders=(1, 2, 3, 5), block=16)
    full = mixed_nats(network, history, tokens, V, config)
    for cut in (1, 37, 64, 150, 299):
        changed, changed_network = tokens.copy(), network.copy()
        changed[cut:] = rng.integers(0, V, len(tokens) - cut)
        changed_network[cut - 1 :] = rng.uniform(0.1, 3.0, len(tokens) - cut)
        again = mixed_nats(changed_network, history, changed, V, config)
        np.testing.assert_array_equal(again[: cut - 1], full[: cut - 1])  # scores of tokens[1:cut]
        assert not np.array_equal(again[cut - 1 :], full[cut - 1 :])
