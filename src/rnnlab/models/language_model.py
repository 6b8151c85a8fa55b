"""The recurrent language model: embedding -> recurrent stack -> linear head, plus its user-facing API.

`RNNLM` is the nn.Module the trainer optimises. `LanguageModel` pairs it with a tokenizer and a run
directory and offers what users call: `load`, `generate`, `stream`, `score`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.config import ModelConfig, model_config_from_dict
from rnnlab.data.tokenizers import Tokenizer, load_tokenizer
from rnnlab.dynamic import DynamicConfig, dynamic_nats
from rnnlab.errors import RnnlabError
from rnnlab.generate import StopMatcher, next_token
from rnnlab.metrics import Score
from rnnlab.ngram import NgramConfig, mixed_nats
from rnnlab.nn.recurrent import LockedDropout, Recurrent, State, detach_state
from rnnlab.rundir import TOKENIZER, WEIGHTS, load_state_dict, load_tensors, read_config

IGNORE = -100  # target id that is not scored (padding in evaluation)


class RNNLM(nn.Module):
    """tokens (N, T) -> logits (N, T, V). Embedding (or one-hot when embed=0), L recurrent layers, head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        V = config.vocab_size
        self.embed = nn.Embedding(V, config.embed) if config.embed > 0 else None
        input_size = config.embed if config.embed > 0 else V
        self.rnn = Recurrent(
            config.cell,
            input_size,
            config.hidden,
            config.layers,
            config.dropout,
            variational=config.variational,
            residual=config.residual,
            highway=config.highway,
            layer_norm=config.layer_norm,
            learn_init=config.learn_init,
            peephole=config.peephole,
            factors=config.factors,
        )
        self.drop = _dropout(config)
        # Weight tying (Press & Wolf 2017; Inan et al. 2017): logits = E h + b with E the embedding matrix;
        # when D != H a linear projection H -> D comes first.
        tied = config.tie_weights and self.embed is not None
        self.proj = nn.Linear(config.hidden, config.embed) if tied and config.embed != config.hidden else None
        self.head = TiedHead(self.embed) if tied else nn.Linear(config.hidden, V)

    def forward(
        self, tokens: torch.Tensor, state: State | None = None, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """Returns (logits, final state, mean cross-entropy in nats over targets != -100, or None)."""
        if self.embed is not None:
            x = self.embed(tokens)
        else:
            x = F.one_hot(tokens, self.config.vocab_size).to(self.head.weight.dtype)
        out, state = self.rnn(x, state)
        out = self.drop(out)
        logits = self.head(self.proj(out) if self.proj is not None else out)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE)
        return logits, state, loss

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class TiedHead(nn.Module):
    """Output layer whose weight is the embedding matrix; only the bias is its own parameter.

    The embedding is held outside the module tree, so the state dict has one copy of the matrix
    (safetensors refuses tensors that share memory).
    """

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self._embedding = (embedding,)
        self.bias = nn.Parameter(torch.zeros(embedding.num_embeddings))

    @property
    def weight(self) -> torch.Tensor:
        return self._embedding[0].weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def _dropout(config: ModelConfig) -> nn.Module:
    """Dropout before the head; none at all when p = 0 (nn.Dropout(0) still costs a kernel per step)."""
    if config.dropout == 0:
        return nn.Identity()
    return LockedDropout(config.dropout) if config.variational else nn.Dropout(config.dropout)


def total_nats(
    model: RNNLM,
    tokens: np.ndarray,
    batch_size: int = 16,
    seq_len: int = 256,
    device: str | torch.device = "cpu",
) -> tuple[float, int]:
    """Sum of -ln p(token | everything before it in its stream), and how many tokens were scored."""
    nats = token_nats(model, tokens, batch_size, seq_len, device)
    return float(nats.sum()), len(nats)


