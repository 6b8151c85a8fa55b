"""The recurrent language model: embedding -> recurrent stack -> linear head, plus its user-facing API.

`RNNLM` is the nn.Module the trainer optimises. `LanguageModel` pairs it with a tokenizer and a run
directory and offers what users call: `load`, `generate`, `stream`, `score`.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import ModelHubMixin
from torch import nn

from rnnlab.config import ModelConfig, model_config_from_dict
from rnnlab.data.tokenizers import Tokenizer, load_tokenizer
from rnnlab.errors import RnnlabError
from rnnlab.lm import words
from rnnlab.lm.dynamic import DynamicConfig, dynamic_logits, dynamic_nats
from rnnlab.lm.generate import StopMatcher, next_token, sampling_rng
from rnnlab.lm.ngram import NgramConfig, mixed_nats
from rnnlab.lm.stepper import make_stepper
from rnnlab.metrics import Score
from rnnlab.nn.recurrent import LockedDropout, Recurrent, State, upgrade_state_dict
from rnnlab.rundir import (
    CONFIG,
    LANGUAGE_MODELS,
    METRICS,
    TOKENIZER,
    WEIGHTS,
    atomic_save_tensors,
    check_state_dict,
    load_tensors,
    read_run,
    write_run_config,
)

IGNORE = -100  # target id that is not scored (padding in evaluation)
WARMUP = 256  # tokens each parallel stream k > 0 reads, unscored, before its segment (see token_nats)


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
            window=config.window,
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
    batch_size: int = 1,
    seq_len: int = 256,
    device: str | torch.device = "cpu",
    *,
    warmup: int = WARMUP,
) -> tuple[float, int]:
    """Sum of -ln p(token | what came before it), and how many tokens were scored (see `token_nats`)."""
    nats = token_nats(model, tokens, batch_size, seq_len, device, warmup=warmup)
    return float(nats.sum()), len(nats)


@torch.no_grad()
def token_nats(
    model: RNNLM,
    tokens: np.ndarray,
    batch_size: int = 1,
    seq_len: int = 256,
    device: str | torch.device = "cpu",
    *,
    warmup: int = WARMUP,
) -> np.ndarray:
    """-ln p(token | what came before it) for tokens[1:], in order (float64); every token is scored once.

    batch_size 1 (the default) is exact: one stream, every token with its full history, the state carried
    chunk to chunk. batch_size N > 1 is faster where a batch costs little more than one stream (a GPU, a
    wide model): the text is cut into up to N segments scored side by side, and each segment after the
    first is read `warmup` tokens early, unscored, so its state has seen the text just before it instead
    of starting fresh.
    """
    if batch_size < 1 or seq_len < 1 or warmup < 0:
        raise RnnlabError(f"streams and seq_len must be >= 1, warmup >= 0; got {batch_size}, {seq_len}, {warmup}")
    P = len(tokens) - 1  # predictions: input tokens[i], target tokens[i + 1]
    if P < 1:
        return np.zeros(0)
    # Each segment at least max(seq_len, warmup) long, so the warm-up reads at most as much as it scores.
    N = max(1, min(batch_size, P // max(seq_len, warmup)))
    W = warmup if N > 1 else 0
    S = math.ceil((P - W) / N)
    # Row k reads predictions k*S .. k*S + S + W - 1; row 0 scores all of them, row k > 0 its last S.
    index = np.arange(N)[:, None] * S + np.arange(S + W)[None, :]
    scored = (index < P) & ((np.arange(N)[:, None] == 0) | (np.arange(S + W)[None, :] >= W))
    ids = np.asarray(tokens, dtype=np.int64)
    x = np.where(index < P, ids[np.minimum(index, P - 1)], 0)
    y = np.where(scored, ids[np.minimum(index, P - 1) + 1], IGNORE)
    x_t, y_t = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    was_training = model.training
    model.eval()
    state: State | None = None
    nats = torch.zeros(N, S + W, dtype=torch.float64)
    try:
        for start in range(0, S + W, seq_len):
            xb, yb = x_t[:, start : start + seq_len], y_t[:, start : start + seq_len]
            logits, state, _ = model(xb, state)
            nats[:, start : start + seq_len] = F.cross_entropy(
                logits.double().transpose(1, 2), yb, ignore_index=IGNORE, reduction="none"
            ).cpu()
    finally:
        model.train(was_training)
    return nats.numpy()[scored]


@torch.no_grad()
def token_logits(
    model: RNNLM, tokens: np.ndarray, seq_len: int = 256, device: str | torch.device = "cpu"
) -> Iterator[torch.Tensor]:
    """The logits [n, V] of tokens[1:] given the tokens before them, chunk by chunk: one stream, the state
    carried (exact, as `token_nats` with one stream)."""
    ids = torch.as_tensor(np.asarray(tokens[:-1], dtype=np.int64), device=device)[None]
    was_training = model.training
    model.eval()
    state: State | None = None
    try:
        for start in range(0, ids.shape[1], seq_len):
            logits, state, _ = model(ids[:, start : start + seq_len], state)
            yield logits[0]
    finally:
        model.train(was_training)


def check_streams(streams: int, dynamic: DynamicConfig | None, mix: NgramConfig | None) -> None:
    """--streams is at least 1, and more than 1 only for static scoring without mixing (the others read one
    stream)."""
    if streams < 1:
        raise RnnlabError(f"--streams must be >= 1, got {streams}")
    if streams > 1 and dynamic is not None:
        raise RnnlabError("--streams applies to static scoring only: dynamic evaluation reads one stream")
    if streams > 1 and mix is not None:
        raise RnnlabError("--streams applies to static scoring without --mix: the mixer reads one stream")


def text_nats(
    module: RNNLM,
    ids: np.ndarray,
    dynamic: DynamicConfig | None = None,
    mix: NgramConfig | None = None,
    memory: np.ndarray | None = None,
    streams: int = 1,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
    word_tokens: np.ndarray | None = None,
) -> np.ndarray:
    """−ln p of ids[1:] as `rnnlab eval` scores them: static (`streams` side by side) or dynamic, and with `mix`
    mixed with the n-gram model whose memory is `memory` (the training tokens) plus the text before each token,
    with word contexts where `word_tokens` (rnnlab.lm.words.word_mask of the tokenizer) is given. `progress` is
    told how many tokens are done as the slow ones (dynamic, mixed) go."""
    check_streams(streams, dynamic, mix)
    if mix is None:
        if dynamic is not None:
            return dynamic_nats(module, ids, dynamic, progress)
        return token_nats(module, ids, streams, device=device)
    if memory is None:
        raise ValueError("mixing needs the n-gram memory")
    logits = dynamic_logits(module, ids, dynamic) if dynamic is not None else token_logits(module, ids, device=device)
    probs = (torch.softmax(chunk.double(), dim=-1).cpu().numpy() for chunk in logits)
    return mixed_nats(probs, memory, ids, module.config.vocab_size, mix, progress, word_tokens)


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available, else CPU; asking for CUDA without it is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RnnlabError("--device cuda requested but no CUDA GPU is available (use --device cpu)")
    return torch.device(device)


class LanguageModel(ModelHubMixin, library_name="rnnlab", tags=["rnnlab", "recurrent-neural-network"]):
    """A trained model with its tokenizer: load it from a run directory, sample from it, score text.

    `save_pretrained(DIR)` and `from_pretrained(DIR or Hub id)` are Hugging Face's (`ModelHubMixin`): a saved
    folder is a run directory rnnlab loads like any other (config.json, tokenizer.json, model.safetensors, the
    model card README.md; with the training metrics and token store where the model came from a run), and
    `push_to_hub` uploads it where there is a network. A folder is read as it is; a Hub id is downloaded first.
    """

    def __init__(self, module: RNNLM, tokenizer: Tokenizer, run_dir: Path | None = None) -> None:
        self.module = module
        self.tokenizer = tokenizer
        self.run_dir = run_dir

    def _save_pretrained(self, save_directory: Path) -> None:
        """ModelHubMixin's hook: write this model as a run directory (what `load` reads), keeping the training
        settings, metrics and training tokens of the run it was loaded from."""
        from rnnlab.data.tokenizers import save_tokenizer
        from rnnlab.lm.card import write_card

        out = Path(save_directory)
        source = self.run_dir
        extra = {}
        if source is not None and (source / CONFIG).exists() and source.resolve() != out.resolve():
            extra = {k: v for k, v in read_run(source).items() if k not in ("kind", "rnnlab_version", "model")}
            for name in (METRICS, "tokens"):
                if (source / name).is_file():
                    shutil.copy2(source / name, out / name)
                elif (source / name).is_dir():
                    shutil.copytree(source / name, out / name, dirs_exist_ok=True)
        write_run_config(out, "lm", dataclasses.asdict(self.module.config), extra)
        save_tokenizer(self.tokenizer, out / TOKENIZER)
        atomic_save_tensors(out / WEIGHTS, {k: v.detach().cpu() for k, v in self.module.state_dict().items()})
        write_card(out)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> LanguageModel:
        """A model from a folder `save_pretrained` wrote (or any run directory), or from a Hugging Face Hub
        repository id (downloaded into huggingface_hub's cache). The Hub's failures (no network, no such
        repository) are one RnnlabError; `device` as for `load`."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except RnnlabError:
            raise
        except Exception as exc:  # huggingface_hub's errors are many and varied: one line each
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RnnlabError(
                f"cannot get {pretrained_model_name_or_path!r} from the Hugging Face Hub: {reason}"
            ) from None

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: Any,
        force_download: bool,
        local_files_only: bool,
        token: Any,
        device: str = "cpu",
        **_: Any,
    ) -> LanguageModel:
        """ModelHubMixin's hook: a local folder is a run directory; a Hub repository is downloaded, then loaded."""
        if Path(model_id).is_dir():
            return cls.load(model_id, device=device)
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            repo_id=model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
        return cls.load(folder, device=device)

    @property
    def device(self) -> torch.device:
        return self.module.head.weight.device

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> LanguageModel:
        """Load `run_dir/model.safetensors` with its config and tokenizer (weights map to any device).

        Everything is checked first: the run's kind (a language model, "lm" or "reference"; any other kind is
        refused naming the command that uses it), config.json's types and values, a tokenizer whose vocabulary is the
        one the weights were trained for, weights that match the config, are finite and unchanged since
        they were saved. Any failure is one RnnlabError naming the file.
        """
        run_dir = Path(run_dir)
        data = read_run(run_dir, LANGUAGE_MODELS)
        config = model_config_from_dict(data["model"], f"{run_dir / 'config.json'}")
        tokenizer = load_tokenizer(run_dir / TOKENIZER)
        if tokenizer.vocab_size != config.vocab_size:
            raise RnnlabError(
                f"{run_dir / TOKENIZER} has {tokenizer.vocab_size} tokens but the model was trained on "
                f"{config.vocab_size}; the tokenizer does not belong to these weights"
            )
        tensors = upgrade_state_dict(load_tensors(run_dir / WEIGHTS))  # runs saved before one layout load too
        with torch.device("meta"):  # names and shapes first: an edited config must not allocate a huge model
            shapes = {name: t.shape for name, t in RNNLM(config).state_dict().items()}
        check_state_dict(shapes, tensors, run_dir / WEIGHTS)
        module = RNNLM(config)
        module.load_state_dict(tensors)
        module.to(resolve_device(device)).eval()
        return cls(module, tokenizer, run_dir)

    def score(
        self,
        text: str | bytes,
        dynamic: DynamicConfig | None = None,
        mix: NgramConfig | None = None,
        *,
        streams: int = 1,
    ) -> Score:
        """Bits per character, nats per token and perplexity of `text` (its first token is unscored).

        Exact: the text is read as one stream, every token scored with its full history. `streams` > 1
        scores that many segments side by side, each warmed up on the text before it (faster, close but
        not exact; see `token_nats`). Bytes are accepted for byte-tokenizer models (any file); characters
        are then counted after UTF-8 decoding, so bits per character always means per character of the
        original text. With `dynamic`, the model adapts to the text as it reads it (see rnnlab.lm.dynamic);
        the loaded weights are not changed. With `mix`, its predictions are mixed with an n-gram model
        whose memory is the run's training split and the part of the text already scored (see rnnlab.lm.ngram).
        A text with fewer than two tokens, or a model whose scores are not finite, is an RnnlabError.
        """
        return Score.from_totals(*self._totals(text, dynamic, mix, streams, "the text"))

    def score_files(
        self,
        paths: list[Path],
        dynamic: DynamicConfig | None = None,
        mix: NgramConfig | None = None,
        *,
        streams: int = 1,
        progress: Callable[[Path, int, int], None] | None = None,
    ) -> Score:
        """One score over several files, each read from a fresh state (totals are summed); as `score`. `progress`
        is told (file, tokens done, tokens in it) as the slow scorings (dynamic, mixed) go."""
        totals = [self._totals(self._read(path), dynamic, mix, streams, str(path), progress) for path in paths]
        return Score.from_totals(*(sum(column) for column in zip(*totals, strict=True)))

    def _read(self, path: Path) -> str | bytes:
        from rnnlab.data.corpus import read_text

        return path.read_bytes() if self.tokenizer.kind == "byte" else read_text(path)

    def training_tokens(self) -> np.ndarray:
        """The run's training split, the n-gram mixer's memory of the training text. Never the validation
        split: a run's validation text is held out, and is what users score to measure the model."""
        from rnnlab.data.prepare import TokenStore

        if self.run_dir is None or not (self.run_dir / "tokens").is_dir():
            raise RnnlabError("n-gram mixing needs the run directory's tokens/ folder (the training text)")
        return np.asarray(TokenStore.open(self.run_dir).train.tokens)

    def _totals(
        self,
        text: str | bytes,
        dynamic: DynamicConfig | None = None,
        mix: NgramConfig | None = None,
        streams: int = 1,
        name: str = "the text",
        progress: Callable[[Path, int, int], None] | None = None,
    ) -> tuple[float, int, int]:
        """(nats, tokens scored, characters covered by the scored tokens) of `text`, called `name` in errors."""
        check_streams(streams, dynamic, mix)
        if isinstance(text, str):
            ids = self.tokenizer.encode(text)
        elif self.tokenizer.kind == "byte":
            ids = self.tokenizer.encode_bytes(text)  # type: ignore[attr-defined]
            text = text.decode("utf-8", errors="replace")
        else:
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise RnnlabError(f"{name} is not valid UTF-8; only byte-tokenizer models score raw bytes") from None
            ids = self.tokenizer.encode(text)
        if len(ids) < 2:
            raise RnnlabError(f"{name} has no tokens to score (it needs two or more: the first is context only)")
        memory = self.training_tokens() if mix is not None else None
        report = None if progress is None else lambda done: progress(Path(name), done, len(ids) - 1)
        word_tokens = words.word_mask(self.tokenizer) if mix is not None else None
        nats = text_nats(self.module, ids, dynamic, mix, memory, streams, self.device, report, word_tokens)
        if not np.isfinite(nats).all():
            cause = "--dynamic-lr may be too large, or " if dynamic is not None else ""
            raise RnnlabError(f"scoring {name} gave non-finite log-probabilities: {cause}the model's weights are bad")
        return float(nats.sum()), len(nats), max(len(text) - _first_token_chars(self.tokenizer, text), 0)

    def generate(self, prime: str = "", length: int = 200, **options: Any) -> str:
        """Sampled continuation of `prime` (not including it). Options as in `stream`."""
        return "".join(self.stream(prime, length, **options))

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
        sampled token is fed back. `length` counts tokens; generation ends early at a stop string. The same
        `seed` (in [0, 2**63), as for training and the server) gives the same text. Bad settings and unknown
        characters in the prime raise here, at the call; the model runs from the first `next`.

        The prime goes through the module's sequence forward in one call, as `score` reads text; each
        sampled token then goes through `make_stepper`'s stepper from that state (NumPy for the fused cells
        on the CPU, else the module's one-step forward), and the token is chosen in NumPy. (No `torch.no_grad`
        decorator: on a generator it is re-entered at every token; the forward calls carry their own.)"""
        _check_sampling(length, temperature, top_k, top_p, seed)
        rng = sampling_rng(seed)
        ids = self.tokenizer.encode(prime) if prime else self._start_ids(rng)

        def pieces() -> Iterator[str]:
            self.module.eval()
            tokens = torch.as_tensor(ids, dtype=torch.long, device=self.device).unsqueeze(0)
            with torch.no_grad():
                logits, state, _ = self.module(tokens)
            stepper = make_stepper(self.module)
            stepper.set_state(state)
            logits = logits[0, -1].float().cpu().numpy()
            decode, matcher = self.tokenizer.decoder(), StopMatcher(stop or [])
            for _ in range(length):
                token = next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy, rng=rng)
                piece = matcher.feed(decode(token))
                if piece:
                    yield piece
                if matcher.stopped:
                    return
                logits = stepper.step(token)
            if tail := matcher.flush():
                yield tail

        return pieces()

    def _start_ids(self, rng: np.random.Generator) -> np.ndarray:
        """With no prime, start after a newline when the vocabulary has one, else from a random token."""
        try:
            return self.tokenizer.encode("\n")
        except RnnlabError:
            return np.array([int(rng.integers(self.module.config.vocab_size))])


def _first_token_chars(tokenizer: Tokenizer, text: str) -> int:
    """Characters of `text` under its first token, which is context only (not scored), so that bits per
    character divide by the characters the scored tokens cover: 1 for char/byte, a word or BPE piece else."""
    pieces = getattr(tokenizer, "pieces", None)
    return len(pieces(text)[0]) if pieces is not None and text else 1


def _check_sampling(length: int, temperature: float, top_k: int, top_p: float, seed: int | None) -> None:
    """Refuse settings that describe no distribution (NaN, infinity), or a token count or seed beyond int64."""
    if not 0 <= length < 2**63:
        raise RnnlabError(f"--length must be in [0, 2**63 - 1], got {length}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise RnnlabError(f"--temperature must be a finite number >= 0, got {temperature}")
    if top_k < 0:
        raise RnnlabError(f"--top-k must be >= 0, got {top_k}")
    if not 0 < top_p <= 1:
        raise RnnlabError(f"--top-p must be in (0, 1], got {top_p}")
    if seed is not None and not 0 <= seed < 2**63:
        raise RnnlabError(f"--seed must be in [0, 2**63), got {seed}")
