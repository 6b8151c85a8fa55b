"""A discrete hidden Markov model language model: Baum-Welch (EM) training with the scaled forward-backward
algorithm, exact scoring with the scaled forward algorithm, sampling, and the `hmm` run directory.

The model: an initial state distribution pi (N), transitions A (N, N) and emissions B (N, V), each row a
probability distribution. It predicts the next token as a mixture of its N emission rows weighted by the
posterior over its state, so whatever it knows about the past passes through N values: against the text's own
unigram entropy it can save at most log2 N bits per token (benchmarks/hmm_memory.py measures this bound).

Training cuts the text into chunks of L tokens, each begun from pi, and runs the forward-backward recursions
over G chunks at once, time-major, so every step is one (G, N) x (N, N) product; the expected transition counts
are one large product of the stored forward and backward variables, and the expected emission counts an
`index_add_` over the tokens, so a vocabulary of many thousands of words costs O(T N), not O(T N V). Scoring
carries the state across the whole text in float64, every token once. Sizes: N states, V vocabulary, T tokens.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rnnlab.config import TrainConfig, check_types, max_time_opt, opt
from rnnlab.data.corpus import read_text, resolve_inputs
from rnnlab.data.prepare import TokenStore, build_token_store
from rnnlab.data.tokenizers import Tokenizer, load_tokenizer
from rnnlab.errors import RnnlabError
from rnnlab.metrics import LN2, Score
from rnnlab.rundir import (
    CONFIG,
    METRICS,
    TOKENIZER,
    WEIGHTS,
    atomic_save_tensors,
    building,
    check_new_run,
    check_state_dict,
    load_tensors,
    read_run,
    write_run_config,
)
from rnnlab.ui import console

Precision = Literal["fp32", "fp64"]
Init = Literal["bigram", "random"]
# The data options of `rnnlab train` that `rnnlab hmm train` shares (the same tokenizers and validation split).
DATA_OPTIONS = (
    "inputs",
    "val_files",
    "val_fraction",
    "tokenizer",
    "unknown",
    "vocab_size_limit",
    "min_count",
    "lowercase",
    "word_pattern",
)
BUFFER_ELEMENTS = 1 << 24  # floats per forward/backward buffer: G x L x N is kept near this (three buffers)
ROW_TOLERANCE = 1e-6  # a loaded row of probabilities must sum to one within this
INIT_SPREAD = 0.1  # the share of each initial emission row spread over every token (HMM.from_bigrams)


@dataclass
class HMMConfig:
    """How to build and train an HMM language model (the data options are TrainConfig's, see DATA_OPTIONS)."""

    states: int = opt(64, "Hidden states N.", "Model")
    prior: float = opt(
        1.0,
        "Emission prior: pseudo-tokens per state, spread as the training unigram (0: maximum likelihood).",
        "Model",
    )
    chunk: int = opt(256, "Training chunk length L (each chunk starts from the initial distribution).", "Data")
    max_iters: int = opt(100, "Stop after this many EM iterations (0: no limit).", "Budget")
    max_time: float = max_time_opt()
    tol: float = opt(
        1e-4, "Stop when an iteration gains less training log-likelihood than this, in nats per token.", "Budget"
    )
    init: Init = opt(
        "bigram", "Start from a class bigram model of the training text, or from random parameters.", "Optimisation"
    )
    seed: int = opt(1337, "Seed of the initial parameters.", "Optimisation")
    precision: Precision = opt("fp32", "Arithmetic of the training recursions (scoring is float64).", "Hardware")

    def validate(self) -> None:
        """Raise RnnlabError for impossible values."""
        check_types(self)
        if self.states < 1:
            raise RnnlabError(f"--states must be >= 1, got {self.states}")
        if self.chunk < 2:
            raise RnnlabError(f"--chunk must be >= 2, got {self.chunk}")
        if self.prior < 0:
            raise RnnlabError(f"--prior must be >= 0, got {self.prior}")
        if self.max_iters < 0:
            raise RnnlabError(f"--max-iters must be >= 0 (0: no limit), got {self.max_iters}")
        if self.max_time < 0:
            raise RnnlabError(f"--max-time must be >= 0 (0: no limit), got {self.max_time}")
        if self.tol < 0:
            raise RnnlabError(f"--tol must be >= 0, got {self.tol}")
        if not 0 <= self.seed < 2**63:
            raise RnnlabError(f"--seed must be in [0, 2**63), got {self.seed}")
        if self.init not in ("bigram", "random"):
            raise RnnlabError(f"--init must be bigram or random, got {self.init!r}")
        if self.precision not in ("fp32", "fp64"):
            raise RnnlabError(f"--precision must be fp32 or fp64, got {self.precision!r}")


@dataclass
class HMM:
    """The parameters, float64: `initial` pi (N,), `transition` A (N, N), `emission` B (N, V)."""

    initial: np.ndarray
    transition: np.ndarray
    emission: np.ndarray

    @property
    def states(self) -> int:
        return len(self.initial)

    @property
    def vocab_size(self) -> int:
        return self.emission.shape[1]

    @classmethod
    def random(cls, states: int, unigram: np.ndarray, seed: int) -> HMM:
        """A starting point for EM: uniform pi, transition rows drawn uniformly from the simplex, emission rows =
        the unigram times exponential noise. Identical states would stay identical under EM; strong noise breaks
        the symmetry at once (near-uniform rows cost EM a dozen iterations to leave)."""
        rng = np.random.default_rng(seed)
        emission = unigram * rng.exponential(1.0, (states, len(unigram)))
        return cls(
            np.full(states, 1.0 / states),
            rng.dirichlet(np.ones(states), states),
            emission / emission.sum(1, keepdims=True),
        )

    @classmethod
    def from_bigrams(cls, tokens: np.ndarray, vocab_size: int, states: int, seed: int) -> HMM:
        """A starting point for EM that is already a class bigram model, so that EM refines a useful model
        instead of spending its first iterations leaving the near-symmetric random start (with hundreds of
        states, dozens of them). Tokens ranked by frequency are dealt to the states in turn (rank r to state
        r mod N: the N most frequent tokens head a state each); with more states than tokens, each token heads
        several states. Emissions are each state's tokens by frequency, transitions the class bigram counts,
        both with noise, and a share INIT_SPREAD of every emission row is spread over all tokens (as the
        unigram), so that EM can move any token to any state."""
        rng = np.random.default_rng(seed)
        N, V = states, vocab_size
        counts = np.bincount(tokens, minlength=V).astype(np.float64)
        rank = np.argsort(-counts, kind="stable")  # token ids, most frequent first
        emission = np.zeros((N, V))
        if N <= V:
            state_of = np.empty(V, dtype=np.int64)
            state_of[rank] = np.arange(V) % N
            emission[state_of, np.arange(V)] = counts
            path = state_of[tokens]
            pairs = np.bincount(path[:-1] * N + path[1:], minlength=N * N).reshape(N, N).astype(np.float64)
        else:
            head = rank[np.arange(N) % V]  # the token each state emits
            copies = np.bincount(head, minlength=V).astype(np.float64)
            emission[np.arange(N), head] = counts[head] / copies[head]
            bigrams = np.bincount(tokens[:-1] * V + tokens[1:], minlength=V * V).reshape(V, V)
            pairs = bigrams[head][:, head] / copies[head][None, :]
        transition = (pairs + 1.0) * rng.uniform(0.5, 1.5, (N, N))
        spread = unigram(tokens, V) * rng.exponential(1.0, (N, V))
        own = emission * rng.uniform(0.5, 1.5, (N, V))
        emission = (1 - INIT_SPREAD) * own / np.maximum(own.sum(1, keepdims=True), 1e-300)
        emission += INIT_SPREAD * spread / spread.sum(1, keepdims=True)
        return cls(
            np.full(N, 1.0 / N),
            transition / transition.sum(1, keepdims=True),
            emission / emission.sum(1, keepdims=True),
        )

    def token_nats(self, ids: np.ndarray) -> np.ndarray:
        """-ln p(x_t | x_<t) of every token (t = 0: -ln p(x_0)), by the scaled forward algorithm carrying the
        state across the whole text: alpha_t = normalise((alpha_{t-1} A) * B[:, x_t]), p(x_t | x_<t) = the
        normaliser."""
        A, BT = self.transition, np.ascontiguousarray(self.emission.T)
        alpha = self.initial
        scale = np.ones(len(ids))  # after an impossible token (probability 0) the rest is left at 1
        for t, token in enumerate(ids.tolist()):
            alpha = (alpha @ A if t else alpha) * BT[token]
            scale[t] = total = alpha.sum()
            if not total > 0:
                break
            alpha = alpha / total
        with np.errstate(divide="ignore"):
            return -np.log(scale)

    def next_state(self, prime: np.ndarray) -> np.ndarray:
        """The distribution of the state that emits the token after `prime` (pi when `prime` is empty)."""
        alpha = self.initial
        for t, token in enumerate(prime.tolist()):
            alpha = (alpha @ self.transition if t else alpha) * self.emission[:, token]
            if not alpha.sum() > 0:
                raise RnnlabError("the prime is impossible under this model (probability 0)")
            alpha = alpha / alpha.sum()
        return alpha @ self.transition if len(prime) else alpha

    def sample(self, length: int, rng: np.random.Generator, prime: np.ndarray | None = None) -> np.ndarray:
        """`length` token ids drawn from the model, continuing `prime` (ids) if given."""
        state_cdf = np.cumsum(self.transition, axis=1)
        token_cdf = np.cumsum(self.emission, axis=1)
        first = np.cumsum(self.next_state(np.zeros(0, np.int64) if prime is None else prime))
        draws = rng.random((length, 2))
        out = np.empty(length, dtype=np.int64)
        state = -1
        for t in range(length):
            cdf = first if t == 0 else state_cdf[state]
            state = min(int(np.searchsorted(cdf, draws[t, 0] * cdf[-1], side="right")), self.states - 1)
            row = token_cdf[state]
            out[t] = min(int(np.searchsorted(row, draws[t, 1] * row[-1], side="right")), self.vocab_size - 1)
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in asdict(self).items()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], states: int, vocab_size: int, source: Path) -> HMM:
        """Check names, shapes and values (non-negative rows that sum to one), then build the model."""
        expected = {
            "initial": torch.Size([states]),
            "transition": torch.Size([states, states]),
            "emission": torch.Size([states, vocab_size]),
        }
        check_state_dict(expected, tensors, source)
        arrays = {}
        for name, tensor in tensors.items():
            value = tensor.to(torch.float64).numpy()
            rows = np.atleast_2d(value)
            if (value < 0).any() or not np.allclose(rows.sum(1), 1.0, rtol=0, atol=ROW_TOLERANCE):
                raise RnnlabError(f"{source}: {name} is not made of probability distributions (rows summing to 1)")
            arrays[name] = value  # as saved, not renormalised: the loaded model computes what the saved one did
        return cls(**arrays)


