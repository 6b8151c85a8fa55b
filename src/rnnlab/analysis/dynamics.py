"""A recurrent network as a dynamical system h_t = F(h_{t−1}, x_t): fixed points, chaos and state machines.

- Fixed and slow points under a constant input x (Sussillo & Barak 2013): minimise q(h) = ½‖F(h) − h‖² from
  many states sampled from the network's own trajectories, polish with Newton steps, merge duplicates, and
  classify each point by the eigenvalues of the Jacobian ∂F/∂h (a map: |λ| < 1 contracts).
- The largest Lyapunov exponent under input (Benettin et al. 1980): carry a tangent vector v_t = J_t v_{t−1}
  along the trajectory, renormalise it every step, and average log of its growth; and its value for random
  rnn-tanh networks over the spectral radius of W_hh (ordered below a threshold, chaotic above).
- Two planar tanh networks: a rotation scaled above 1 oscillates, one scaled below 1 settles to a point.
- The finite-state machine a network implements (rnnlab.analysis.automata), read from hand-built networks
  (the lectures' repeated-ones detector, parity and lecture 7's serial adder) and from tiny networks trained
  here on a regular language.

Every network is a `Network`: a step function on flat states (N, S) (every part of every layer's state side by
side) and the input vectors of its symbols; the language model, the trained taggers and the hand-built
networks all become one, in float64.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from rnnlab.analysis import automata
from rnnlab.analysis.automata import Automaton, Extraction
from rnnlab.analysis.gradients import set_spectral_radius, untrained
from rnnlab.config import ModelConfig
from rnnlab.data.prepare import TokenStore
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import LanguageModel
from rnnlab.nn.cells import step_loops
from rnnlab.nn.recurrent import Recurrent, state_from_tensors, state_tensors

Step = Callable[[Tensor, Tensor], Tensor]  # (h (N, S), x (N, D)) -> h' (N, S)

FIXED_TOL = 1e-6  # a point with ‖F(h) − h‖ below this is fixed
SLOW_TOL = 1e-2  # ... and between the two, slow
MARGINAL_TOL = 1e-4  # an eigenvalue with ||λ| − 1| below this neither contracts nor expands
EDGE_BAND = 0.02  # |Lyapunov exponent| below this (nats per step): the edge of chaos
TRANSIENT = 50  # steps a tangent vector is pushed before its growth counts


@dataclass
class Network:
    """h' = step(h, x) on flat float64 states (N, S); `inputs[i]` (D,) is the input vector of `symbols[i]`;
    `readout(h)` (N,) is the class the network outputs in each state, where it has one."""

    name: str
    step: Step
    symbols: tuple[str, ...]
    inputs: Tensor  # (A, D)
    h0: Tensor  # (S,)
    readout: Callable[[Tensor], Tensor] | None = None

    @torch.no_grad()
    def run(self, ids: Tensor) -> Tensor:
        """Symbol ids (N, T) -> states (N, T + 1, S) from h0 (the first) through every step."""
        h = self.h0.expand(ids.shape[0], -1)
        states = [h]
        for t in range(ids.shape[1]):
            h = self.step(h, self.inputs[ids[:, t]])
            states.append(h)
        return torch.stack(states, 1)

    def symbol(self, name: str) -> int:
        if name not in self.symbols:
            shown = ", ".join(repr(s) for s in self.symbols[:20]) + (" ..." if len(self.symbols) > 20 else "")
            raise RnnlabError(f"--input-token {name!r} is not in the vocabulary of {self.name}: {shown}")
        return self.symbols.index(name)


def recurrent_network(
    name: str, rnn: Recurrent, inputs: Tensor, symbols: tuple[str, ...], head: nn.Module | None = None
) -> Network:
    """A copy of an rnnlab recurrent stack (any registered cell, any layers) as a `Network`, on its step loop
    (forward-mode derivatives need primitive ops) in float64; `head` maps the top layer's h to class logits."""
    rnn = step_loops(copy.deepcopy(rnn)).double().eval().requires_grad_(False)
    head = copy.deepcopy(head).double().eval().requires_grad_(False) if head is not None else None
    inputs = inputs.detach().double()
    with torch.no_grad():
        _, probe = rnn(inputs[:1, None], rnn.initial_state(1))
    shapes = [p.shape[:1] + p.shape[2:] for p in state_tensors(probe)]  # each part (L, ...) without N
    sizes = [math.prod(s) for s in shapes]

    def flat(state: object) -> Tensor:
        return torch.cat([p.transpose(0, 1).reshape(p.shape[1], -1) for p in state_tensors(state)], 1)

    def unflat(h: Tensor) -> object:
        chunks = h.split(sizes, 1)
        return state_from_tensors([c.reshape(len(h), *s).transpose(0, 1) for c, s in zip(chunks, shapes, strict=True)])

    def step(h: Tensor, x: Tensor) -> Tensor:
        _, state = rnn(x[:, None], unflat(h))
        return flat(state)

    readout = None
    if head is not None:

        def readout(h: Tensor) -> Tensor:
            top = state_tensors(unflat(h))[0][-1]  # the first part (h) of the top layer
            return head(top).argmax(-1)

    learned = rnn.initial_state(1)
    h0 = flat(learned).detach()[0] if learned is not None else torch.zeros(sum(sizes), dtype=torch.float64)
    return Network(name, step, symbols, inputs, h0, readout)


