"""The mixer's second stage: the token tree loses nothing, every output is a distribution, and it learns
which input to trust."""

import math

import numpy as np
import pytest

from rnnlab.lm.bitmix import BitMixer, Tree


@pytest.mark.parametrize("V", [2, 3, 5, 84, 256])
def test_the_tree_rebuilds_any_distribution_from_its_binary_decisions(V: int):
    rng = np.random.default_rng(V)
    tree = Tree(V)
    assert tree.nodes == V - 1 and tree.path_nodes.shape[1] == math.ceil(math.log2(V))
    for dist in (rng.dirichlet(np.ones(V)), np.eye(V)[V // 2] * 0.999 + 0.001 / V):
        np.testing.assert_allclose(tree.leaves(tree.right(dist[None])[0]), dist, rtol=1e-12, atol=1e-15)
    # Every token's path is distinct and ends at that token.
    paths = {tuple(zip(n, b, strict=True)) for n, b in zip(tree.path_nodes, tree.path_bits, strict=True)}
    assert len(paths) == V


def test_every_output_is_a_distribution_and_it_learns_which_input_to_trust():
    """Input 0 always knows the next token, input 1 (the first stage's mixture, trusted at first) is uniform:
    the stage starts near uniform and ends near certain, each output summing to one."""
    rng = np.random.default_rng(0)
    V, block = 12, 8
    mixer = BitMixer(V, inputs=2, lr=5e-4, map_rate=0.03, block=block)
    tokens = rng.integers(0, V, 3000)
    bits = []
    for i, token in enumerate(tokens):
        knows = np.full(V, 0.02 / (V - 1))
        knows[token] = 0.98
        p = mixer.predict(np.stack([knows, np.full(V, 1 / V)]), int(tokens[i - 1]) if i else 0)
        assert p.min() > 0 and p.sum() == pytest.approx(1.0, abs=1e-12)
        bits.append(-math.log2(p[token]))
        mixer.update(int(token))
    assert np.mean(bits[:block]) == pytest.approx(math.log2(V), abs=0.1)  # before the first step: the uniform input
    assert np.mean(bits[-500:]) < 0.2