@dataclass
class Counts:
    """Expected counts of one E-step (float64) and the training log-likelihood it measured."""

    initial: np.ndarray
    transition: np.ndarray
    emission: np.ndarray  # (V, N), the layout index_add_ fills
    log_likelihood: float
    tokens: int


def expected_counts(
    model: HMM,
    tokens: np.ndarray,
    chunk: int,
    dtype: torch.dtype = torch.float64,
    progress: Callable[[int], None] | None = None,
    deadline: float | None = None,
) -> Counts | None:
    """The E-step over `tokens` cut into chunks of `chunk` tokens (the last one shorter), each begun from pi.
    `progress` is told the tokens done; past `deadline` (time.perf_counter) it returns None, counts unfinished."""
    N, V = model.states, model.vocab_size
    pi, A = torch.from_numpy(model.initial).to(dtype), torch.from_numpy(model.transition).to(dtype)
    BT = torch.from_numpy(np.ascontiguousarray(model.emission.T)).to(dtype)
    ids = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    counts = Counts(np.zeros(N), np.zeros((N, N)), np.zeros((V, N)), 0.0, len(ids))
    emission = torch.zeros(V, N, dtype=dtype)
    group = max(1, BUFFER_ELEMENTS // (chunk * N))  # chunks per group
    full = len(ids) // chunk
    spans = [(start, min(group, full - start // chunk), chunk) for start in range(0, full * chunk, group * chunk)]
    if len(ids) % chunk:
        spans.append((full * chunk, 1, len(ids) % chunk))
    done = 0
    for start, G, L in spans:
        if deadline is not None and time.perf_counter() > deadline:
            return None
        X = ids[start : start + G * L].view(G, L).T.contiguous()  # (L, G): time-major
        log_likelihood = _forward_backward(pi, A, BT, X, counts, emission)
        counts.log_likelihood += log_likelihood
        done += G * L
        if progress is not None:
            progress(done)
    counts.emission = emission.to(torch.float64).numpy()
    return counts


def _forward_backward(
    pi: torch.Tensor, A: torch.Tensor, BT: torch.Tensor, X: torch.Tensor, counts: Counts, emission: torch.Tensor
) -> float:
    """Scaled forward-backward over the G chunks of X (L, G); adds their expected counts to `counts` (and the
    emission counts to `emission`, (V, N)); returns their log-likelihood.

    alpha_t = (alpha_{t-1} A) * B[:, x_t] / c_t, beta_t = A (B[:, x_{t+1}] * beta_{t+1}) / c_{t+1}; the state
    posterior is alpha_t * beta_t, and the expected transitions are A * sum_t alpha_t^T W_{t+1} with
    W_{t+1} = B[:, x_{t+1}] * beta_{t+1} / c_{t+1}, which is one product of the stacked alphas and Ws.
    """
    L, G = X.shape
    N = A.shape[0]
    E = BT[X]  # (L, G, N): emission likelihoods, overwritten by W below
    alpha = torch.empty_like(E)
    scale = torch.empty(L, G, dtype=A.dtype)
    tiny = torch.finfo(A.dtype).tiny
    a = pi * E[0]
    for t in range(L):
        if t:
            torch.mm(alpha[t - 1], A, out=a)
            a.mul_(E[t])
        torch.sum(a, 1, out=scale[t])
        scale[t].clamp_(min=tiny)  # a token impossible under the model: probability `tiny`, never NaN
        torch.div(a, scale[t, :, None], out=alpha[t])
    beta = torch.empty_like(E)
    beta[L - 1] = 1.0
    for t in range(L - 1, 0, -1):
        E[t].mul_(beta[t]).div_(scale[t, :, None])
        torch.mm(E[t], A.T, out=beta[t - 1])
    if L > 1:
        pairs = alpha[:-1].reshape(-1, N).T @ E[1:].reshape(-1, N)
        counts.transition += (A * pairs).to(torch.float64).numpy()
    gamma = beta.mul_(alpha)  # (L, G, N): state posteriors
    counts.initial += gamma[0].sum(0).to(torch.float64).numpy()
    emission.index_add_(0, X.reshape(-1), gamma.reshape(-1, N))
    return float(scale.to(torch.float64).log().sum())


def maximise(model: HMM, counts: Counts, unigram: np.ndarray, prior: float) -> HMM:
    """The M-step: each row of counts normalised. Emission rows get `prior` pseudo-tokens spread as `unigram`
    (prior 0: maximum likelihood); a row with no counts (a state never visited) keeps its old values."""
    initial = counts.initial / counts.initial.sum()
    rows = counts.transition.sum(1, keepdims=True)
    transition = np.where(rows > 0, counts.transition / np.maximum(rows, 1e-300), model.transition)
    emitted = counts.emission.T + prior * unigram
    totals = emitted.sum(1, keepdims=True)
    emission = np.where(totals > 0, emitted / np.maximum(totals, 1e-300), model.emission)
    return HMM(initial, transition, emission)


def unigram(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Token frequencies with one added to each (every token of the vocabulary keeps some probability)."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size)[:vocab_size] + 1.0
    return counts / counts.sum()


@dataclass
class Iteration:
    """One EM iteration as recorded: the training log-likelihood its E-step measured (of the model it started
    from) and the held-out score of the model it produced."""

    iteration: int
    train_nats: float  # per token
    val_nats: float | None  # per token
    elapsed: float
    tokens_per_s: float


@dataclass
class FitResult:
    model: HMM
    history: list[Iteration] = field(default_factory=list)
    best_iteration: int = 0
    stop: str = ""  # converged, max-iters, max-time or interrupted

    @property
    def interrupted(self) -> bool:
        return self.stop == "interrupted"


def fit(
    train: np.ndarray,
    val: np.ndarray | None,
    vocab_size: int,
    config: HMMConfig,
    on_iteration: Callable[[Iteration, bool], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> FitResult:
    """Baum-Welch on `train` (token ids) until converged, `max_iters` or `max_time`; each iteration's model is
    scored on `val` (exactly, state carried), and the best on `val` is kept (without `val`: the last). Ctrl-C
    stops it, keeping the best so far. `on_iteration(record, improved)` sees each iteration (0: the start)."""
    config.validate()
    if len(train) < 2:
        raise RnnlabError(f"the training text has {len(train)} token(s); an HMM needs two or more")
    start = time.perf_counter()
    deadline = start + config.max_time if config.max_time else None
    dtype = torch.float32 if config.precision == "fp32" else torch.float64
    prior_unigram = unigram(train, vocab_size)
    if config.init == "bigram":
        model = HMM.from_bigrams(train, vocab_size, config.states, config.seed)
    else:
        model = HMM.random(config.states, prior_unigram, config.seed)
    val = val if val is not None and len(val) >= 2 else None
    result = FitResult(model)
    best_val = _val_nats(model, val)
    first = Iteration(0, math.nan, best_val, time.perf_counter() - start, 0.0)
    result.history.append(first)
    if on_iteration is not None:
        on_iteration(first, True)
    previous = -math.inf
    iteration = 0
    try:
        while True:
            if config.max_iters and iteration >= config.max_iters:
                result.stop = "max-iters"
                break
            began = time.perf_counter()
            counts = expected_counts(model, train, config.chunk, dtype, progress, deadline)
            if counts is None:
                result.stop = "max-time"
                break
            iteration += 1
            model = maximise(model, counts, prior_unigram, config.prior)
            per_token = counts.log_likelihood / counts.tokens
            val_nats = _val_nats(model, val)
            improved = val_nats is None or val_nats < best_val  # type: ignore[operator]
            if improved:
                result.model, result.best_iteration, best_val = model, iteration, val_nats
            record = Iteration(
                iteration, -per_token, val_nats, time.perf_counter() - start, len(train) / (time.perf_counter() - began)
            )
            result.history.append(record)
            if on_iteration is not None:
                on_iteration(record, improved)
            if config.tol and per_token - previous < config.tol:
                result.stop = "converged"
                break
            previous = per_token
            if deadline is not None and time.perf_counter() > deadline:
                result.stop = "max-time"
                break
    except KeyboardInterrupt:
        result.stop = "interrupted"
    return result


def _val_nats(model: HMM, val: np.ndarray | None) -> float | None:
    """Held-out nats per token, scored as `rnnlab eval` does (the first token is context only)."""
    return None if val is None else float(model.token_nats(val)[1:].mean())


# ----------------------------------------------------------------------------------------------------------
# The run directory: config.json (kind hmm), tokenizer.json, tokens/, model.safetensors, metrics.jsonl.


@dataclass
class TrainedRun:
    run_dir: Path
    result: FitResult
    train_bpc: float | None
    val_bpc: float | None


def split_options(options: dict[str, Any]) -> tuple[TrainConfig, HMMConfig]:
    """The data options (TrainConfig's, as `rnnlab train` reads them) and the HMM's, each validated."""
    hmm_names = {f.name for f in fields(HMMConfig)}
    unknown = sorted(set(options) - hmm_names - set(DATA_OPTIONS))
    if unknown:
        raise RnnlabError(f"unknown option(s): {', '.join(unknown)}")
    data = TrainConfig(**{k: v for k, v in options.items() if k in DATA_OPTIONS}, batch_size=1, seq_len=1)
    config = HMMConfig(**{k: v for k, v in options.items() if k in hmm_names})
    data.validate()
    config.validate()
    return data, config


def train_run(out: Path, *, overwrite: bool = False, show: bool = False, **options: Any) -> TrainedRun:
    """`rnnlab hmm train`: tokenise the inputs as `rnnlab train` does (same tokenizers, same validation split),
    run Baum-Welch and write the run directory `out`. Everything is checked before the first write, and the run
    is built in a temporary sibling folder renamed into place at the end, so a failure leaves `out` as it was;
    Ctrl-C saves the best model so far (the result says `interrupted`)."""
    out = Path(out)
    data, config = split_options(options)
    if data.inputs:  # the input's errors before anything is written (no INPUT: the default corpus)
        files = resolve_inputs(data.inputs, allow_binary=data.tokenizer == "byte")
        if sum(path.stat().st_size for path in files) == 0:
            raise RnnlabError("the training input is empty")
    check_new_run(out, overwrite)
    with building(out) as tmp:
        store = build_token_store(data, tmp)
        V = store.tokenizer.vocab_size
        train = np.asarray(store.train.tokens, dtype=np.int64)
        val = np.asarray(store.val.tokens, dtype=np.int64) if store.val is not None else None
        with _Display(show, len(train), config) as display, _metrics(tmp) as write:

            def on_iteration(record: Iteration, improved: bool) -> None:
                write(record, improved, store)
                display.iteration(record, improved, store)

            result = fit(train, val, V, config, on_iteration, display.tokens)
        history = result.history
        last_train = next((r.train_nats for r in reversed(history) if not math.isnan(r.train_nats)), None)
        best_val = history[result.best_iteration].val_nats
        train_bpc = _bpc(last_train, store.train.chars_per_token)
        val_bpc = _bpc(best_val, store.val.chars_per_token) if store.val is not None else None
        atomic_save_tensors(tmp / WEIGHTS, result.model.tensors())
        summary = {
            "iterations": len(history) - 1,
            "best_iteration": result.best_iteration,
            "stop": result.stop,
            "seconds": round(history[-1].elapsed, 3),
            "train_bpc": train_bpc,
            "val_bpc": val_bpc,
        }
        data_section = {f: getattr(data, f) for f in DATA_OPTIONS}
        write_run_config(
            tmp,
            "hmm",
            {"states": config.states, "vocab_size": V},
            {"train": data_section | asdict(config), "result": summary},
        )
    return TrainedRun(out, result, train_bpc, val_bpc)


def _bpc(nats: float | None, chars_per_token: float) -> float | None:
    return None if nats is None or math.isnan(nats) else nats / LN2 / max(chars_per_token, 1e-12)


@contextmanager
def _metrics(run_dir: Path) -> Iterator[Callable[[Iteration, bool, TokenStore], None]]:
    """metrics.jsonl rows as `rnnlab train` writes them (step = EM iteration), so `rnnlab info` reads them."""
    with open(run_dir / METRICS, "a", encoding="utf-8") as f:

        def write(record: Iteration, improved: bool, store: TokenStore) -> None:
            if not math.isnan(record.train_nats):
                row = {
                    "step": record.iteration,
                    "train_loss": record.train_nats,
                    "train_bpc": _bpc(record.train_nats, store.train.chars_per_token),
                    "tokens_per_s": record.tokens_per_s,
                    "elapsed": record.elapsed,
                }
                f.write(json.dumps(row) + "\n")
            if record.val_nats is not None and store.val is not None:
                val_bpc = _bpc(record.val_nats, store.val.chars_per_token)
                row = {"step": record.iteration, "val_loss": record.val_nats, "val_bpc": val_bpc, "best": improved}
                f.write(json.dumps(row) + "\n")
            f.flush()

        yield write


class _Display:
    """A progress bar over the tokens of the current E-step and one line per iteration (on stderr)."""

    def __init__(self, show: bool, tokens: int, config: HMMConfig) -> None:
        self.show, self.tokens_per_iter, self.config = show, tokens, config
        self.bar: Any = None

    def __enter__(self) -> _Display:
        if self.show and console.is_terminal:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

            columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
            self.bar = Progress(*columns, console=console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("EM iteration 1", total=self.tokens_per_iter)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def tokens(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)

    def iteration(self, record: Iteration, improved: bool, store: TokenStore) -> None:
        if not self.show:
            return
        parts = [f"iteration {record.iteration}"]
        if not math.isnan(record.train_nats):
            parts.append(f"train {_bpc(record.train_nats, store.train.chars_per_token):.4f} bits/char")
        if record.val_nats is not None and store.val is not None:
            mark = " (best)" if improved else ""
            parts.append(f"held-out {_bpc(record.val_nats, store.val.chars_per_token):.4f} bits/char{mark}")
        if record.tokens_per_s:
            parts.append(f"{record.tokens_per_s:,.0f} tok/s")
        console.print("  ".join(parts) + f"  {record.elapsed:.0f}s", soft_wrap=True)
        if self.bar is not None:
            self.bar.update(self.task, description=f"EM iteration {record.iteration + 1}", completed=0)


@dataclass
class HMMRun:
    """A loaded `hmm` run: the model, its tokenizer and its config.json."""

    model: HMM
    tokenizer: Tokenizer
    config: dict[str, Any]

    @classmethod
    def load(cls, run_dir: Path) -> HMMRun:
        """Load and check a run directory; anything missing, edited or damaged is a one-line RnnlabError."""
        run_dir = Path(run_dir)
        config = read_run(run_dir, "hmm")
        states, vocab_size = config["model"].get("states"), config["model"].get("vocab_size")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (states, vocab_size)):
            raise RnnlabError(f"{run_dir / CONFIG}: model.states and model.vocab_size must be positive integers")
        tokenizer = load_tokenizer(run_dir / TOKENIZER)
        if tokenizer.vocab_size != vocab_size:
            raise RnnlabError(f"{run_dir / TOKENIZER} has {tokenizer.vocab_size} tokens, config.json says {vocab_size}")
        model = HMM.from_tensors(load_tensors(run_dir / WEIGHTS), states, vocab_size, run_dir / WEIGHTS)
        return cls(model, tokenizer, config)

    def encode(self, data: str | bytes) -> tuple[np.ndarray, str]:
        """Token ids of a text (bytes for a byte tokenizer) and the text as characters."""
        if isinstance(data, bytes):
            ids = self.tokenizer.encode_bytes(data)  # type: ignore[attr-defined]
            return ids, data.decode("utf-8", errors="replace")
        return self.tokenizer.encode(data), data

    def score_files(self, paths: list[Path]) -> Score:
        """Bits per character, nats per token, perplexity: each file from the initial state distribution, the
        state carried across the whole file, every token scored once (the first is context only), as
        `rnnlab eval` scores a network."""
        nats, tokens, chars = 0.0, 0, 0
        for path in paths:
            data = path.read_bytes() if self.tokenizer.kind == "byte" else read_text(path)
            ids, text = self.encode(data)
            if len(ids) < 2:
                raise RnnlabError(f"{path} has no tokens to score (it needs two or more: the first is context only)")
            scored = self.model.token_nats(ids)[1:]
            if not np.isfinite(scored).all():
                raise RnnlabError(f"{path} holds a token this model gives probability 0 (trained with --prior 0?)")
            nats += float(scored.sum())
            tokens += len(scored)
            chars += max(len(text) - _first_token_chars(self.tokenizer, text), 0)
        return Score.from_totals(nats, tokens, chars)

    def generate(self, length: int, prime: str = "", seed: int | None = None) -> str:
        """Sampled continuation of `prime` (not including it), `length` tokens."""
        if not 0 <= length < 2**31:
            raise RnnlabError(f"--length must be in [0, 2**31), got {length}")
        if seed is not None and not 0 <= seed < 2**63:
            raise RnnlabError(f"--seed must be in [0, 2**63), got {seed}")
        ids = self.tokenizer.encode(prime) if prime else np.zeros(0, dtype=np.int64)
        return self.tokenizer.decode(self.model.sample(length, np.random.default_rng(seed), ids).tolist())


def _first_token_chars(tokenizer: Tokenizer, text: str) -> int:
    """Characters under the first token, which is context only: 1 for char/byte, a word or BPE piece else."""
    pieces = getattr(tokenizer, "pieces", None)
    return len(pieces(text)[0]) if pieces is not None and text else 1


def describe(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """`rnnlab info` lines of an hmm run, from what it recorded."""
    m = config.get("model", {})
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    result = config.get("result") if isinstance(config.get("result"), dict) else {}
    N, V = m.get("states"), m.get("vocab_size")
    lines = [f"model        hidden Markov model, {N} states over {V} tokens, emission prior {train.get('prior', '?')}"]
    if isinstance(N, int) and isinstance(V, int):
        lines.append(
            f"parameters   {N + N * N + N * V:,} probabilities ({N - 1 + N * (N - 1) + N * (V - 1):,} free): "
            f"initial {N}, transition {N}x{N}, emission {N}x{V}"
        )
    lines.append(f"tokenizer    {train.get('tokenizer', '?')}, vocabulary {V}")
    inputs = train.get("inputs") or ["<default corpus: Python standard library>"]
    lines.append(f"inputs       {' '.join(map(str, inputs))}")
    meta = Path(run_dir) / "tokens" / "meta.json"
    try:
        splits = json.loads(meta.read_text())["splits"]
        lines += [f"{name + ' tokens':<13}{int(split['tokens']):,}" for name, split in splits.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    val = result.get("val_bpc")
    held_out = (
        f", best held-out {val:.4f} bits/char at iteration {result.get('best_iteration', '?')}"
        if isinstance(val, (int, float))
        else ""
    )
    lines.append(
        f"training     Baum-Welch, {result.get('iterations', '?')} iterations in {result.get('seconds', '?')}s "
        f"({result.get('stop', '?')}), chunks of {train.get('chunk', '?')} tokens, seed {train.get('seed', '?')}"
        f"{held_out}"
    )
    return lines