# The hand-built networks. Units are sigmoids of gain GAIN, steep enough to act as the lectures' binary units.

GAIN = 10.0


def _sigmoid_network(name: str, W: list, U: list, b: list, readout: list, symbols: tuple[str, ...]) -> Network:
    """h' = σ(GAIN (W h + U x + b)); the output is 1 where readout · h > ½; inputs are the symbols' bits."""
    W_, U_, b_, r_ = (torch.tensor(v, dtype=torch.float64) for v in (W, U, b, readout))
    inputs = torch.tensor([[float(c) for c in s] for s in symbols], dtype=torch.float64)
    return Network(
        name,
        lambda h, x: torch.sigmoid(GAIN * (h @ W_.T + x @ U_.T + b_)),
        symbols,
        inputs,
        torch.zeros(len(b), dtype=torch.float64),
        lambda h: (h @ r_ > 0.5).long(),
    )


def parity_network() -> Network:
    """Parity of the bits so far: h1 = [parity was 1 and x = 0], h2 = [parity was 0 and x = 1], so the parity
    is h1 + h2 (XOR needs the two units: one layer cannot compute it from p and x in one unit)."""
    return _sigmoid_network("hand-built parity", [[1, 1], [-1, -1]], [[-1], [1]], [-0.5, -0.5], [1, 1], ("0", "1"))


def addition_network() -> Network:
    """Lecture 7's serial adder (least significant column first): h_i = [a + b + carry ≥ i] for i = 1, 2, 3, the
    carry is h2 and the sum bit h1 − h2 + h3, so its four states are the (carry, sum) patterns."""
    W = [[0, 1, 0]] * 3
    U = [[1, 1]] * 3
    return _sigmoid_network("hand-built adder", W, U, [-0.5, -1.5, -2.5], [1, -1, 1], ("00", "01", "10", "11"))


def repeated_ones_network() -> Network:
    """The lectures' ReLU detector (rnnlab.reference.examples.repeated_ones_detector): h1 = x_t, h2 = x_{t−1},
    h3 = 1 from h_0 = (0, 0, 1); the output ReLU(h1 + h2 − h3) is 1 when the last two bits are 1."""
    W_hh = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    W_xh = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    w_yh = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    return Network(
        "hand-built repeated-ones detector",
        lambda h, x: torch.relu(h @ W_hh.T + x @ W_xh.T),
        ("0", "1"),
        torch.tensor([[0.0], [1.0]], dtype=torch.float64),
        torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
        lambda h: (torch.relu(h @ w_yh) > 0.5).long(),
    )


