"""An interpolated Kneser-Ney n-gram language model (Kneser & Ney 1995; Chen & Goodman 1999), counted with
NumPy sorts: the classic baseline of the lectures' perplexity table.

**Events.** The training text is one stream of token ids (the files concatenated, as `rnnlab train` reads
them) preceded by n − 1 start symbols `<s>`; every real token is one event, predicted from the n − 1 tokens
before it (start symbols at the beginning). A text that is scored is padded the same way, and its first token
is context only, so the scores are in `rnnlab eval`'s units (bits per character of the text the scored tokens
cover, nats per token, perplexity).

**Counts.** At the highest order n, a(h, w) = c(h w), the number of times w followed the n − 1 tokens h.
At each lower order k < n it is the continuation count N1+(• h w): how many different tokens x preceded
the k-gram h w, i.e. the number of distinct (k + 1)-grams x h w among the events. With c(h) = Σ_w a(h, w)
and t(h) = |{w : a(h, w) > 0}|:

    p_k(w | h) = (max(a(h, w) − D_k, 0) + D_k · t(h) · p_{k−1}(w | h′)) / c(h)    when c(h) > 0
    p_k(w | h) = p_{k−1}(w | h′)                                                when h was never seen
    p_0(w)     = 1 / V                                                          (the uniform floor)

where h′ is h without its oldest token. Each level sums to one over the V tokens for every h (D_k ≤ 1 and
every counted a ≥ 1), so the model does too, and every token, `<unk>` and never-seen ones included, has a
non-zero probability. D_k is one discount per order: Ney's estimate n1 / (n1 + 2 n2) from the counts of
counts at that order (clipped to [0.05, 1]), or one given value.

**Reference mode** (`uniform_floor=False`): the lowest level is NLTK's, the undiscounted continuation unigram
p_1(w) = N1+(• w) / N1+(• •), with no uniform floor (a token never seen after another has probability 0).
Given the same events and `discount`, the model is then `nltk.lm.KneserNeyInterpolated(n, discount=D)` exactly
(tests/baselines/test_ngram.py): NLTK uses one discount for every order, backs off with weight 1 from an unseen
context, and interpolates the lowest order with nothing. (NLTK's own `padded_everygram_pipeline` also counts the
n-grams that end on padding, e.g. `<s> <s>`, and the first k-gram of a sentence has no predecessor, so there its
continuation counts do not sum to its type count: its distributions after `<s>` do not sum to one. Fed the
events above instead, every NLTK distribution is normalised and equals this model's.)

**Storage.** Each k-gram and each context is a 64-bit hash (a splitmix64-mixed chain over the tokens, newest
first); the tables are sorted hash arrays with their counts, looked up with `searchsorted`, so scoring is
vectorised over all positions of a text. Two different n-grams of one order share a hash with probability
about m² / 2⁶⁵ for m n-grams (≈ 3·10⁻⁶ for ten million): negligible, and stated rather than checked.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlab.config import Tokenizer as TokenizerKind
from rnnlab.config import TrainConfig, Unknown, opt
from rnnlab.data.corpus import read_text, resolve_inputs
from rnnlab.data.prepare import build_token_store
from rnnlab.data.tokenizers import WORD_PATTERN, Tokenizer, load_tokenizer
from rnnlab.errors import RnnlabError
from rnnlab.metrics import Score
from rnnlab.rundir import (
    TOKENIZER,
    WEIGHTS,
    atomic_save_tensors,
    building,
    check_new_run,
    load_tensors,
    read_run,
    write_run_config,
)

KIND = "ngram"
MIN_DISCOUNT = 0.05  # Ney's estimate is clipped here, so the lower orders (and unseen tokens) keep some mass

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64's finaliser
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # spreads a token's symbol over 64 bits before it joins a hash
_EMPTY = np.uint64(0x243F6A8885A308D3)  # the hash of the empty context
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, a bijection of uint64 that scatters nearby inputs."""
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


