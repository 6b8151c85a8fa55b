"""Finite-state machines and reading one out of a recurrent network (Omlin & Giles 1996; lecture 7's adder).

A network that reads a string one symbol at a time and gives an output after each is compared with a Moore
machine: states, a transition on each symbol, an output per state (1 = the prefix so far is accepted). The
machine is read out of the network by clustering the hidden states it visits (k-means), following each
cluster's states one step on each symbol to get the transition table, and minimising the result (Moore's
partition refinement), so that machines which compute the same function compare equal state for state.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2

from rnnlab.errors import RnnlabError


@dataclass(frozen=True)
class Automaton:
    """A Moore machine over `symbols`: `delta[q, a]` is the state after reading symbol a in state q, `output[q]`
    the output in state q (for an acceptor 1 = accept); it starts in `start`, and outputs after every symbol."""

    symbols: tuple[str, ...]
    delta: np.ndarray  # (Q, A) int
    output: np.ndarray  # (Q,) int
    start: int = 0

    @property
    def size(self) -> int:
        return len(self.output)

    def run(self, strings: np.ndarray) -> np.ndarray:
        """Symbol ids (N, T) -> the output after each symbol (N, T), all strings at once."""
        state = np.full(strings.shape[0], self.start)
        out = np.empty(strings.shape, dtype=self.output.dtype)
        for t in range(strings.shape[1]):
            state = self.delta[state, strings[:, t]]
            out[:, t] = self.output[state]
        return out


def reachable(machine: Automaton) -> Automaton:
    """The machine without the states that no string reaches, numbered in breadth-first order from the start
    (symbols in their order): two minimal machines are isomorphic exactly when these forms are equal."""
    order, seen, queue = [], {machine.start}, deque([machine.start])
    while queue:
        q = queue.popleft()
        order.append(q)
        for r in machine.delta[q].tolist():
            if r not in seen:
                seen.add(r)
                queue.append(r)
    renumber = np.full(machine.size, -1)
    renumber[order] = np.arange(len(order))
    return Automaton(machine.symbols, renumber[machine.delta[order]], machine.output[order].copy(), 0)


def minimise(machine: Automaton) -> Automaton:
    """The smallest machine with the same outputs on every string: drop unreachable states, then refine the
    partition of states by output until every block's members agree on the block each symbol leads to (Moore's
    algorithm; the fixed point of the refinement is the Myhill-Nerode equivalence)."""
    machine = reachable(machine)
    _, block = np.unique(machine.output, return_inverse=True)
    while True:
        signature = np.column_stack([block, block[machine.delta]])
        _, refined = np.unique(signature, axis=0, return_inverse=True)
        refined = refined.reshape(-1)
        if refined.max() == block.max():
            break
        block = refined
    first = np.unique(block, return_index=True)[1]  # a representative of each block
    quotient = Automaton(machine.symbols, block[machine.delta[first]], machine.output[first], int(block[machine.start]))
    return reachable(quotient)


def counterexample(a: Automaton, b: Automaton) -> list[str] | None:
    """A shortest string after which the two machines' outputs differ, or None when they agree on every string
    (a breadth-first search over pairs of states, so it decides equivalence for all lengths)."""
    if a.symbols != b.symbols:
        raise RnnlabError(f"the machines read different symbols: {a.symbols} and {b.symbols}")
    start = (a.start, b.start)
    parent: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {start: None}
    queue = deque([start])
    while queue:
        pair = queue.popleft()
        for s in range(len(a.symbols)):
            nxt = (int(a.delta[pair[0], s]), int(b.delta[pair[1], s]))
            if nxt in parent:
                continue
            parent[nxt] = (pair, s)
            if a.output[nxt[0]] != b.output[nxt[1]]:
                path, at = [], nxt
                while parent[at] is not None:
                    at, sym = parent[at]  # type: ignore[misc]
                    path.append(a.symbols[sym])
                return path[::-1]
            queue.append(nxt)
    return None


def isomorphic(a: Automaton, b: Automaton) -> bool:
    """Whether two machines are the same up to the names of their states (compare minimised machines)."""
    ra, rb = reachable(a), reachable(b)
    return ra.symbols == rb.symbols and np.array_equal(ra.delta, rb.delta) and np.array_equal(ra.output, rb.output)


# The true machines of the languages the probe reads out.


def parity() -> Automaton:
    """Accept when the string so far has an odd number of 1s."""
    return Automaton(("0", "1"), np.array([[0, 1], [1, 0]]), np.array([0, 1]))


def no_three_a() -> Automaton:
    """Accept while the string has no three a's in a row: states count the trailing a's; state 3 is dead."""
    return Automaton(("a", "b"), np.array([[1, 0], [2, 0], [3, 0], [3, 3]]), np.array([1, 1, 1, 0]))


def repeated_ones() -> Automaton:
    """Output 1 when the current bit and the one before it are both 1 (the lectures' repeated-ones detector):
    states 'last bit 0', 'last bit 1 after a 0', 'last two bits 11'."""
    return Automaton(("0", "1"), np.array([[0, 1], [0, 2], [0, 2]]), np.array([0, 0, 1]))


def binary_addition() -> Automaton:
    """Serial addition, least significant bit first: each symbol is a column 'ab'; the output is the sum bit.
    The state after a column is (carry, sum bit), the four patterns of lecture 7's adder."""
    symbols = ("00", "01", "10", "11")
    delta = np.zeros((4, 4), dtype=np.int64)
    for q in range(4):  # q = 2 * carry + sum bit
        carry = q // 2
        for s, column in enumerate(symbols):
            total = int(column[0]) + int(column[1]) + carry
            delta[q, s] = 2 * (total // 2) + total % 2
    return Automaton(symbols, delta, np.array([0, 1, 0, 1]))


LANGUAGES: dict[str, Callable[[], Automaton]] = {"parity": parity, "no-aaa": no_three_a}


def random_strings(n: int, length: int, alphabet: int, rng: np.random.Generator) -> np.ndarray:
    """`n` uniformly random strings of symbol ids, (n, length)."""
    return rng.integers(0, alphabet, size=(n, length))


# Reading a machine out of a network's hidden states.


@dataclass
class Extraction:
    """A machine read out of a network, the k it came from and how well it agrees with the network."""

    machine: Automaton  # minimised
    k: int
    agreement: dict[int, float]  # k -> agreement with the network's own outputs on held-out strings


def quantise(
    states: np.ndarray, successors: np.ndarray, outputs: np.ndarray, k: int, seed: int = 0
) -> tuple[Automaton, np.ndarray]:
    """The machine of k-means clusters of hidden states, and the centroids (k, S).

    states (M, S) are states the network visited, the first its initial state; successors (M, A, S) each of
    them after one step on each symbol; outputs (M,) the network's output in each. A cluster goes on a symbol
    where most of its members' successors fall, and outputs what most of its members output. The initial state
    is a state of its own (number k), whose transitions are its own successors' clusters: the cluster it falls
    in may not behave as it does (the minimisation merges it with any state that does).
    """
    M, A, _ = successors.shape
    with warnings.catch_warnings():  # an empty cluster is handled below
        warnings.simplefilter("ignore")
        centroids, labels = kmeans2(states, k, iter=50, minit="++", rng=np.random.default_rng(seed))
    nearest = _nearest(centroids, successors.reshape(M * A, -1)).reshape(M, A)
    votes = np.zeros((k, A, k), dtype=np.int64)
    np.add.at(votes, (np.repeat(labels, A), np.tile(np.arange(A), M), nearest.reshape(-1)), 1)
    said = np.zeros((k, int(outputs.max()) + 1), dtype=np.int64)
    np.add.at(said, (labels, outputs), 1)
    empty = votes.sum(axis=(1, 2)) == 0  # a cluster kmeans left empty: a dead end that loops on itself
    delta = np.where(empty[:, None], np.arange(k)[:, None], votes.argmax(axis=2))
    delta = np.vstack([delta, nearest[0]])
    output = np.append(said.argmax(axis=1), outputs[0])
    return Automaton(tuple(str(i) for i in range(A)), delta, output, k), centroids


def _nearest(centroids: np.ndarray, points: np.ndarray) -> np.ndarray:
    distance = (points**2).sum(1)[:, None] - 2 * points @ centroids.T + (centroids**2).sum(1)[None]
    return distance.argmin(axis=1)


def extract(
    symbols: tuple[str, ...],
    states: np.ndarray,
    successors: np.ndarray,
    outputs: np.ndarray,
    held_out: np.ndarray,
    held_out_outputs: np.ndarray,
    ks: range,
    seed: int = 0,
) -> Extraction:
    """Quantise with each k in `ks`, score each machine by its agreement with the network's outputs
    `held_out_outputs` (N, T) on the strings `held_out` (N, T), keep the smallest k within 0.1% of the best
    agreement, and minimise its machine. `states` etc. as for `quantise`."""
    if len(states) < max(ks):
        raise RnnlabError(f"{len(states)} hidden states cannot make {max(ks)} clusters")
    machines, agreement = {}, {}
    for k in ks:
        machine, _ = quantise(states, successors, outputs, k, seed)
        machines[k] = machine
        agreement[k] = float((machine.run(held_out) == held_out_outputs).mean())
    best = max(agreement.values())
    k = min(k for k, a in agreement.items() if a >= best - 1e-3)
    found = machines[k]
    named = Automaton(symbols, found.delta, found.output, found.start)
    return Extraction(minimise(named), k, agreement)