@dataclass(frozen=True)
class Builtin:
    """A hand-built network, the machine it implements and the input its fixed points are shown for."""

    network: Callable[[], Network]
    machine: Callable[[], Automaton]
    symbol: str


BUILTINS: dict[str, Builtin] = {
    "repeated-ones": Builtin(repeated_ones_network, automata.repeated_ones, "1"),
    "parity": Builtin(parity_network, automata.parity, "0"),
    "addition": Builtin(addition_network, automata.binary_addition, "10"),
}


# Fixed and slow points.


@dataclass
class FixedPoint:
    """A point h with speed ‖F(h) − h‖, the eigenvalues of ∂F/∂h there, and what they make it."""

    h: np.ndarray  # (S,)
    speed: float
    eigenvalues: np.ndarray  # (S,) complex, by decreasing modulus
    kind: str  # stable, saddle, unstable or marginal

    @property
    def status(self) -> str:
        """fixed, slow, or moving (the slowest point found where none is slow)."""
        return "fixed" if self.speed < FIXED_TOL else "slow" if self.speed < SLOW_TOL else "moving"

    @property
    def unstable_directions(self) -> int:
        return int((np.abs(self.eigenvalues) > 1 + MARGINAL_TOL).sum())


def jacobians(step: Step, h: Tensor, x: Tensor) -> Tensor:
    """∂F/∂h (K, S, S) at the K points h (K, S) under the inputs x (K, D): each point copied S times and one
    backward pass of Σ_i F_i(copy i), so row i of the copy's gradient is row i of its Jacobian."""
    K, S = h.shape
    rows = h.detach().repeat_interleave(S, 0).requires_grad_(True)
    out = step(rows, x.repeat_interleave(S, 0))
    (grad,) = torch.autograd.grad((out * torch.eye(S, dtype=out.dtype).repeat(K, 1)).sum(), rows)
    return grad.view(K, S, S)


def classify(eigenvalues: np.ndarray) -> str:
    """stable: every |λ| < 1; unstable: every |λ| > 1; saddle: some of each; marginal: none above 1, some at 1."""
    modulus = np.abs(eigenvalues)
    out, inside = int((modulus > 1 + MARGINAL_TOL).sum()), int((modulus < 1 - MARGINAL_TOL).sum())
    if out == 0:
        return "stable" if inside == len(modulus) else "marginal"
    return "unstable" if out == len(modulus) else "saddle"