def _extend(hashes: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """The hash of a context (or n-gram) extended by one token's symbol (its id + 1; 0 is `<s>`)."""
    return _mix(hashes ^ (symbols * _GOLDEN))


@dataclass
class NgramTrainConfig:
    """What `rnnlab ngram train` counts: the text, its tokenizer (the options of `rnnlab train`) and the order."""

    inputs: list[str] = opt([], "Files, directories or globs to count.", "Data", argument=True, metavar="INPUT")
    tokenizer: TokenizerKind = opt("char", "Characters seen in training, raw bytes, words or BPE pieces.", "Data")
    unknown: Unknown = opt("error", "char: unseen characters are an error, or become <unk>.", "Data")
    vocab_size_limit: int = opt(
        0, "word: most frequent pieces kept, <unk> included (0: all); bpe: size (0: 1000).", "Data", flag="--vocab-size"
    )
    min_count: int = opt(1, "word: pieces seen fewer times in training become <unk>.", "Data")
    lowercase: bool = opt(False, "word, bpe: lower-case the text before tokenizing.", "Data")
    word_pattern: str = opt(WORD_PATTERN, "word: regex for the pieces (text between matches too).", "Data")
    order: int = opt(5, "n: the longest n-gram counted (a context of n - 1 tokens).", "Model")
    discount: float = opt(
        0.0, "Kneser-Ney discount D in (0, 1] at every order (0: Ney's n1 / (n1 + 2 n2), per order).", "Model"
    )

    def validate(self) -> None:
        """Raise RnnlabError for impossible values (the tokenizer options as `rnnlab train` checks them)."""
        if not self.inputs:
            raise RnnlabError("give the text to count: rnnlab ngram train INPUT... --out DIR")
        if not 1 <= self.order <= 64:
            raise RnnlabError(f"--order must be in [1, 64], got {self.order}")
        if not (math.isfinite(self.discount) and 0 <= self.discount <= 1):
            raise RnnlabError(f"--discount must be in (0, 1], or 0 for Ney's estimate; got {self.discount}")
        self.train_config().validate()

    def train_config(self) -> TrainConfig:
        """The `rnnlab train` settings that build the same token store: all the text, no validation split."""
        keep = ("inputs", "tokenizer", "unknown", "vocab_size_limit", "min_count", "lowercase", "word_pattern")
        return TrainConfig(**{k: getattr(self, k) for k in keep}, val_fraction=0.0, batch_size=1, seq_len=1)


@dataclass
class Level:
    """One order's tables: sorted n-gram hashes with their counts a, sorted context hashes with c and t."""

    grams: np.ndarray  # uint64, sorted
    counts: np.ndarray  # int64: a(h, w), raw counts at the highest order, continuation counts below
    contexts: np.ndarray  # uint64, sorted
    totals: np.ndarray  # int64: c(h) = Σ_w a(h, w)
    types: np.ndarray  # int64: t(h) = |{w : a(h, w) > 0}|
    discount: float

    def lookup(self, context: np.ndarray, gram: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """a, c and t for arrays of context and n-gram hashes (0 where not found)."""
        a = _find(self.grams, self.counts, gram)
        where = _index(self.contexts, context)
        return a, *(np.where(where >= 0, column[np.maximum(where, 0)], 0) for column in (self.totals, self.types))


def _index(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position of each query in the sorted `keys`, or -1 where absent."""
    at = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
    found = keys[at] == query if len(keys) else np.zeros(np.shape(query), dtype=bool)
    return np.where(found, at, -1)


def _find(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    where = _index(keys, query)
    return np.where(where >= 0, values[np.maximum(where, 0)], 0)


def _group(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct keys, sorted, with the sum of their weights and how many rows each has."""
    unique, inverse, rows = np.unique(keys, return_inverse=True, return_counts=True)
    return unique, np.bincount(inverse, weights=weights, minlength=len(unique)).astype(np.int64), rows.astype(np.int64)


class KneserNey:
    """The model: V, its order and one `Level` per order 1..n. `fit` counts, `token_nats` scores a text,
    `distribution` gives p(· | context) over the whole vocabulary (for sampling and for tests)."""

    def __init__(self, vocab_size: int, levels: list[Level], uniform_floor: bool = True) -> None:
        self.V, self.levels, self.uniform_floor = vocab_size, levels, uniform_floor

    @property
    def order(self) -> int:
        return len(self.levels)

    @classmethod
    def fit(
        cls,
        tokens: np.ndarray,
        vocab_size: int,
        order: int = 5,
        discount: float | None = None,
        uniform_floor: bool = True,
    ) -> KneserNey:
        """Count the n-grams of `tokens` (ids < vocab_size, one stream after n − 1 `<s>`). `discount` None:
        Ney's estimate per order; else that D at every order."""
        ids = np.asarray(tokens, dtype=np.int64)
        if order < 1:
            raise RnnlabError(f"the order must be >= 1, got {order}")
        if len(ids) == 0:
            raise RnnlabError("no tokens to count")
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise RnnlabError(f"token ids must be in [0, {vocab_size}), found {ids.min()}..{ids.max()}")
        contexts, grams = _hashes(ids, order, np.arange(len(ids)) + order - 1)
        levels: list[Level] = []
        # Highest order: raw counts over all events. Below: each distinct (k+1)-gram adds 1 to the k-gram it ends
        # with, so `rows` keeps one event per distinct n-gram of the order above.
        rows = np.arange(len(ids))
        for k in range(order, 0, -1):
            unique, first, counts = np.unique(grams[k - 1][rows], return_index=True, return_counts=True)
            rows = rows[first]
            context_keys, totals, types = _group(contexts[k - 1][rows], counts)
            d = discount if discount is not None else _ney_discount(counts)
            levels.insert(0, Level(unique, counts.astype(np.int64), context_keys, totals, types, d))
        return cls(vocab_size, levels, uniform_floor)

    def probs(self, contexts: list[np.ndarray], symbols: np.ndarray) -> np.ndarray:
        """p(w | h) for broadcastable arrays: contexts[k − 1] holds the hash of the k − 1 tokens before (order k),
        `symbols` the predicted tokens' ids + 1."""
        p = np.full(np.broadcast_shapes(np.shape(contexts[0]), np.shape(symbols)), 1.0 / self.V)
        for k, level in enumerate(self.levels, 1):
            a, c, t = level.lookup(contexts[k - 1], _extend(contexts[k - 1], symbols))
            if k == 1 and not self.uniform_floor:
                p = a / np.maximum(c, 1)
                continue
            d = level.discount
            p = np.where(c > 0, (np.maximum(a - d, 0.0) + d * t * p) / np.maximum(c, 1), p)
        return p

    def token_probs(self, ids: np.ndarray) -> np.ndarray:
        """p(ids[i] | <s>… ids[:i]) for i = 1 .. len(ids) − 1: the first token is context only, as in `rnnlab eval`."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) < 2:
            return np.zeros(0)
        contexts, _ = _hashes(ids, self.order, np.arange(1, len(ids)) + self.order - 1, grams=False)
        return self.probs(contexts, ids[1:].astype(np.uint64) + np.uint64(1))

    def token_nats(self, ids: np.ndarray) -> np.ndarray:
        """−ln p of ids[1:] (see `token_probs`)."""
        with np.errstate(divide="ignore"):  # a zero probability (reference mode only) is infinitely surprising
            return -np.log(self.token_probs(ids))

    def distribution(self, context: np.ndarray) -> np.ndarray:
        """p(w | <s>… context) for every w in the vocabulary (float64, sums to one in the default mode)."""
        ids = np.concatenate([np.asarray(context, dtype=np.int64), [0]])  # a placeholder for w
        hashes, _ = _hashes(ids, self.order, np.array([len(ids) - 1 + self.order - 1]), grams=False)
        return self.probs([h[:, None] for h in hashes], np.arange(1, self.V + 1, dtype=np.uint64)[None, :])[0]

    def num_counts(self) -> int:
        """How many n-grams (of every order) the model stores."""
        return sum(len(level.grams) for level in self.levels)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tables as int64 tensors (hashes reinterpreted), for safetensors."""
        out = {}
        for k, level in enumerate(self.levels, 1):
            for name in ("grams", "counts", "contexts", "totals", "types"):
                out[f"{name}.{k}"] = torch.from_numpy(getattr(level, name).view(np.int64))
        return out

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, torch.Tensor], vocab_size: int, discounts: list[float], source: Path
    ) -> KneserNey:
        """The model from `tensors` and config.json's V and discounts; tables that are not sorted, not positive or
        of another shape than the config says are a one-line RnnlabError naming `source`."""
        names = {f"{name}.{k}" for k in range(1, len(discounts) + 1) for name in _TABLES}
        if set(tensors) != names:
            raise RnnlabError(f"{source} does not hold the tables of a {len(discounts)}-gram model")
        levels = []
        for k, d in enumerate(discounts, 1):
            arrays = {name: tensors[f"{name}.{k}"].numpy() for name in _TABLES}
            if any(a.ndim != 1 or a.dtype != np.int64 for a in arrays.values()):
                raise RnnlabError(f"{source}: the order-{k} tables are not 1-d int64 arrays")
            grams, contexts = arrays["grams"].view(np.uint64), arrays["contexts"].view(np.uint64)
            ok = len(grams) == len(arrays["counts"]) and len(contexts) == len(arrays["totals"]) == len(arrays["types"])
            ok = ok and bool(np.all(grams[1:] > grams[:-1]) and np.all(contexts[1:] > contexts[:-1]))
            ok = ok and all(bool((arrays[name] > 0).all()) for name in ("counts", "totals", "types"))
            if not ok or not 0 < d <= 1:
                raise RnnlabError(f"{source}: the order-{k} tables are inconsistent (edited or damaged)")
            levels.append(Level(grams, arrays["counts"], contexts, arrays["totals"], arrays["types"], d))
        return cls(vocab_size, levels)


_TABLES = ("grams", "counts", "contexts", "totals", "types")


def _hashes(
    ids: np.ndarray, order: int, positions: np.ndarray, grams: bool = True
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For `positions` of the padded stream (n − 1 `<s>` then `ids`): the hash of the k − 1 tokens before each
    (k = 1..order) and, with `grams`, of the k-gram ending there."""
    symbols = np.concatenate([np.zeros(order - 1, dtype=np.uint64), ids.astype(np.uint64) + np.uint64(1)])
    context = np.full(len(positions), _EMPTY, dtype=np.uint64)
    contexts, ngrams = [], []
    for k in range(1, order + 1):
        if k > 1:
            context = _extend(context, symbols[positions - (k - 1)])
        contexts.append(context)
        if grams:
            ngrams.append(_extend(context, symbols[positions]))
    return contexts, ngrams


def _ney_discount(counts: np.ndarray) -> float:
    """Ney's D = n1 / (n1 + 2 n2) from the counts of counts, clipped to [MIN_DISCOUNT, 1]."""
    n1, n2 = int(np.count_nonzero(counts == 1)), int(np.count_nonzero(counts == 2))
    return float(np.clip(n1 / (n1 + 2 * n2), MIN_DISCOUNT, 1.0)) if n1 + n2 else 0.5


@dataclass
class NgramRun:
    """A loaded `ngram` run: the model, its tokenizer and its config.json."""

    model: KneserNey
    tokenizer: Tokenizer
    config: dict[str, Any]
    run_dir: Path

    @classmethod
    def load(cls, run_dir: str | Path) -> NgramRun:
        """Read an `ngram` run directory; a run of another kind, or a damaged one, is one RnnlabError."""
        run_dir = Path(run_dir)
        config = read_run(run_dir, KIND)
        model = config["model"]
        try:
            V, discounts = int(model["vocab_size"]), [float(d) for d in model["discounts"]]
            if V < 1 or len(discounts) != int(model["order"]) or not discounts:
                raise ValueError("order and discounts disagree")
        except (KeyError, TypeError, ValueError) as exc:
            raise RnnlabError(f"{run_dir / 'config.json'} is not an n-gram model's config ({exc})") from None
        tokenizer = load_tokenizer(run_dir / TOKENIZER)
        if tokenizer.vocab_size != V:
            raise RnnlabError(f"{run_dir / TOKENIZER} has {tokenizer.vocab_size} tokens but the counts are for {V}")
        kn = KneserNey.from_tensors(load_tensors(run_dir / WEIGHTS), V, discounts, run_dir / WEIGHTS)
        return cls(kn, tokenizer, config, run_dir)

    def encode_file(self, path: Path) -> tuple[np.ndarray, int]:
        """A file's ids and the characters its scored tokens cover (all but the first token's), as `rnnlab eval`
        counts them: byte models read any file and count characters after UTF-8 decoding."""
        if self.tokenizer.kind == "byte":
            data = path.read_bytes()
            text = data.decode("utf-8", errors="replace")
            ids = self.tokenizer.encode_bytes(data)  # type: ignore[attr-defined]
        else:
            text = read_text(path)
            try:
                ids = self.tokenizer.encode(text)
            except RnnlabError as exc:
                raise RnnlabError(f"{path}: {exc}") from None
        if len(ids) < 2:
            raise RnnlabError(f"{path} has no tokens to score (it needs two or more: the first is context only)")
        return ids, max(len(text) - first_token_chars(self.tokenizer, text), 0)

    def score_files(self, paths: list[Path]) -> tuple[Score, int]:
        """One score over several files (each from `<s>`, totals summed), and how many scored tokens are `<unk>`."""
        nats, tokens, chars, unknown = 0.0, 0, 0, 0
        unk = unk_id(self.tokenizer)
        for path in paths:
            ids, covered = self.encode_file(path)
            nats += float(self.model.token_nats(ids).sum())
            tokens, chars = tokens + len(ids) - 1, chars + covered
            unknown += int(np.count_nonzero(ids[1:] == unk)) if unk is not None else 0
        return Score.from_totals(nats, tokens, chars), unknown

    def sample(self, prime: str, length: int, temperature: float, seed: int | None) -> str:
        """`length` tokens drawn one at a time from p(· | <s>… prime and the tokens drawn so far)^(1/temperature)."""
        if length < 0 or not (math.isfinite(temperature) and temperature > 0):
            raise RnnlabError(f"--length must be >= 0 and --temperature > 0; got {length}, {temperature}")
        if seed is not None and not 0 <= seed < 2**63:
            raise RnnlabError(f"--seed must be in [0, 2**63), got {seed}")
        rng = np.random.default_rng(seed)
        ids = list(self.tokenizer.encode(prime)) if prime else []
        drawn = []
        for _ in range(length):
            p = self.model.distribution(np.array(ids[-(self.model.order - 1) :] if self.model.order > 1 else []))
            if temperature != 1:
                p = np.exp(np.log(np.maximum(p, 1e-300)) / temperature)
            token = int(rng.choice(self.model.V, p=p / p.sum()))
            ids.append(token)
            drawn.append(token)
        return self.tokenizer.decode(drawn)


def first_token_chars(tokenizer: Tokenizer, text: str) -> int:
    """Characters of `text` under its first token (context only): 1 for char and byte, a word or BPE piece else."""
    pieces = getattr(tokenizer, "pieces", None)
    return len(pieces(text)[0]) if pieces is not None and text else 1


def unk_id(tokenizer: Tokenizer) -> int | None:
    """The id of `<unk>`, or None for tokenizers that have none (byte, BPE, char without --unknown unk)."""
    if tokenizer.kind == "word":
        return 0
    if tokenizer.kind == "char" and getattr(tokenizer, "unk", False):
        return tokenizer.vocab_size - 1
    return None


def train(config: NgramTrainConfig, out: Path, overwrite: bool = False) -> NgramRun:
    """Tokenize and count the inputs into a new run directory `out` (built aside, then renamed into place)."""
    config.validate()
    resolve_inputs(config.inputs, allow_binary=config.tokenizer == "byte")  # missing inputs fail before anything
    check_new_run(out, overwrite)
    with building(out) as tmp:
        store = build_token_store(config.train_config(), tmp)
        tokens = np.asarray(store.train.tokens)
        kn = KneserNey.fit(tokens, store.tokenizer.vocab_size, config.order, config.discount or None)
        atomic_save_tensors(tmp / WEIGHTS, kn.tensors())
        model = {
            "order": config.order,
            "vocab_size": kn.V,
            "discounts": [level.discount for level in kn.levels],
            "ngrams": [len(level.grams) for level in kn.levels],
        }
        train_section = dataclasses.asdict(config) | {"tokens": len(tokens), "chars": store.train.chars}
        write_run_config(tmp, KIND, model, {"train": train_section})
    return NgramRun.load(out)


def describe(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """`rnnlab info` lines of an ngram run (13-character label column)."""
    model, train_section = config.get("model", {}), config.get("train", {})
    ngrams = model.get("ngrams", [])
    discounts = " ".join(f"{d:.3f}" for d in model.get("discounts", []))
    return [
        f"model        interpolated Kneser-Ney {model.get('order')}-gram over {train_section.get('tokenizer')} tokens "
        f"(V = {model.get('vocab_size')})",
        f"parameters   {sum(ngrams):,} n-gram counts ({', '.join(f'{n:,}' for n in ngrams)} by order 1..n)",
        f"discounts    {discounts}",
        f"data         {train_section.get('tokens', 0):,} tokens, {train_section.get('chars', 0):,} chars from "
        f"{' '.join(train_section.get('inputs', []))}",
    ]
