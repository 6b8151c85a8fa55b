"""The mixer's second stage: binary logistic mixing and adaptive probability maps, as PAQ's final stages.

The first stage (rnnlab.lm.ngram) mixes whole distributions linearly. This stage sees the same
distributions (the network's, each n-gram order's, and the first stage's mixture) as a chain of yes/no
questions: the vocabulary is split in two halves, each half in two, and so on, so a token is the path of
≈log2 V binary decisions from the root of that tree to its leaf. At every node each input gives
p(right half | node) = its mass in the right half / its mass under the node, and the stage combines them
in the logistic domain, where confident inputs count more (Mahoney 2005, "Adaptive weighing of context
models for lossless data compression"):

    x_i = stretch(p_i) = ln(p_i / (1 − p_i))             each input, clipped to ±8, plus a bias input
    p   = squash(Σ_i w_i x_i)                          squash = the logistic function

Two weight sets are used per node, one chosen by the node itself and one shared by all nodes, and a
small final mixer combines them. With a match model (rnnlab.lm.match) one more input says, at each node
on the expected token's path, which way that token goes, with a confidence learned per match length
(stretch of the rate at which such predictions came true), and a third weight set is chosen by the
match length. Its output is refined by two adaptive probability maps
(APM, "secondary symbol estimation"): each interpolates a learned curve of 33 points over stretch(p),
one chosen by the node and one by the node and the previous token. The final p is a linear blend of the
mixer's output and the two maps' outputs, with softmax weights per node learned as the first stage's are
(so a corpus where the maps do not help learns to lean on the mixer); the token's probability is the
product of the p (or 1 − p) along its path, so the distribution sums to one over the vocabulary by
construction.

Learning follows the first stage's rule for honesty: the weights and maps are updated after each block
of tokens from that block's decisions only (gradient of the coding cost, err · x_i for the mixers, a
step toward the observed bit for the maps, the gradient of −ln p for the blend), so a token's probability
never depends on itself.
"""

from __future__ import annotations

import numpy as np

_STRETCH_LIMIT = 12.0  # inputs are clipped to ±12 (p between 6e-6 and 1 - 6e-6)
_BIAS = 0.3  # the constant input, so each weight set can shift its output
_FLOOR = 1e-6  # every binary probability stays in [_FLOOR, 1 - _FLOOR], so every token has p > 0
_MAP_POINTS = 33  # points of each adaptive probability map, evenly over stretch(p) in [-_MAP_LIMIT, _MAP_LIMIT]
_MAP_LIMIT = 8.0
_MAP_PRIOR = 1.5  # a new map point counts as this many observations of its starting value
_MAP_ROWS = 1 << 16  # the second map's rows: (previous token, node) pairs, hashed when there are more
_BLEND = (0.25, 0.25, 0.5)  # final p starts as 0.25 mixer + 0.25 first map + 0.5 second map
_BLEND_LR = 0.05  # the step of the blend's weights (softmax logits per node)
_FINAL_LR = 0.02  # the final mixer's step, relative to the node mixers'
_HIT_START = 0.75  # a match length's first guess at how often its predicted bit comes true


def stretch(p: np.ndarray) -> np.ndarray:
    """ln(p / (1 − p)), the logistic domain."""
    return np.log(p / (1 - p))


def squash(x: np.ndarray) -> np.ndarray:
    """The logistic function, stretch's inverse."""
    return 1 / (1 + np.exp(-x))