def find_fixed_points(
    step: Step,
    x: Tensor,
    starts: Tensor,
    max_iter: int = 200,
    slow_tol: float = SLOW_TOL,
    merge_tol: float = 1e-3,
) -> list[FixedPoint]:
    """Fixed and slow points of h -> step(h, x) for one input x (D,), from each start (K, S).

    L-BFGS minimises Σ_k q(h_k) (the points are independent, so this is each q minimised), then Newton steps
    h <- h − (J − I)⁻¹ (F(h) − h) take the points that are nearly fixed to machine precision. Points slower
    than `slow_tol` are dropped (where every point is, the slowest one is kept, to say how close the map comes
    to a fixed point); points within `merge_tol` of a faster one are the same point. Sorted by speed.
    """
    K = starts.shape[0]
    xs = x.to(torch.float64).expand(K, -1)
    h = starts.detach().to(torch.float64).clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS(
        [h], lr=1.0, max_iter=max_iter, history_size=50, tolerance_grad=1e-15, tolerance_change=1e-20,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> Tensor:
        optimiser.zero_grad()
        q = 0.5 * ((step(h, xs) - h) ** 2).sum()
        q.backward()
        return q

    optimiser.step(closure)
    h = h.detach()
    h = _newton(step, h, xs)
    with torch.no_grad():
        speed = (step(h, xs) - h).norm(dim=1)
    keep = torch.nonzero(speed < slow_tol).flatten()
    keep = keep[torch.argsort(speed[keep])] if len(keep) else speed.argmin().view(1)
    chosen: list[int] = []
    for i in keep.tolist():
        if all(float((h[i] - h[j]).norm()) > merge_tol for j in chosen):
            chosen.append(i)
    J = jacobians(step, h[chosen], xs[: len(chosen)]).numpy()
    points = []
    for row, i in enumerate(chosen):
        eig = np.linalg.eigvals(J[row])
        eig = eig[np.argsort(-np.abs(eig), kind="stable")]
        points.append(FixedPoint(h[i].numpy(), float(speed[i]), eig, classify(eig)))
    return points


def _newton(step: Step, h: Tensor, xs: Tensor, iters: int = 8, near: float = SLOW_TOL) -> Tensor:
    """Newton's method on F(h) − h = 0 for the points already within `near` of fixed; a point leaves as soon as
    a step fails to halve its speed (a slow point, which no step makes fixed), keeping its best position."""
    with torch.no_grad():
        speed = (step(h, xs) - h).norm(dim=1)
    rows = torch.nonzero((speed < near) & (speed > 0)).flatten()
    h = h.clone()
    eye = torch.eye(h.shape[1], dtype=h.dtype)
    for _ in range(iters):
        if len(rows) == 0:
            break
        p, x = h[rows], xs[rows]
        with torch.no_grad():
            residual = step(p, x) - p
        move, info = torch.linalg.solve_ex(jacobians(step, p, x) - eye, residual)
        with torch.no_grad():
            after = (step(p - move, x) - (p - move)).norm(dim=1)
        better = (info == 0) & torch.isfinite(after) & (after < 0.5 * residual.norm(dim=1))
        h[rows[better]] = (p - move)[better]
        rows = rows[better & (after > 0)]
    return h


def sample_starts(states: Tensor, n: int, noise: float, generator: torch.Generator) -> Tensor:
    """`n` starts from visited states (M, S): half are visited states plus Gaussian noise of `noise` times
    each unit's spread, half lie at random on segments between two visited states, where saddles between
    attractors are found."""
    M = states.shape[0]
    a = states[torch.randint(M, (n,), generator=generator)]
    b = states[torch.randint(M, (n,), generator=generator)]
    spread = states.std(0).clamp(min=1e-3)
    jitter = a + noise * spread * torch.randn(a.shape, generator=generator, dtype=a.dtype)
    mix = a + torch.rand((n, 1), generator=generator, dtype=a.dtype) * (b - a)
    return torch.where(torch.arange(n)[:, None] % 2 == 0, jitter, mix)


# Lyapunov exponents.


def lyapunov(step: Step, xs: Tensor, h0: Tensor, transient: int = TRANSIENT, seed: int = 0) -> np.ndarray:
    """The largest Lyapunov exponent (nats per step) of h_t = step(h_{t−1}, x_t) along each of the N streams of
    inputs xs (N, T, D) from h0 (N, S): a random unit tangent vector is pushed forward by the Jacobian (a
    forward-mode derivative, exact) and renormalised every step; the mean log growth after `transient`
    steps, which let the vector align with the most expanding direction."""
    N, T, _ = xs.shape
    if transient >= T:
        raise RnnlabError(f"the Lyapunov exponent needs more than {transient} steps of input, got {T}")
    generator = torch.Generator().manual_seed(seed)
    h = h0.to(torch.float64).clone()
    v = torch.randn(h.shape, generator=generator, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    total = torch.zeros(N, dtype=torch.float64)
    for t in range(T):
        x = xs[:, t].to(torch.float64)
        h, v = torch.func.jvp(lambda state, x=x: step(state, x), (h,), (v,))
        growth = v.norm(dim=1).clamp(min=1e-300)
        if t >= transient:
            total += growth.log()
        v = v / growth[:, None]
        h = h.detach()
    return (total / (T - transient)).numpy()


def regime(exponent: float) -> str:
    """ordered (perturbations die out), edge of chaos, or chaotic (they grow)."""
    if exponent > EDGE_BAND:
        return "chaotic"
    return "ordered" if exponent < -EDGE_BAND else "edge of chaos"


def spectral_sweep(
    config: ModelConfig, rhos: tuple[float, ...], tokens: Tensor, driven: bool = True, seed: int = 0,
    transient: int = TRANSIENT,
) -> dict[float, float]:  # fmt: skip
    """The largest Lyapunov exponent of a random one-layer rnn-tanh network of `config`'s sizes (rnnlab's cell,
    PyTorch's initialisation) with its W_hh scaled to each spectral radius, driven by `tokens` (N, T) through its
    embedding (or, `driven=False`, with zero input for as many steps), from random states in (−½, ½); mean over
    the N streams. One random network, its W_hh scaled: every radius runs in one batch."""
    sizes = ModelConfig(vocab_size=config.vocab_size, cell="rnn-tanh", layers=1, hidden=config.hidden,
                        embed=config.embed)  # fmt: skip
    model = untrained(sizes, "rnn-tanh", seed)
    set_spectral_radius(model, 1.0)
    W_ih, W_hh, b_ih, b_hh = (w.detach().double() for w in model.rnn.layers[0].gate_weights())
    embedding = model.embed.weight.detach().double() if model.embed is not None else torch.eye(config.vocab_size)
    step = sweep_step(W_ih, W_hh, b_ih + b_hh, rhos)
    R, N, H = len(rhos), tokens.shape[0], config.hidden
    xs = embedding.double()[tokens].repeat(R, 1, 1)
    if not driven:
        xs = torch.zeros_like(xs)
    generator = torch.Generator().manual_seed(seed)
    h0 = (torch.rand(N, H, generator=generator, dtype=torch.float64) - 0.5).repeat(R, 1)
    exponents = lyapunov(step, xs, h0, transient, seed)
    return {rho: float(e) for rho, e in zip(rhos, exponents.reshape(R, N).mean(1), strict=True)}


def sweep_step(W_ih: Tensor, W_hh: Tensor, bias: Tensor, rhos: tuple[float, ...]) -> Step:
    """h' = tanh(W_ih x + ρ W_hh h + b) for each ρ at once: the states (R · N, H) are R blocks of N rows."""
    W = torch.stack([rho * W_hh.T for rho in rhos])  # (R, H, H)

    def step(h: Tensor, x: Tensor) -> Tensor:
        recurrent = torch.bmm(h.view(len(rhos), -1, h.shape[1]), W).reshape(h.shape)
        return torch.tanh(x @ W_ih.T + bias + recurrent)

    return step


def threshold(sweep: dict[float, float]) -> float | None:
    """The spectral radius where the exponent first crosses 0 going up the sweep (linear interpolation)."""
    rhos = sorted(sweep)
    for lo, hi in itertools.pairwise(rhos):
        if sweep[lo] <= 0 < sweep[hi]:
            return lo + (hi - lo) * (0 - sweep[lo]) / (sweep[hi] - sweep[lo])
    return None


def lm_network(module: nn.Module, symbols: tuple[str, ...]) -> Network:
    """A language model (rnnlab.lm.model.RNNLM) as a `Network`: each token's input is its embedding (or
    one-hot vector), the state every layer's state."""
    inputs = module.embed.weight if module.embed is not None else torch.eye(module.config.vocab_size)
    return recurrent_network(f"{module.config.cell} language model", module.rnn, inputs, symbols)


# Oscillation and a point attractor: two planar tanh networks h' = tanh(r R(θ) h).


@dataclass
class PlanarExample:
    """A 2-unit tanh network h' = tanh(W h), trajectories from several starts, and its Lyapunov exponent."""

    W: np.ndarray  # (2, 2)
    trajectories: np.ndarray  # (starts, T, 2)
    exponent: float


def planar_examples(steps: int = 80, angle: float = 0.5) -> dict[str, PlanarExample]:
    """Rotation by `angle` scaled by 1.2 (the origin repels, tanh bounds the growth: an oscillation on a closed
    curve) and by 0.9 (every trajectory spirals into the origin: a point attractor)."""
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    starts = torch.tensor([[0.05, 0.0], [0.9, 0.9], [-0.8, 0.3], [0.0, -0.5]], dtype=torch.float64)
    out = {}
    for name, r in (("oscillation", 1.2), ("point attractor", 0.9)):
        W = torch.tensor(r * rotation)

        def step(h: Tensor, x: Tensor, W: Tensor = W) -> Tensor:
            return torch.tanh(h @ W.T)

        h, path = starts, [starts]
        for _ in range(steps):
            h = step(h, h)
            path.append(h)
        xs = torch.zeros(1, 400, 1, dtype=torch.float64)
        exponent = float(lyapunov(step, xs, starts[1:2], transient=100)[0])
        out[name] = PlanarExample(W.numpy(), torch.stack(path, 1).numpy(), exponent)
    return out


# State machines.


@dataclass
class MachineReport:
    """A machine read out of a network, and how it and the network do against the true machine."""

    name: str
    truth: Automaton  # minimised
    extraction: Extraction
    network_accuracy: float  # per step, on held-out strings longer than those it saw
    machine_accuracy: float  # the extracted machine, on the same strings
    test_length: int
    counterexample: list[str] | None  # a shortest string telling the two machines apart; None: equivalent
    training: str = ""  # how the network was made

    @property
    def equivalent(self) -> bool:
        return self.counterexample is None


def read_machine(
    net: Network,
    truth: Automaton,
    seed: int = 0,
    length: int = 12,
    test_length: int = 40,
    max_k: int = 12,
    strings: int = 300,
) -> tuple[Extraction, float, float, list[str] | None]:
    """Read the machine out of `net` (which must have a readout, over the symbols of `truth`), choosing k on
    held-out strings of `length`, and test it and the network on strings of `test_length`."""
    if net.readout is None:
        raise RnnlabError(f"{net.name} has no output to read a machine from")
    rng = np.random.default_rng(seed)
    A = len(truth.symbols)
    with torch.no_grad():
        visited = net.run(torch.as_tensor(automata.random_strings(strings, length, A, rng)))
        states = torch.unique(visited[:, 1:].reshape(-1, visited.shape[-1]), dim=0)
        if len(states) > 4000:
            states = states[torch.as_tensor(rng.choice(len(states), 4000, replace=False))]
        states = torch.cat([net.h0[None], states])  # the initial state first (automata.quantise)
        successors = torch.stack([net.step(states, net.inputs[a].expand(len(states), -1)) for a in range(A)], 1)
        outputs = net.readout(states)
        held_out = automata.random_strings(strings, length, A, rng)
        held_out_outputs = net.readout(net.run(torch.as_tensor(held_out))[:, 1:].reshape(-1, states.shape[1]))
        test = automata.random_strings(strings, test_length, A, rng)
        predicted = net.readout(net.run(torch.as_tensor(test))[:, 1:].reshape(-1, states.shape[1]))
    ks = range(2, min(max_k, len(states)) + 1)
    extraction = automata.extract(
        truth.symbols,
        states.numpy(),
        successors.numpy(),
        outputs.numpy(),
        held_out,
        held_out_outputs.numpy().reshape(held_out.shape),
        ks,
        seed,
    )
    expected = truth.run(test)
    network_accuracy = float((predicted.numpy().reshape(test.shape) == expected).mean())
    machine_accuracy = float((extraction.machine.run(test) == expected).mean())
    return extraction, network_accuracy, machine_accuracy, automata.counterexample(extraction.machine, truth)


def builtin_machine(name: str, seed: int = 0) -> MachineReport:
    """The machine read out of the hand-built network `name`, against the machine it was built to be."""
    builtin = BUILTINS[name]
    truth = automata.minimise(builtin.machine())
    extraction, net_acc, machine_acc, counter = read_machine(builtin.network(), truth, seed)
    return MachineReport(name, truth, extraction, net_acc, machine_acc, 40, counter, "hand-built")


def trained_machine(language: str, steps: int = 400, seed: int = 0, hidden: int = 16) -> MachineReport:
    """Train a one-layer GRU tagger (rnnlab.seq.tagger) to say after every symbol whether the string so far is
    in `language`, on 2,000 random strings of length 12, then read its machine out and test it on length 40."""
    from rnnlab.seq.sequence import SeqConfig
    from rnnlab.seq.tagger import Tagger

    if language not in automata.LANGUAGES:
        raise RnnlabError(f"unknown language {language!r}; choose from {', '.join(automata.LANGUAGES)}")
    truth = automata.minimise(automata.LANGUAGES[language]())
    rng = np.random.default_rng(seed)
    strings = automata.random_strings(2000, 12, len(truth.symbols), rng)
    tags = truth.run(strings)
    examples = [
        ([truth.symbols[s] for s in row], ["yes" if t else "no" for t in tag])
        for row, tag in zip(strings.tolist(), tags.tolist(), strict=True)
    ]
    config = SeqConfig(cell="gru", hidden=hidden, layers=1, embed=8, steps=steps, batch_size=32, lr=1e-2, seed=seed)
    tagger = Tagger.train(examples, config)
    ids = torch.tensor([tagger.vocab.index[s] for s in truth.symbols])
    module = tagger.module
    net = recurrent_network(
        f"gru tagger on {language}", module.rnn, module.embed.weight[ids], truth.symbols, head=module.head
    )
    extraction, net_acc, machine_acc, counter = read_machine(net, truth, seed)
    training = f"one-layer GRU, H = {hidden}, {steps} Adam steps on strings of length 12"
    return MachineReport(language, truth, extraction, net_acc, machine_acc, 40, counter, training)


# The whole probe.


@dataclass
class DynamicsProbe:
    """Everything `rnnlab probe dynamics` reports."""

    network: str
    symbol: str  # the constant input of the fixed-point analysis
    points: list[FixedPoint]
    visited: np.ndarray  # (N, T + 1, S) states under the driving input
    settling: np.ndarray  # (N, 50, S) then under the constant input alone
    drive: str  # what the driving input was
    exponent: float  # largest Lyapunov exponent of the network under the driving input
    sweeps: dict[str, dict[float, float]]  # driven / no input -> spectral radius -> exponent
    sweep_sizes: str
    examples: dict[str, PlanarExample]
    machines: list[MachineReport] = field(default_factory=list)


def probe(
    net: Network,
    symbol: str,
    drive: Tensor,
    drive_name: str,
    sweep_config: ModelConfig,
    sweep_tokens: Tensor,
    rhos: tuple[float, ...],
    starts: int = 64,
    seed: int = 0,
) -> DynamicsProbe:
    """Fixed points of `net` under `symbol`, from states visited on `drive` (N, T) symbol ids and after it under
    the constant input, and its Lyapunov exponent along `drive`; the spectral-radius sweeps, driven by
    `sweep_tokens` and without input; the planar examples."""
    x = net.inputs[net.symbol(symbol)]
    generator = torch.Generator().manual_seed(seed)
    visited = net.run(drive)  # (N, T + 1, S)
    with torch.no_grad():
        h, settling = visited[:, -1], []
        for _ in range(50):
            h = net.step(h, x.expand(len(h), -1))
            settling.append(h)
    settled = torch.stack(settling, 1)
    pool = torch.cat([visited.reshape(-1, visited.shape[-1]), settled.reshape(-1, settled.shape[-1])])
    points = find_fixed_points(net.step, x, sample_starts(pool, starts, 0.05, generator))
    exponent = float(lyapunov(net.step, net.inputs[drive], visited[:, 0], seed=seed).mean())
    sweeps = {
        drive_name: spectral_sweep(sweep_config, rhos, sweep_tokens, True, seed),
        "no input": spectral_sweep(sweep_config, rhos, sweep_tokens, False, seed),
    }
    sizes = f"rnn-tanh, H = {sweep_config.hidden}, D = {sweep_config.embed or sweep_config.vocab_size}"
    return DynamicsProbe(
        net.name, symbol, points, visited.numpy(), settled.numpy(), drive_name, exponent, sweeps, sizes,
        planar_examples(),
    )  # fmt: skip


SWEEP_SIZES = ModelConfig(vocab_size=16, cell="rnn-tanh", layers=1, hidden=128, embed=32)  # for the builtins


def probe_builtin(
    name: str, symbol: str | None, rhos: tuple[float, ...], steps: int = 300, starts: int = 64, seed: int = 0
) -> DynamicsProbe:
    """`probe` on a hand-built network driven by random symbols, with its machine read out; the sweep's network
    has SWEEP_SIZES and reads random tokens."""
    if name not in BUILTINS:
        raise RnnlabError(f"unknown --builtin {name!r}; choose from {', '.join(BUILTINS)}")
    builtin = BUILTINS[name]
    net = builtin.network()
    generator = torch.Generator().manual_seed(seed)
    drive = torch.randint(len(net.symbols), (4, steps), generator=generator)
    tokens = torch.randint(SWEEP_SIZES.vocab_size, (4, steps), generator=generator)
    result = probe(net, symbol or builtin.symbol, drive, "random input", SWEEP_SIZES, tokens, rhos, starts, seed)
    result.machines.append(builtin_machine(name, seed))
    return result


def probe_language_model(
    lm: LanguageModel, token: str | None, rhos: tuple[float, ...], steps: int = 300, starts: int = 64, seed: int = 0
) -> DynamicsProbe:
    """`probe` on a trained language model under `token` (default: the most frequent training token), driven by
    its training text (up to 4 streams of `steps` tokens); the sweep's network has the model's sizes."""
    V = lm.module.config.vocab_size
    decode = lm.tokenizer.decoder()
    symbols = tuple(decode(i) for i in range(V))
    if lm.run_dir is None:
        raise RnnlabError("the dynamics probe needs the run directory's training text")
    train = np.asarray(TokenStore.open(lm.run_dir).train.tokens)
    streams = min(4, len(train) // steps)
    if streams < 1:
        raise RnnlabError(f"the run has {len(train)} training tokens; use --steps below that")
    drive = torch.as_tensor(train[: streams * steps].astype("int64")).view(streams, steps)
    if token is None:
        token = symbols[int(np.bincount(train, minlength=V).argmax())]
    elif token not in symbols:
        token = _ESCAPES.get(token, token)
    net = lm_network(lm.module, symbols)
    net.symbol(token)  # an unknown token is an error before any work
    return probe(net, token, drive, "training text", lm.module.config, drive, rhos, starts, seed)


_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\r": "\r", "\\s": " "}  # --input-token '\n' for a newline


def summary(probe: DynamicsProbe) -> str:
    """A few lines for the terminal: the points by kind, the exponents, the thresholds and the machines."""
    counts: dict[str, int] = {}
    for p in probe.points:
        label = f"{p.status} {p.kind}"
        counts[label] = counts.get(label, 0) + 1
    found = ", ".join(f"{n} {label}" for label, n in counts.items())
    lines = [
        f"points under {probe.symbol!r}: {found} (slowest speed {probe.points[0].speed:.2e})",
        f"Lyapunov exponent on {probe.drive}: {probe.exponent:+.4f} nats/step ({regime(probe.exponent)})",
    ]
    for name, sweep in probe.sweeps.items():
        crossing = threshold(sweep)
        where = f"turns positive at rho = {crossing:.2f}" if crossing is not None else "does not cross 0"
        lines.append(f"random rnn-tanh sweep, {name}: the exponent {where}")
    for example, planar in probe.examples.items():
        lines.append(f"{example}: exponent {planar.exponent:+.4f}")
    for m in probe.machines:
        verdict = "equivalent to the true machine" if m.equivalent else "not equivalent"
        lines.append(
            f"machine of {m.name}: {m.extraction.machine.size} states (true {m.truth.size}), {verdict}; "
            f"length {m.test_length}: machine {m.machine_accuracy:.1%}, network {m.network_accuracy:.1%}"
        )
    return "\n".join(lines)