@torch.no_grad()
def token_nats(
    model: RNNLM,
    tokens: np.ndarray,
    batch_size: int = 16,
    seq_len: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """-ln p(token | everything before it) for tokens[1:], in order (float64).

    Exact, not sampled: the M - 1 predictions are laid out as N padded streams (padding targets are
    ignored), the state is carried chunk to chunk, and every token after the first is scored once.
    """
    M = len(tokens)
    if M < 2:
        return np.zeros(0)
    was_training = model.training
    model.eval()
    P = M - 1
    N = max(1, min(batch_size, P // seq_len or 1))
    S = math.ceil(P / N)
    x = np.zeros(N * S, dtype=np.int64)
    y = np.full(N * S, IGNORE, dtype=np.int64)
    x[:P] = tokens[:-1]
    y[:P] = tokens[1:]
    x_t = torch.from_numpy(x.reshape(N, S)).to(device)
    y_t = torch.from_numpy(y.reshape(N, S)).to(device)
    state: State | None = None
    nats = torch.zeros(N, S, dtype=torch.float64)
    for start in range(0, S, seq_len):
        xb, yb = x_t[:, start : start + seq_len], y_t[:, start : start + seq_len]
        logits, state, _ = model(xb, state)
        nats[:, start : start + seq_len] = F.cross_entropy(
            logits.double().transpose(1, 2), yb, ignore_index=IGNORE, reduction="none"
        ).cpu()
    model.train(was_training)
    return nats.reshape(-1)[:P].numpy()


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available, else CPU; asking for CUDA without it is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RnnlabError("--device cuda requested but no CUDA GPU is available (use --device cpu)")
    return torch.device(device)


class LanguageModel:
    """A trained model with its tokenizer: load it from a run directory, sample from it, score text."""

    def __init__(self, module: RNNLM, tokenizer: Tokenizer, run_dir: Path | None = None) -> None:
        self.module = module
        self.tokenizer = tokenizer
        self.run_dir = run_dir

    @property
    def device(self) -> torch.device:
        return self.module.head.weight.device

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> LanguageModel:
        """Load `run_dir/model.safetensors` with its config and tokenizer (weights map to any device)."""
        run_dir = Path(run_dir)
        config = model_config_from_dict(read_config(run_dir)["model"])
        try:
            config.validate()
        except RnnlabError as exc:
            raise RnnlabError(f"{run_dir}/config.json: {exc}") from None
        tokenizer = load_tokenizer(run_dir / TOKENIZER)
        module = RNNLM(config)
        load_state_dict(module, load_tensors(run_dir / WEIGHTS), run_dir / WEIGHTS)
        module.to(resolve_device(device)).eval()
        return cls(module, tokenizer, run_dir)

    def score(self, text: str | bytes, dynamic: DynamicConfig | None = None, mix: NgramConfig | None = None) -> Score:
        """Bits per character, nats per token and perplexity of `text` (its first token is unscored).

        Bytes are accepted for byte-tokenizer models (any file); characters are then counted after
        UTF-8 decoding, so bits per character always means per character of the original text.
        With `dynamic`, the model adapts to the text as it reads it (see rnnlab.dynamic); the loaded
        weights are not changed. With `mix`, its predictions are mixed with an n-gram model of the
        run's training text and of the text read so far (see rnnlab.ngram).
        """
        return Score.from_totals(*self._totals(text, dynamic, mix))

    def score_files(
        self, paths: list[Path], dynamic: DynamicConfig | None = None, mix: NgramConfig | None = None
    ) -> Score:
        """One score over several files, each read from a fresh state (totals are summed)."""
        totals = [self._totals(self._read(path), dynamic, mix) for path in paths]
        return Score.from_totals(*(sum(column) for column in zip(*totals, strict=True)))

    def _read(self, path: Path) -> str | bytes:
        from rnnlab.data.corpus import read_text

        return path.read_bytes() if self.tokenizer.kind == "byte" else read_text(path)

    def _history(self) -> np.ndarray:
        """The run's training tokens (both splits, in file order), the n-gram mixer's memory."""
        from rnnlab.data.prepare import TokenStore

        if self.run_dir is None or not (self.run_dir / "tokens").is_dir():
            raise RnnlabError("n-gram mixing needs the run directory's tokens/ folder (the training text)")
        store = TokenStore.open(self.run_dir)
        return np.concatenate([store.train.tokens] + ([store.val.tokens] if store.val is not None else []))

    def _totals(
        self, text: str | bytes, dynamic: DynamicConfig | None = None, mix: NgramConfig | None = None
    ) -> tuple[float, int, int]:
        """(nats, tokens scored, characters covered by the scored tokens)."""
        if isinstance(text, bytes):
            if self.tokenizer.kind == "byte":
                ids = self.tokenizer.encode_bytes(text)  # type: ignore[attr-defined]
                text = text.decode("utf-8", errors="replace")
            else:
                try:
                    text = text.decode("utf-8")
                except UnicodeDecodeError:
                    raise RnnlabError("text is not valid UTF-8; only byte-tokenizer models score raw bytes") from None
        if isinstance(text, str):
            ids = self.tokenizer.encode(text)
        if dynamic is not None:
            nats = dynamic_nats(self.module, ids, dynamic)
        else:
            nats = token_nats(self.module, ids, device=self.device)
        if mix is not None and len(nats):
            nats = mixed_nats(nats, self._history(), ids, self.tokenizer.vocab_size, mix)
        count = len(nats)
        return float(nats.sum()), count, max(len(text) - _first_token_chars(self.tokenizer, text), 0) if count else 0

    def generate(self, prime: str = "", length: int = 200, **options: Any) -> str:
        """Sampled continuation of `prime` (not including it). Options as in `stream`."""
        return "".join(self.stream(prime, length, **options))

    @torch.no_grad()
    def stream(
        self,
        prime: str = "",
        length: int = 200,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        greedy: bool = False,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield text pieces as tokens are sampled: the prime is run through first ("burn-in"), then each
        sampled token is fed back. `length` counts tokens; generation ends early at a stop string."""
        _check_sampling(length, temperature, top_k, top_p)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        ids = self.tokenizer.encode(prime) if prime else self._start_ids(generator)
        self.module.eval()
        tokens = torch.as_tensor(ids, dtype=torch.long, device=self.device).unsqueeze(0)
        logits, state, _ = self.module(tokens)
        decode, matcher = self.tokenizer.decoder(), StopMatcher(stop or [])
        for _ in range(length):
            token = next_token(
                logits[0, -1].float().cpu(),
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                greedy=greedy,
                generator=generator,
            )
            piece = matcher.feed(decode(token))
            if piece:
                yield piece
            if matcher.stopped:
                return
            step = torch.tensor([[token]], device=self.device)
            logits, state, _ = self.module(step, detach_state(state))
        if tail := matcher.flush():
            yield tail

    def _start_ids(self, generator: torch.Generator | None) -> np.ndarray:
        """With no prime, start after a newline when the vocabulary has one, else from a random token."""
        try:
            return self.tokenizer.encode("\n")
        except RnnlabError:
            V = self.module.config.vocab_size
            return np.array([int(torch.randint(V, (1,), generator=generator))])


def _first_token_chars(tokenizer: Tokenizer, text: str) -> int:
    """Characters of `text` under its first token, which is context only (not scored), so that bits per
    character divide by the characters the scored tokens cover: 1 for char/byte, a word or BPE piece else."""
    pieces = getattr(tokenizer, "pieces", None)
    return len(pieces(text)[0]) if pieces is not None and text else 1


def _check_sampling(length: int, temperature: float, top_k: int, top_p: float) -> None:
    if length < 0:
        raise RnnlabError(f"--length must be >= 0, got {length}")
    if temperature < 0:
        raise RnnlabError(f"--temperature must be >= 0, got {temperature}")
    if top_k < 0:
        raise RnnlabError(f"--top-k must be >= 0, got {top_k}")
    if not 0 < top_p <= 1:
        raise RnnlabError(f"--top-p must be in (0, 1], got {top_p}")