class Tree:
    """A balanced binary tree over tokens 0..V-1: node k splits [lo, hi) at mid, left = [lo, mid), right = [mid,
    hi). `path_nodes[x]` and `path_bits[x]` are token x's nodes from the root and its turns (1 = right), padded
    with node V-1 (a pseudo node whose probability is 1) and bit 1 to the tree's depth."""

    def __init__(self, vocab_size: int) -> None:
        lo, mid, hi = [], [], []
        paths: list[list[tuple[int, int]]] = [[] for _ in range(vocab_size)]
        stack = [(0, vocab_size, [])]
        while stack:
            a, b, path = stack.pop()
            if b - a < 2:
                paths[a] = path
                continue
            k, m = len(lo), (a + b) // 2
            lo.append(a), mid.append(m), hi.append(b)
            stack += [(m, b, [*path, (k, 1)]), (a, m, [*path, (k, 0)])]
        self.lo, self.mid, self.hi = np.array(lo), np.array(mid), np.array(hi)
        self.nodes = len(lo)
        depth = max(len(p) for p in paths)
        self.path_nodes = np.full((vocab_size, depth), self.nodes, dtype=np.int64)
        self.path_bits = np.ones((vocab_size, depth), dtype=np.int64)
        for x, path in enumerate(paths):
            for j, (k, bit) in enumerate(path):
                self.path_nodes[x, j], self.path_bits[x, j] = k, bit

    def right(self, dists: np.ndarray) -> np.ndarray:
        """p(right | node) for each row of `dists` [M, V] at every node: [M, nodes] (0.5 where a row has no
        mass under the node)."""
        cum = np.concatenate([np.zeros((len(dists), 1)), np.cumsum(dists, axis=1)], axis=1)
        under = cum[:, self.hi] - cum[:, self.lo]
        right = cum[:, self.hi] - cum[:, self.mid]
        return np.where(under > 0, right / np.where(under > 0, under, 1), 0.5)

    def leaves(self, p_right: np.ndarray) -> np.ndarray:
        """The distribution over tokens given p(right | node) at every node: the product along each path."""
        p = np.append(p_right, 1.0)
        along = p[self.path_nodes]
        return np.where(self.path_bits == 1, along, 1 - along).prod(axis=1)


