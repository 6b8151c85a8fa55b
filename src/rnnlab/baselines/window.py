"""The feed-forward window language model: Bengio, Ducharme, Vincent & Jauvin's neural probabilistic language
model (JMLR 2003), a memoryless model of sequences that sees only the last n - 1 tokens:

    x = [C(w_{t-n+1}); ...; C(w_{t-1})]          one embedding table C, shared by every position of the window
    y = b + W x + U tanh(d + H x)                 W: the optional direct connections from the window to the output
    P(w_t | window) = softmax(y)

Read top to bottom: `WindowConfig` (the shape), `WindowNet` (the network), `padded`, `window_rows`, `token_nats` (exact
scoring: every token once, each seeing its window, the tokens before the text's start read as a start symbol),
`fit` (training in rnnlab's loop: budget, clipping, schedule, divergence, progress, Ctrl-C), `train` (a run
directory, built aside and moved into place only once complete), `WindowModel` (load, score, sample), `describe`.

Scores are those of `rnnlab eval`: the first token of each file is context only, so the tokens scored and the
characters they cover are the same as a recurrent model's on the same file and tokenizer.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.config import TrainConfig, opt
from rnnlab.data.corpus import read_text, resolve_inputs
from rnnlab.data.prepare import Split, TokenStore, build_token_store
from rnnlab.data.tokenizers import Tokenizer, load_tokenizer
from rnnlab.errors import RnnlabError
from rnnlab.metrics import LN2, Score
from rnnlab.rundir import (
    CONFIG,
    TOKENIZER,
    WEIGHTS,
    atomic_save_tensors,
    building,
    check_new_run,
    check_state_dict,
    load_tensors,
    read_run,
    tensor_shapes,
    write_run_config,
)
from rnnlab.train.loop import Loop
from rnnlab.train.optim import build_optimizer
from rnnlab.train.progress import Reporter

KIND = "window"
DEFAULT_STEPS = 3000  # the step budget when neither --max-steps nor --max-time is given
START_RATE = 0.02  # share of training windows cut as if the text began inside them (teaches the start symbol)
SCORE_BATCH = 4096  # windows per forward pass when scoring


@dataclass
class WindowConfig:
    """The network's shape: a window of `context` tokens, each embedded in `embed` numbers, `hidden` tanh units."""

    vocab_size: int = opt(0, "V, set from the tokenizer.", "Model", flag=None)
    context: int = opt(4, "Previous tokens the network sees: n - 1 of an n-gram.", "Model")
    embed: int = opt(64, "Embedding size D, one table shared by every position of the window.", "Model")
    hidden: int = opt(128, "Hidden tanh units H.", "Model")
    direct: bool = opt(False, "Direct connections from the window's embeddings to the output (Bengio's W).", "Model")

    def validate(self) -> None:
        """Raise RnnlabError for impossible values."""
        for name in ("context", "embed", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RnnlabError(f"--{name} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.vocab_size, int) or self.vocab_size < 0:
            raise RnnlabError(f"vocab_size must be >= 0, got {self.vocab_size!r}")
        if not isinstance(self.direct, bool):
            raise RnnlabError(f"direct must be true or false, got {self.direct!r}")

    @property
    def start(self) -> int:
        """The start symbol's id: one past the vocabulary (it is read, never predicted)."""
        return self.vocab_size


class WindowNet(nn.Module):
    """windows (B, n - 1) of token ids (the start symbol is id V) -> logits (B, V) of the next token."""

    def __init__(self, config: WindowConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        V, D, H, c = config.vocab_size, config.embed, config.hidden, config.context  # c = n - 1
        self.embed = nn.Embedding(V + 1, D)  # + the start symbol
        self.hidden = nn.Linear(c * D, H)
        self.head = nn.Linear(H, V)
        self.direct = nn.Linear(c * D, V, bias=False) if config.direct else None
        if self.direct is not None:
            nn.init.zeros_(self.direct.weight)  # start as the plain network; training opens the shortcut

    def forward(self, windows: Tensor) -> Tensor:
        x = self.embed(windows).flatten(1)  # concatenate the window's embeddings: (B, (n - 1)·D)
        logits = self.head(torch.tanh(self.hidden(x)))
        return logits if self.direct is None else logits + self.direct(x)

    def log_probs(self, windows: Tensor) -> Tensor:
        """log P(next token | window): (B, n - 1) -> (B, V), each row a distribution over the vocabulary."""
        return F.log_softmax(self.forward(windows), -1)


def padded(tokens: np.ndarray | Tensor, config: WindowConfig) -> Tensor:
    """`tokens` (L,) as int64 after n - 1 start symbols (what the tokens before a text's start read as), so that
    position i of the text is index i + n - 1, and its window the n - 1 indices before."""
    start = torch.full((config.context,), config.start, dtype=torch.long)
    return torch.cat([start, torch.as_tensor(np.array(tokens, dtype=np.int64))])


def window_rows(padded: Tensor, positions: Tensor, context: int) -> Tensor:
    """The windows of text `positions` (B,) in a `padded` text: (B, n - 1), row b = padded[i : i + n - 1] for
    i = positions[b], the n - 1 tokens before token i."""
    return padded[positions[:, None] + torch.arange(context)]


@torch.no_grad()
def token_nats(net: WindowNet, ids: np.ndarray | Tensor) -> np.ndarray:
    """−log P(token | its window) in nats for tokens 1..L-1 of `ids` (token 0 is context only, as in `rnnlab
    eval`), exactly: every token once, in batches of windows."""
    net.eval()
    c = net.config.context
    line = padded(ids, net.config)
    out = []
    for start in range(1, len(line) - c, SCORE_BATCH):
        positions = torch.arange(start, min(start + SCORE_BATCH, len(line) - c))
        logp = net.log_probs(window_rows(line, positions, c))
        out.append(-logp.gather(1, line[positions + c, None])[:, 0])
    return torch.cat(out).double().numpy() if out else np.zeros(0)


class _Fit(Loop):
    """The window model's hooks over rnnlab's training loop: random windows of the training tokens; validation
    (exact, on the first `eval_tokens` tokens of the held-out split) keeps the best weights in memory."""

    def __init__(
        self, net: WindowNet, train: np.ndarray | Tensor, val: Split | None, config: TrainConfig, reporter: Any
    ) -> None:
        super().__init__(net, build_optimizer(net, config), config, reporter=reporter)
        self.net, self.line, self.count = net, padded(train, net.config), len(train)
        self.val = val
        self.evaluates = val is not None
        self.generator = torch.Generator().manual_seed(config.seed)
        self.best: dict[str, Tensor] | None = None

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """N random windows; a few are cut, as if the text began inside them, so the start symbol is learned."""
        N, c, g = self.config.batch_size, self.net.config.context, self.generator
        at = torch.randint(self.count, (N,), generator=g)
        x = window_rows(self.line, at, c)
        cut = torch.randint(1, c + 1, (N, 1), generator=g) * (torch.rand(N, 1, generator=g) < START_RATE)
        x = x.masked_fill(torch.arange(c) < cut, self.net.config.start)
        return x, self.line[at + c]

    def loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def evaluate(self) -> dict[str, Any]:
        assert self.val is not None
        p, limit = self.progress, self.config.eval_tokens
        self.reporter.validating(p)
        nats = token_nats(self.net, self.val.tokens[: limit or None])
        self.net.train()
        val_loss = float(nats.mean())
        improved = val_loss < p.best_val
        if improved:
            p.best_val, p.best_step, p.bad_evals = val_loss, p.step, 0
            self.best = copy.deepcopy(self.net.state_dict())
        val_bpc = val_loss / LN2 / self.val.chars_per_token
        self.reporter.evaluation(p, val_loss, val_bpc, improved)
        return {"val_loss": val_loss, "val_bpc": val_bpc, "best": improved}


@dataclass
class FitResult:
    """What a training session reports."""

    steps: int
    elapsed: float
    last_loss: float  # nats per token, the last step's
    best_val: float | None  # nats per token on the validation tokens; None without validation
    interrupted: bool


def fit(
    net: WindowNet,
    train: np.ndarray | Tensor,
    config: TrainConfig,
    val: Split | None = None,
    reporter: Any = None,
) -> FitResult:
    """Train `net` on the token ids `train` with `config`'s optimiser, schedule and budget (max_steps, max_time;
    `batch_size` windows a step) in rnnlab's loop: a non-finite step rolls back and halves the learning rate,
    Ctrl-C stops after the current step. With `val`, the net ends with the weights of its best validation."""
    torch.manual_seed(config.seed)
    if len(train) < 2:
        raise RnnlabError(f"the training text has {len(train)} token(s); a window model needs at least 2")
    loop = _Fit(net, train, val, config, reporter)
    net.train()
    loop.run()
    if loop.best is not None:
        net.load_state_dict(loop.best)
    net.eval()
    p = loop.progress
    best = p.best_val if math.isfinite(p.best_val) else None
    return FitResult(p.step, p.elapsed, loop.last_loss, best, loop.stop_requested)


@dataclass
class TrainResult:
    """A finished (or interrupted) run: where it is and how training went."""

    run_dir: Path
    fit: FitResult
    val_bpc: float | None  # the best validation score in bits per character


def train(
    out: Path,
    model: WindowConfig,
    config: TrainConfig,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train a window model on `config.inputs` (the default corpus when empty) into the run directory `out`, for
    `config.max_steps` steps or `config.max_time` seconds (neither: DEFAULT_STEPS steps).

    Everything is checked and built in a temporary sibling of `out` (token store, tokenizer.json, config.json,
    metrics.jsonl, model.safetensors), which becomes `out` only when complete, so a failure writes nothing.
    `out` must not exist, be an empty folder, or hold a window run and `overwrite` be set.
    """
    out = Path(out)
    model.validate()
    if not config.max_steps and not config.max_time:
        config = dataclasses.replace(config, max_steps=DEFAULT_STEPS)
    config.validate()
    check_new_run(out, overwrite, KIND)
    if config.inputs:
        resolve_inputs(config.inputs, allow_binary=config.tokenizer == "byte")  # a bad input fails before any write
    with building(out) as tmp:
        store = build_token_store(dataclasses.replace(config, batch_size=1, seq_len=1), tmp)
        model = dataclasses.replace(model, vocab_size=store.tokenizer.vocab_size)
        torch.manual_seed(config.seed)
        net = WindowNet(model)
        write_run_config(tmp, KIND, dataclasses.asdict(model), {"train": dataclasses.asdict(config)})
        reporter = Reporter(tmp, config, config.max_steps, progress, chars_per_token=store.train.chars_per_token)
        result = fit(net, store.train.tokens, config, store.val, reporter)
        atomic_save_tensors(tmp / WEIGHTS, net.state_dict())
    val_bpc = None
    if result.best_val is not None and store.val is not None:
        val_bpc = result.best_val / LN2 / store.val.chars_per_token
    return TrainResult(out, result, val_bpc)


class WindowModel:
    """A trained window model with its tokenizer: score text exactly and sample from it."""

    def __init__(self, net: WindowNet, tokenizer: Tokenizer) -> None:
        self.net, self.tokenizer = net.eval(), tokenizer

    @classmethod
    def load(cls, run_dir: Path) -> WindowModel:
        """Load a window run; another kind of run, an edited config or weights that do not fit it is one error."""
        run_dir = Path(run_dir)
        data = read_run(run_dir, KIND)
        names = {f.name for f in dataclasses.fields(WindowConfig)}
        model = data["model"]
        if set(model) != names:
            raise RnnlabError(f"{run_dir / CONFIG} has model fields {sorted(model)}, expected {sorted(names)}")
        config = WindowConfig(**model)
        config.validate()
        tokenizer = load_tokenizer(run_dir / TOKENIZER)
        if tokenizer.vocab_size != config.vocab_size:
            raise RnnlabError(
                f"{run_dir / TOKENIZER} has {tokenizer.vocab_size} tokens but the model was trained on "
                f"{config.vocab_size}; the tokenizer does not belong to these weights"
            )
        tensors = load_tensors(run_dir / WEIGHTS)
        with torch.device("meta"):  # names and shapes first: an edited config must not allocate a huge model
            shapes = {name: t.shape for name, t in WindowNet(config).state_dict().items()}
        check_state_dict(shapes, tensors, run_dir / WEIGHTS)
        net = WindowNet(config)
        net.load_state_dict(tensors)
        if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
            raise RnnlabError(f"{run_dir / WEIGHTS} holds non-finite weights")
        return cls(net, tokenizer)

    def score(self, text: str | bytes, name: str = "the text") -> Score:
        """Bits per character, nats per token and perplexity of `text`, as `rnnlab eval` scores a recurrent model
        (its first token is context only); bytes are read by a byte-tokenizer model, characters counted after
        UTF-8 decoding."""
        return Score.from_totals(*self._totals(text, name))

    def score_files(self, paths: list[Path]) -> Score:
        """One score over several files, each read from its start (totals summed)."""
        totals = [self._totals(self._read(path), str(path)) for path in paths]
        return Score.from_totals(*(sum(column) for column in zip(*totals, strict=True)))

    def _read(self, path: Path) -> str | bytes:
        if self.tokenizer.kind == "byte":
            from rnnlab.data.corpus import open_regular

            with open_regular(path) as f:
                return f.read()
        return read_text(path)

    def _totals(self, text: str | bytes, name: str) -> tuple[float, int, int]:
        """(nats, tokens scored, characters those tokens cover) of `text`."""
        if isinstance(text, bytes):
            if self.tokenizer.kind != "byte":
                raise RnnlabError(f"{name}: only byte-tokenizer models score raw bytes")
            ids = self.tokenizer.encode_bytes(text)  # type: ignore[attr-defined]
            text = text.decode("utf-8", errors="replace")
        else:
            ids = self.tokenizer.encode(text)
        if len(ids) < 2:
            raise RnnlabError(f"{name} has no tokens to score (it needs two or more: the first is context only)")
        nats = token_nats(self.net, ids)
        if not np.isfinite(nats).all():
            raise RnnlabError(f"scoring {name} gave non-finite log-probabilities: the model's weights are bad")
        pieces = getattr(self.tokenizer, "pieces", None)
        first = len(pieces(text)[0]) if pieces is not None else 1  # characters under the unscored first token
        return float(nats.sum()), len(nats), max(len(text) - first, 0)

    def stream(
        self, prime: str = "", length: int = 200, temperature: float = 1.0, seed: int | None = None
    ) -> Iterator[str]:
        """Yield the text of `length` sampled tokens after `prime` (not repeated), each drawn from the model's
        distribution given its window (temperature 0: the most likely token). Bad settings raise at the call."""
        if not 0 <= length < 2**63:
            raise RnnlabError(f"--length must be in [0, 2**63 - 1], got {length}")
        if not (math.isfinite(temperature) and temperature >= 0):
            raise RnnlabError(f"--temperature must be a finite number >= 0, got {temperature}")
        if seed is not None and not 0 <= seed < 2**63:
            raise RnnlabError(f"--seed must be in [0, 2**63), got {seed}")
        config = self.net.config
        context = [config.start] * config.context + [int(i) for i in self.tokenizer.encode(prime)]
        rng = np.random.default_rng(seed)
        decode = self.tokenizer.decoder()

        def pieces() -> Iterator[str]:
            window = context[len(context) - config.context :]
            for _ in range(length):
                with torch.no_grad():
                    logp = self.net.log_probs(torch.tensor([window]))[0].double().numpy()
                if temperature == 0:
                    token = int(logp.argmax())
                else:
                    p = np.exp((logp - logp.max()) / temperature)
                    token = int(rng.choice(len(p), p=p / p.sum()))
                window = [*window[1:], token]
                yield decode(token)

        return pieces()


def describe(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """`rnnlab info`'s lines for a window run (13-character labels), from its config.json and files."""
    m = config.get("model") if isinstance(config.get("model"), dict) else {}
    t = config.get("train") if isinstance(config.get("train"), dict) else {}
    direct = " + direct connections" if m.get("direct") else ""
    weights = Path(run_dir) / WEIGHTS
    params = f"{sum(math.prod(s) for s in tensor_shapes(weights).values()):,}" if weights.exists() else "?"
    lines = [
        f"model        feed-forward window LM (Bengio et al. 2003): {m.get('context', '?')} previous tokens x embed "
        f"{m.get('embed', '?')} -> tanh {m.get('hidden', '?')} -> softmax{direct}",
        f"parameters   {params}",
        f"tokenizer    {t.get('tokenizer', '?')}, vocabulary {m.get('vocab_size', '?')} (+ a start symbol)",
        f"inputs       {' '.join(t.get('inputs') or ['<default corpus: Python standard library>'])}",
    ]
    with contextlib.suppress(RnnlabError):
        store = TokenStore.open(Path(run_dir))
        splits = {"train": store.train, "val": store.val}
        lines += [f"{name + ' tokens':<13}{len(split.tokens):,}" for name, split in splits.items() if split]
    lines.append(
        f"training     {t.get('optimizer', '?')} lr {t.get('lr', '?')}, batch {t.get('batch_size', '?')} windows, "
        f"seed {t.get('seed', '?')}"
    )
    return lines