class BitMixer:
    """The second stage for one stream of tokens: `predict` the distribution over V tokens from M input
    distributions (and, with `match_classes` > 0, a match model's expected token and length class), then `update`
    with the token that came."""

    def __init__(
        self, vocab_size: int, inputs: int, lr: float, map_rate: float, block: int, match_classes: int = 0
    ) -> None:
        self.tree, self.V = Tree(vocab_size), vocab_size
        self.lr, self.map_rate, self.block_size = lr, map_rate, block
        N, M = self.tree.nodes, inputs
        self.map_rows = min(vocab_size * N, _MAP_ROWS)
        self.match = match_classes > 0
        columns = M + 1 + self.match  # the inputs, the match input, the bias
        # Start as the identity on input M - 1 (the first stage's mixture): weights 1 there, maps ≈ identity.
        self.w_node = np.zeros((N, columns))
        self.w_node[:, M - 1] = 1.0
        self.w_all = self.w_node[0].copy()
        self.w_match = np.tile(self.w_all, (match_classes, 1))
        self.w_final = np.full(2 + self.match, 1 / (2 + self.match))
        self.hit = np.full(match_classes, _HIT_START)
        self.seen_hit = np.zeros(match_classes)
        curve = squash(np.linspace(-_MAP_LIMIT, _MAP_LIMIT, _MAP_POINTS))
        self.map_node = np.tile(curve, (N, 1))
        self.map_prev = np.tile(curve, (self.map_rows, 1))
        self.seen_node, self.seen_prev = np.zeros_like(self.map_node), np.zeros_like(self.map_prev)
        self.blend = np.tile(np.log(_BLEND), (N, 1))  # per node: softmax logits of the final blend
        self.node_index, self.bias = np.arange(N), np.full((N, 1), _BIAS)
        self.block: list[tuple[np.ndarray, ...]] = []

    def predict(
        self, dists: np.ndarray, previous: int, expected: int | None = None, length_class: int = 0
    ) -> np.ndarray:
        """The distribution over the V tokens of the next position, given the inputs' distributions [M, V], the
        token before it, and the match model's expected token (None: no match) and its length class."""
        x = np.clip(stretch(np.clip(self.tree.right(dists), _FLOOR, 1 - _FLOOR)), -_STRETCH_LIMIT, _STRETCH_LIMIT)
        columns, N = [x.T], self.tree.nodes
        expected_bit = np.full(N + 1, -1)  # per node: the way the expected token goes there (-1: not on its path)
        if self.match:
            if expected is not None:
                expected_bit[self.tree.path_nodes[expected]] = self.tree.path_bits[expected]
                expected_bit[N] = -1
            confidence = min(stretch(np.clip(self.hit[length_class], _FLOOR, 1 - _FLOOR)), _STRETCH_LIMIT)
            direction = np.where(expected_bit[:N] < 0, 0.0, 2.0 * expected_bit[:N] - 1)  # +1 right, -1 left, 0 off
            columns.append((direction * confidence)[:, None])
        x = np.concatenate([*columns, self.bias], axis=1)  # [nodes, M + 1 (+ 1)]
        z = [(self.w_node * x).sum(axis=1), x @ self.w_all]
        if self.match:
            z.append(x @ self.w_match[length_class])
        z_final = sum(w * zi for w, zi in zip(self.w_final, z, strict=True))
        p_mix = np.clip(squash(z_final), _FLOOR, 1 - _FLOOR)
        u = (np.clip(stretch(p_mix), -_MAP_LIMIT, _MAP_LIMIT) + _MAP_LIMIT) * ((_MAP_POINTS - 1) / (2 * _MAP_LIMIT))
        at = np.minimum(np.floor(u).astype(np.int64), _MAP_POINTS - 2)
        frac = u - at
        nodes = self.node_index
        rows = (previous * self.tree.nodes + nodes) % self.map_rows
        m_node = self.map_node[nodes, at] * (1 - frac) + self.map_node[nodes, at + 1] * frac
        m_prev = self.map_prev[rows, at] * (1 - frac) + self.map_prev[rows, at + 1] * frac
        q = np.stack([p_mix, m_node, m_prev], axis=1)
        p = np.clip((softmax(self.blend) * q).sum(axis=1), _FLOOR, 1 - _FLOOR)
        self.last = (x, np.stack(z, axis=1), p_mix, at, frac, rows, expected_bit[:N], np.full(N, length_class), q)
        return self.tree.leaves(p)

    def update(self, token: int) -> None:
        """Take the token that came where `predict` was last called; learn once a block is complete."""
        path = self.tree.path_nodes[token]
        path = path[path < self.tree.nodes]
        bits = self.tree.path_bits[token, : len(path)].astype(np.float64)
        self.block.append((path, bits, *(a[path] for a in self.last)))
        if len(self.block) == self.block_size:
            self._learn()

    def _learn(self) -> None:
        """One step on the block's decisions: each mixer along its gradient, each map toward the bits."""
        blocks = (np.concatenate(c) for c in zip(*self.block, strict=True))
        path, bits, x, z, p_mix, at, frac, rows, expected_bit, length_class, q = blocks
        self.block = []
        np.add.at(self.w_node, path, self.lr * (bits - squash(z[:, 0]))[:, None] * x)
        self.w_all += self.lr * ((bits - squash(z[:, 1]))[:, None] * x).sum(axis=0)
        if self.match:
            np.add.at(self.w_match, length_class, self.lr * (bits - squash(z[:, 2]))[:, None] * x)
            on_path = expected_bit >= 0
            came_true = (expected_bit[on_path] == bits[on_path]).astype(np.float64)
            _move_toward(
                self.hit, self.seen_hit, length_class[on_path], came_true, np.ones(len(came_true)), self.map_rate
            )
        self.w_final += self.lr * _FINAL_LR * ((bits - p_mix)[:, None] * z).sum(axis=0)
        w = softmax(self.blend[path])
        r = np.where(bits[:, None] == 1, q, 1 - q)  # each part's probability of the bit that came
        np.add.at(self.blend, path, -_BLEND_LR * (w - w * r / (w * r).sum(axis=1, keepdims=True)))
        for table, seen, row in ((self.map_node, self.seen_node, path), (self.map_prev, self.seen_prev, rows)):
            cells = np.concatenate([row * _MAP_POINTS + at, row * _MAP_POINTS + at + 1])
            targets, weights = np.concatenate([bits, bits]), np.concatenate([1 - frac, frac])
            _move_toward(table.reshape(-1), seen.reshape(-1), cells, targets, weights, self.map_rate)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (mixing weights from logits; the first stage uses it too)."""
    w = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def _move_toward(
    table: np.ndarray, seen: np.ndarray, cells: np.ndarray, targets: np.ndarray, weights: np.ndarray, rate: float
) -> None:
    """Each cell of `table` (flat index) moves toward the weighted mean of the block's targets that used it: as an
    average of all it has seen while that is young (a step of weight / seen), then as sequential steps of `rate`
    would (1 − (1 − rate)^weight of the way), so a cell stays a probability however often one block uses it. A map
    point counts a bit with weight 1 − frac (its lower point) or frac (its upper one). With rate 0 nothing learns."""
    used, where = np.unique(cells, return_inverse=True)
    weight = np.bincount(where, weights, len(used))
    mean = np.bincount(where, targets * weights, len(used)) / np.maximum(weight, 1e-300)
    seen[used] += weight
    step = np.maximum(weight / (seen[used] + _MAP_PRIOR), 1 - (1 - rate) ** weight) if rate else 0.0
    table[used] += step * (mean - table[used])
