"""Encoder-decoder ("many-to-one + one-to-many") with optional attention, and one-to-many generation, with
greedy and beam decoding.

    encoder: source tokens (or feature vectors, through a linear projection) -> Recurrent, forwards or in both
             directions (`bidirectional`: H/2 units each way, their outputs and final states side by side)
    decoder: the encoder's final state, then <START> y1 y2 ... -> Recurrent -> linear -> next-token logits,
             until <END>; what else each step reads of the source depends on `attention`:
      none      [embedding of the previous token; c], c the encoder's final top-layer h (Cho et al. 2014)
      additive  [embedding; c_t], c_t the attention context for the previous decoder state (Bahdanau et al.
                2015); the output layer reads tanh(W [s_t; c_t])
      dot       the embedding alone; c_t attends with the new decoder state s_t, and the output layer reads
                tanh(W [s_t; c_t]) (Luong et al. 2015, without input feeding)

Sources of different lengths are encoded in groups of equal length, so padding never enters the recurrence,
and attention masks padded positions (rnnlab.seq.attention): padding a batch further changes no output.
For one-to-many generation the "encoder" is a single vector: a learnt embedding of the class, mapped
through tanh to the decoder's initial state.

Decoding: greedy takes the most likely token at each step; beam search keeps the `width` most likely
prefixes (scores are summed log-probabilities, not length-normalised) and width 1 is greedy decoding. The
greedy hypothesis is always among beam search's candidates, so beam search never returns a lower
log-probability than greedy. A source longer than any seen in training may have a longer output: the
output limit grows with the source, at the largest target/source length ratio of the training pairs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.data.tokenizers import BPETokenizer, tokenizer_from_dict
from rnnlab.errors import RnnlabError
from rnnlab.metrics import corpus_bleu
from rnnlab.nn import registry
from rnnlab.nn.recurrent import Recurrent, State
from rnnlab.rundir import WEIGHTS, tensor_shapes
from rnnlab.seq.attention import KINDS, Attention
from rnnlab.seq.sequence import (
    END,
    START,
    SeqConfig,
    Vocab,
    fit,
    load_weights,
    pad,
    read_run,
    save_run,
    select_state,
)
from rnnlab.seq.vectors import FeatureInput
from rnnlab.tasks import seq2seq_toys

KIND = "seq2seq"
IGNORE = -100
TOKENS = ("char", "word", "bpe")
Source = Sequence[str] | np.ndarray  # tokens, or a (T, F) array of feature vectors
Pairs = list[tuple[list[str], list[str]]]


class Memory(NamedTuple):
    """What the decoder reads of the source besides its first state."""

    summary: Tensor  # (N, H) the encoder's final top-layer h (Cho et al.'s context)
    outputs: Tensor | None  # (N, S, H) encoder outputs, zeros at padding (None for one-to-many)
    keys: Tensor | None  # (N, S, H) the attention's projection of `outputs` (None without attention)
    mask: Tensor | None  # (N, S) True at real source positions

    def repeat(self, n: int) -> Memory:
        """One source's memory (first dimension 1) for n beams."""
        return Memory(*(None if t is None else t.expand(n, *t.shape[1:]) for t in self))


class Seq2SeqNet(nn.Module):
    """Encoder (a Recurrent over the source, or a class embedding when `one_to_many`) + decoder with
    `attention` none, additive or dot; `features` > 0 reads vectors of that size instead of token ids."""

    def __init__(
        self,
        config: SeqConfig,
        src_vocab: int,
        tgt_vocab: int,
        one_to_many: bool = False,
        *,
        attention: str = "none",
        bidirectional: bool = False,
        features: int = 0,
    ) -> None:
        super().__init__()
        if attention not in KINDS:
            raise RnnlabError(f"unknown attention {attention!r}; choose one of: {', '.join(KINDS)}")
        if one_to_many and (attention != "none" or bidirectional):
            raise RnnlabError("one-to-many generation has a single vector to read: no attention, no bidirectional")
        if bidirectional and (config.hidden % 2 or registry.get(config.cell).same_width):
            raise RnnlabError("--bidirectional gives each direction half of --hidden: it needs an even --hidden "
                              "and a cell whose width may differ from its input's")  # fmt: skip
        self.config, self.one_to_many, self.attention_kind = config, one_to_many, attention
        self.bidirectional, self.features = bidirectional, features
        H = config.hidden
        if one_to_many:
            self.condition = nn.Embedding(src_vocab, config.state_size)
        else:
            if features:
                self.src_project = FeatureInput(features, config.embed)
            else:
                self.src_embed = nn.Embedding(src_vocab, config.embed, padding_idx=0)
            width = H // 2 if bidirectional else H
            self.encoder = Recurrent(config.cell, config.embed, width, config.layers, config.dropout)
            if bidirectional:
                self.encoder_back = Recurrent(config.cell, config.embed, width, config.layers, config.dropout)
        self.tgt_embed = nn.Embedding(tgt_vocab, config.embed, padding_idx=0)
        self.decoder = config.recurrent(input_size=config.embed + (0 if attention == "dot" else H))
        if attention != "none":
            self.attention = Attention(attention, H, H)
            self.combine = nn.Linear(2 * H, H)
        self.head = nn.Linear(H, tgt_vocab)

    def encode(self, src: Tensor, lengths: Tensor) -> tuple[State, Memory]:
        """(N, S) right-padded source ids, or (N, S, F) vectors, with their (N,) lengths -> (the decoder's first
        state, its memory of the source). Each group of equal length runs unpadded."""
        if self.one_to_many:
            state = self.config.vector_state(self.condition(src[:, 0]))
            return state, Memory(top_h(state), None, None, None)
        x = self.src_project(src) if self.features else self.src_embed(src)
        S = x.shape[1]
        rows, outputs, states = [], [], []
        for length in lengths.unique().tolist():
            group = (lengths == length).nonzero()[:, 0]
            part = x[group, :length]
            out, state = self.encoder(part)
            if self.bidirectional:
                back, back_state = self.encoder_back(part.flip(1))
                out, state = torch.cat([out, back.flip(1)], -1), _map(lambda *p: torch.cat(p, -1), state, back_state)
            rows.append(group)
            outputs.append(F.pad(out, (0, 0, 0, S - length)))
            states.append(state)
        order = torch.cat(rows).argsort()  # back to the batch's order
        out = torch.cat(outputs)[order]
        state = _map(lambda *parts: torch.cat(parts, 1)[:, order], *states)
        mask = torch.arange(S, device=x.device)[None] < lengths.to(x.device)[:, None]
        keys = self.attention.keys(out) if self.attention_kind != "none" else None
        return state, Memory(top_h(state), out, keys, mask)

    def decode(self, tokens: Tensor, state: State, memory: Memory) -> tuple[Tensor, State]:
        """(N, T) target-side ids from `state` -> (N, T, V) logits, new state."""
        logits, state, _ = self.decode_attending(tokens, state, memory)
        return logits, state

    def decode_attending(self, tokens: Tensor, state: State, memory: Memory) -> tuple[Tensor, State, Tensor | None]:
        """`decode`, also returning the (N, T, S) attention weights of each step (None without attention)."""
        x = self.tgt_embed(tokens)
        if self.attention_kind == "none":
            x = torch.cat([x, memory.summary[:, None].expand(-1, x.shape[1], -1)], dim=-1)
            out, state = self.decoder(x, state)
            return self.head(out), state, None
        if self.attention_kind == "dot":
            out, state = self.decoder(x, state)
            context, weights = self.attention(out, memory.keys, memory.outputs, memory.mask)
        else:  # additive: each step's context depends on the state before it, so steps run one at a time
            steps = []
            for t in range(x.shape[1]):
                c, w = self.attention(top_h(state)[:, None], memory.keys, memory.outputs, memory.mask)
                o, state = self.decoder(torch.cat([x[:, t : t + 1], c], dim=-1), state)
                steps.append((o, c, w))
            out, context, weights = (torch.cat(parts, 1) for parts in zip(*steps, strict=True))
        return self.head(torch.tanh(self.combine(torch.cat([out, context], -1)))), state, weights


def top_h(state: State) -> Tensor:
    """The top layer's h (N, H) of a state (L, N, H) or (h, c)."""
    return (state[0] if isinstance(state, tuple) else state)[-1]


def _map(fn: Callable[..., Tensor], *states: State) -> State:
    """Apply `fn` part by part to states of the same layout (a tensor, or a tuple such as the LSTM's (h, c))."""
    if isinstance(states[0], tuple):
        return tuple(fn(*parts) for parts in zip(*states, strict=True))
    return fn(*states)


class Side:
    """How one side's text becomes tokens and back: `char`, `word` (split at whitespace), `bpe` (byte-level BPE
    pieces from rnnlab.data.tokenizers, learnt on the training text) or `auto` (the built-in tasks, and runs
    that recorded nothing: tokens separated by spaces where the text has any, else characters)."""

    def __init__(self, kind: str = "auto", bpe: BPETokenizer | None = None) -> None:
        self.kind, self.bpe = kind, bpe

    @classmethod
    def fit(cls, kind: str, texts: list[str], vocab_size: int = 1000) -> Side:
        if kind not in TOKENS:
            raise RnnlabError(f"unknown tokens {kind!r}; choose one of: {', '.join(TOKENS)}")
        return cls(kind, BPETokenizer.fit(texts, vocab_size) if kind == "bpe" else None)

    def split(self, text: str) -> list[str]:
        if self.kind == "char":
            return list(text)
        if self.kind == "word":
            return text.split()
        if self.kind == "bpe":
            return self.bpe.hf.encode(text).tokens  # type: ignore[union-attr]
        return text.split() if " " in text.strip() else list(text)

    def join(self, tokens: list[str], spaced: bool = False) -> str:
        """Tokens back to text; `spaced` (auto only) separates them by spaces, as a spaced source was."""
        if self.kind == "bpe":
            hf = self.bpe.hf  # type: ignore[union-attr]
            return self.bpe.decode(hf.token_to_id(t) for t in tokens)  # type: ignore[union-attr]
        return (" " if self.kind == "word" or (self.kind == "auto" and spaced) else "").join(tokens)

    def units(self, tokens: list[str]) -> list[str]:
        """What BLEU counts: the tokens themselves, but words for BPE (its pieces are not meaningful units)."""
        return self.join(tokens).split() if self.kind == "bpe" else tokens

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.kind, **({"tokenizer": self.bpe.to_dict()} if self.bpe else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Side:
        if not data:
            return cls()
        bpe = tokenizer_from_dict(data["tokenizer"]) if data.get("tokens") == "bpe" else None
        return cls(str(data.get("tokens", "auto")), bpe)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Scores:
    """Held-out quality of the decoded outputs."""

    exact: float  # fraction of outputs equal to their target
    bleu: float  # corpus BLEU-4 with brevity penalty (rnnlab.metrics.corpus_bleu) over Side.units; NaN when no
    # output has 4 units, where BLEU-4 is 0 whatever the outputs (NLTK's corpus_bleu says 0 with a warning)
    token_accuracy: float  # target tokens matched at their own position, over all target tokens
    count: int


class Seq2Seq:
    """A trained encoder-decoder (or one-to-many generator) with its vocabularies and tokenisation."""

    def __init__(
        self,
        module: Seq2SeqNet,
        src: Vocab,
        tgt: Vocab,
        config: SeqConfig,
        max_len: int,
        *,
        sides: tuple[Side, Side] | None = None,
        len_ratio: float = 0.0,
    ) -> None:
        self.module, self.src, self.tgt, self.config, self.max_len = module, src, tgt, config, max_len
        self.sides, self.len_ratio = sides or (Side(), Side()), len_ratio

    @classmethod
    def train(
        cls,
        pairs: list[tuple[Source, list[str]]],
        config: SeqConfig,
        one_to_many: bool = False,
        log: Callable[[int, float], None] | None = None,
        *,
        attention: str = "none",
        bidirectional: bool = False,
        sides: tuple[Side, Side] | None = None,
    ) -> Seq2Seq:
        """Teacher forcing: the decoder reads <START> + target and predicts target + <END>. Sources are token
        lists, or (T, F) float arrays of feature vectors (all with the same F)."""
        config.validate()
        if not pairs or any(len(s) == 0 or not t for s, t in pairs):
            raise RnnlabError("need non-empty (source, target) pairs to train")
        if one_to_many and any(len(s) != 1 for s, _ in pairs):
            raise RnnlabError("one-to-many generation takes exactly one class token per example")
        vectors = isinstance(pairs[0][0], np.ndarray)
        features = _features([s for s, _ in pairs]) if vectors else 0
        src = Vocab([]) if vectors else Vocab(tok for s, _ in pairs for tok in s)
        tgt = Vocab((tok for _, t in pairs for tok in t), specials=(START, END))
        torch.manual_seed(config.seed)
        module = Seq2SeqNet(
            config, len(src), len(tgt), one_to_many, attention=attention, bidirectional=bidirectional, features=features
        )
        ratio = 0.0 if one_to_many else max(len(t) / len(s) for s, t in pairs)
        longest = max(len(t) for _, t in pairs) + 5
        model = cls(module, src, tgt, config, longest, sides=sides, len_ratio=ratio)
        sources = [model._source(s) for s, _ in pairs]
        if features:
            module.src_project.fit([s.numpy() for s in sources])  # standardise with the training frames
        inputs = [tgt.encode([START, *t]) for _, t in pairs]
        targets = [tgt.encode([*t, END]) for _, t in pairs]

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(pairs), (config.batch_size,), generator=generator).tolist()
            x, _ = pad([inputs[i] for i in pick])
            y, _ = pad([targets[i] for i in pick], IGNORE)
            state, memory = module.encode(*_stack([sources[i] for i in pick]))
            logits, _ = module.decode(x, state, memory)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)

        fit(module, batch_loss, config, log=log)
        return model

    def _source(self, source: Source) -> Tensor:
        """One source as the encoder's input: (T,) ids, or (T, F) float32 vectors (checked)."""
        if self.module.features:
            array = np.asarray(source, dtype=np.float32)
            if array.ndim != 2 or array.shape[1] != self.module.features or len(array) == 0:
                raise RnnlabError(
                    f"a source of vectors must be (frames, {self.module.features}), got shape {tuple(array.shape)}"
                )
            if not np.isfinite(array).all():
                raise RnnlabError("a source holds NaN or infinite values")
            return torch.from_numpy(array)
        if len(source) == 0:
            raise RnnlabError("a source has no tokens")
        return torch.tensor(self.src.encode(source))

    def _check_known(self, sources: list) -> None:
        """A source token not seen in training is an error (where it is not wanted read as <unk>)."""
        if isinstance(self.module, Seq2SeqNet) and not self.module.features:
            unknown = sorted({tok for s in sources for tok in s if tok not in self.src.index})
            if unknown:
                raise RnnlabError(f"input token(s) not seen in training: {' '.join(map(repr, unknown[:10]))}")

    def _encode(self, sources: list) -> tuple[State, Memory]:
        """Sources -> (the decoder's first state, its memory of them); unknown tokens read as <unk>."""
        return self.module.encode(*_stack([self._source(s) for s in sources]))

    def _limit(self, source: Source) -> int:
        """The most tokens an output may have: the training maximum, or more for a longer source."""
        if not self.len_ratio:
            return self.max_len
        return max(self.max_len, math.ceil(self.len_ratio * len(source)) + 5)

    @torch.no_grad()
    def greedy(self, sources: list, strict: bool = True) -> list[tuple[list[str], float]]:
        """Most likely token at every step, for a batch of sources: (output tokens, log-probability) each. A
        source token not seen in training is an error when `strict`, else read as <unk> (held-out data may well
        hold a word training never saw)."""
        if strict:
            self._check_known(sources)
        self.module.eval()
        N, end = len(sources), self.tgt.index[END]
        limits = torch.tensor([self._limit(s) for s in sources])
        state, memory = self._encode(sources)
        token = torch.full((N, 1), self.tgt.index[START])
        outputs, scores = [[] for _ in range(N)], torch.zeros(N, dtype=torch.float64)
        done = torch.zeros(N, dtype=torch.bool)
        for step in range(int(limits.max())):
            logits, state = self.module.decode(token, state, memory)
            logp = logits[:, -1].double().log_softmax(-1)
            best = logp.argmax(-1)
            scores += torch.where(done, 0.0, logp.gather(1, best[:, None])[:, 0])
            for i in (~done).nonzero()[:, 0].tolist():
                if best[i] != end:
                    outputs[i].append(self.tgt.tokens[best[i]])
            done |= (best == end) | (limits <= step + 1)
            if done.all():
                break
            token = best[:, None]
        return list(zip(outputs, scores.tolist(), strict=True))

    @torch.no_grad()
    def beam(self, source: Source, width: int = 5, strict: bool = True) -> tuple[list[str], float]:
        """Beam search for one source: the finished hypothesis with the highest summed log-probability. Each
        step keeps the `width` best extensions of the live prefixes; those ending in <END> leave the beam."""
        if width < 1:
            raise RnnlabError(f"--beam must be >= 1, got {width}")
        if strict:
            self._check_known([source])
        self.module.eval()
        start, end, limit = self.tgt.index[START], self.tgt.index[END], self._limit(source)
        state, memory = self._encode([source])
        alive: list[tuple[float, list[int]]] = [(0.0, [])]
        tokens = torch.tensor([[start]])
        finished = [(score, self.tgt.encode(out)) for out, score in self.greedy([source], strict)]
        for step in range(limit):
            logits, state = self.module.decode(tokens, state, _repeat(memory, len(alive)))
            logp = logits[:, -1].double().log_softmax(-1)
            total = torch.tensor([s for s, _ in alive], dtype=torch.float64)[:, None] + logp
            values, flat = total.flatten().topk(min(width, total.numel()))
            keep: list[tuple[float, list[int]]] = []
            rows: list[int] = []
            for value, index in zip(values.tolist(), flat.tolist(), strict=True):
                row, token = divmod(index, logp.shape[1])
                if token == end or step == limit - 1:
                    finished.append((value, alive[row][1] + ([] if token == end else [token])))
                else:
                    keep.append((value, alive[row][1] + [token]))
                    rows.append(row)
            if not keep or max(s for s, _ in finished) >= keep[0][0]:  # scores only fall: no live prefix can win
                break
            alive = keep
            state = select_state(state, torch.tensor(rows))
            tokens = torch.tensor([[ids[-1]] for _, ids in alive])
        score, ids = max(finished, key=lambda f: f[0])
        return self.tgt.decode(ids), score

    def translate(self, sources: list, beam: int = 1, strict: bool = True) -> list[tuple[list[str], float]]:
        """(output tokens, log-probability) for each source: greedy (batched) when `beam` is 1, else beam search
        of that width."""
        if beam > 1:
            return [self.beam(s, beam, strict) for s in sources]
        return [out for i in range(0, len(sources), 256) for out in self.greedy(sources[i : i + 256], strict)]

    def exact_match(self, pairs: list[tuple[Source, list[str]]], beam: int = 1) -> float:
        """Fraction of sources whose output equals the target exactly."""
        return self.evaluate(pairs, beam).exact

    def evaluate(self, pairs: list[tuple[Source, list[str]]], beam: int = 1) -> Scores:
        """Exact match, corpus BLEU-4 and per-position token accuracy of the outputs against the targets."""
        if not pairs:
            raise RnnlabError("no pairs to evaluate")
        outputs = [out for out, _ in self.translate([s for s, _ in pairs], beam, strict=False)]
        targets = [t for _, t in pairs]
        return score_outputs(outputs, targets, self.sides[1])

    @torch.no_grad()
    def attention(self, source: Source, output: list[str]) -> Tensor:
        """(len(output) + 1, S) attention weights with which the decoder read `source` while writing `output`
        and then <END> (teacher forcing on `output`; for the greedy output these are greedy decoding's own)."""
        if self.module.attention_kind == "none":
            raise RnnlabError("this run has no attention to plot (trained with --attention none)")
        self.module.eval()
        state, memory = self._encode([source])
        tokens = torch.tensor([self.tgt.encode([START, *output])])
        return self.module.decode_attending(tokens, state, memory)[2][0]  # type: ignore[index]

    def plot_attention(self, source: Source, output: list[str], path: Path, title: str = "") -> Path:
        """Draw `attention(source, output)` as a PNG, with readable labels (BPE pieces as their text, frames
        by number)."""
        from rnnlab.seq.attention import plot_attention

        if self.module.features:
            x = [f"frame {t}" for t in range(len(source))]
        else:
            x = [self.sides[0].join([t]) for t in source]
        y = [*(self.sides[1].join([t]) for t in output), END]
        return plot_attention(self.attention(source, output), x, y, path, title)

    def save(self, out: Path, task: str = "") -> Path:
        extra: dict[str, Any] = {
            "src_vocab": self.src.tokens,
            "tgt_vocab": self.tgt.tokens,
            "max_len": self.max_len,
            "one_to_many": self.module.one_to_many,
            "task": task,
            "attention": self.module.attention_kind,
            "bidirectional": self.module.bidirectional,
            "features": self.module.features,
            "len_ratio": self.len_ratio,
            "source": self.sides[0].to_dict(),
            "target": self.sides[1].to_dict(),
        }
        return save_run(out, KIND, self.config, self.module, extra)

    @classmethod
    def load(cls, run_dir: Path) -> Seq2Seq:
        """A seq2seq run, including one written before attention existed (rnnlab 0.1.0)."""
        data, config = read_run(run_dir, KIND)
        src, tgt = Vocab(data["src_vocab"]), Vocab(data["tgt_vocab"], specials=(START, END))
        module = Seq2SeqNet(
            config,
            len(src),
            len(tgt),
            bool(data["one_to_many"]),
            attention=str(data.get("attention", "none")),
            bidirectional=bool(data.get("bidirectional", False)),
            features=int(data.get("features", 0)),
        )
        sides = (Side.from_dict(data.get("source")), Side.from_dict(data.get("target")))
        return cls(
            load_weights(module, run_dir),  # type: ignore[arg-type]
            src,
            tgt,
            config,
            int(data["max_len"]),
            sides=sides,
            len_ratio=float(data.get("len_ratio", 0.0)),
        )


def score_outputs(outputs: list[list[str]], targets: list[list[str]], side: Side | None = None) -> Scores:
    """Exact match, corpus BLEU-4 (over `side.units`) and per-position token accuracy of outputs vs targets."""
    side = side or Side()
    exact = sum(o == t for o, t in zip(outputs, targets, strict=True)) / len(targets)
    units = [side.units(o) for o in outputs]
    bleu = corpus_bleu(units, [[side.units(t)] for t in targets])[-1] if max(map(len, units)) >= 4 else math.nan
    hits = sum(sum(a == b for a, b in zip(o, t, strict=False)) for o, t in zip(outputs, targets, strict=True))
    return Scores(exact, bleu, hits / sum(map(len, targets)), len(targets))


def most_common_baseline(train: list[tuple[Any, list[str]]], test: list[tuple[Any, list[str]]]) -> Scores:
    """The scores of always answering the most common training target: the trivial baseline."""
    common = list(Counter(tuple(t) for _, t in train).most_common(1)[0][0])
    return score_outputs([common] * len(test), [t for _, t in test])


def _stack(sources: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pad sources ((T,) ids or (T, F) vectors) into one batch, with their lengths."""
    lengths = torch.tensor([len(s) for s in sources])
    return nn.utils.rnn.pad_sequence(sources, batch_first=True), lengths


def _features(sources: list[np.ndarray]) -> int:
    """The vector size F shared by every (T, F) source."""
    sizes = {s.shape[1] if s.ndim == 2 else -1 for s in sources}
    if len(sizes) != 1 or -1 in sizes:
        raise RnnlabError(f"every source must be a (frames, features) array of one feature size, got {sorted(sizes)}")
    return sizes.pop()


def _repeat(memory: Memory | Tensor, n: int) -> Memory | Tensor:
    """One source's memory for n beams (a plain tensor, such as a captioner's image vector, too)."""
    return memory.repeat(n) if isinstance(memory, Memory) else memory.expand(n, *memory.shape[1:])


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(source, target) texts from a file of `source<TAB>target` lines (blank lines skipped); a line without
    exactly one tab, or with an empty side, is an error naming the line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RnnlabError(f"cannot read {path}: {exc}") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise RnnlabError(f"{path}:{number}: expected source<TAB>target, found {len(parts) - 1} tabs")
        source, target = (p.strip() for p in parts)
        if not source or not target:
            raise RnnlabError(f"{path}:{number}: empty {'source' if not source else 'target'}")
        pairs.append((source, target))
    if not pairs:
        raise RnnlabError(f"{path} has no source<TAB>target lines")
    return pairs


def tokenize(pairs: list[tuple[str, str]], sides: tuple[Side, Side]) -> Pairs:
    """Texts -> token lists, each side with its own tokenisation; a side with no tokens is an error."""
    out = []
    for number, (source, target) in enumerate(pairs, 1):
        s, t = sides[0].split(source), sides[1].split(target)
        if not s or not t:
            raise RnnlabError(f"pair {number} has no tokens on its {'source' if not s else 'target'} side")
        out.append((s, t))
    return out


@dataclass
class Dataset:
    """Training and held-out pairs, how their text became tokens, and where they came from."""

    train: list[tuple[Source, list[str]]]
    test: list[tuple[Source, list[str]]]
    sides: tuple[Side, Side]
    task: str  # the built-in task, or "" for the user's file
    one_to_many: bool = False


def builtin_data(task: str, examples: int, length: int, seed: int) -> Dataset:
    """A built-in task: `examples` training pairs and 1000 held-out ones (500 clips for `video`) drawn with
    another seed; `length` sizes reverse and sort (the length) and spell (the longest number)."""
    if task == "video":
        from rnnlab.tasks.video import moving_shapes

        train, test = moving_shapes(examples, seed), moving_shapes(500, seed + 1)
        return Dataset(_vector_pairs(train), _vector_pairs(test), (Side("vectors"), Side("word")), task)
    if task not in seq2seq_toys.TASKS:
        choices = ", ".join([*seq2seq_toys.TASKS, "video"])
        raise RnnlabError(f"unknown task {task!r}; choose one of: {choices}")
    if length < 1:
        raise RnnlabError(f"--length must be >= 1, got {length}")
    sized = {"length": length} if task in ("reverse", "sort", "spell") else {}
    train, test = demo(task, examples, seed, **sized), demo(task, 1000, seed + 1, **sized)
    sides = (Side("char"), Side("word")) if task == "spell" else (Side(), Side())  # "407" -> "four zero seven"
    return Dataset(train, test, sides, task, one_to_many=task == "multiples")  # type: ignore[arg-type]


def file_data(
    path: Path,
    split: Callable[[list], tuple[list, list]],
    tokens: tuple[str, str] = ("char", "char"),
    vocab_size: int = 1000,
) -> Dataset:
    """The user's pairs: source<TAB>target lines, or a vector file (rnnlab.seq.vectors) with a target text per
    sequence; `split` holds some out; each side is tokenised as `tokens` says (BPE learnt on the training part)."""
    for kind in tokens:
        if kind not in TOKENS:
            raise RnnlabError(f"unknown tokens {kind!r}; choose one of: {', '.join(TOKENS)}")
    from rnnlab.seq.vectors import is_vector_file, read_vector_sequences

    if is_vector_file(path):
        train_raw, test_raw = split(_vector_pairs(read_vector_sequences(path), str(path)))
        target = Side.fit(tokens[1], [t for _, t in train_raw], vocab_size)
        sides = (Side("vectors"), target)
        train, test = ([(s, target.split(t)) for s, t in part] for part in (train_raw, test_raw))
        return Dataset(train, test, sides, "")
    texts_train, texts_test = split(read_pairs(path))
    sides = tuple(Side.fit(kind, [p[i] for p in texts_train], vocab_size) for i, kind in enumerate(tokens))
    return Dataset(tokenize(texts_train, sides), tokenize(texts_test, sides), sides, "")  # type: ignore[arg-type]


def evaluation_pairs(model: Seq2Seq, path: Path) -> list[tuple[Source, list[str]]]:
    """Pairs from `path` (a vector file for a run trained on vectors, else source<TAB>target lines) tokenised
    as the run was trained."""
    if model.module.features:
        from rnnlab.seq.vectors import read_vector_sequences

        pairs = _vector_pairs(read_vector_sequences(path), str(path))
        return [(s, model.sides[1].split(t)) for s, t in pairs]
    return tokenize(read_pairs(path), model.sides)


def read_sources(model: Seq2Seq, texts: list[str] | None, path: Path | None) -> tuple[list[str], list[Source]]:
    """The sources to decode, each with a name: `texts` (or the non-blank lines of `path`) tokenised as the run
    was trained, or for a run trained on vectors the sequences of the vector file `path` and their ids."""
    if model.module.features:
        if path is None or texts:
            raise RnnlabError("a run trained on vector sequences reads its sources from a vector file: --sources FILE")
        from rnnlab.seq.vectors import read_vector_sequences

        sequences = read_vector_sequences(path)
        return sequences.names(), list(sequences.features)
    if not texts and path is not None:
        try:
            texts = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise RnnlabError(f"cannot read {path}: {exc}") from None
    texts = [t for t in texts or [] if t.strip()]
    if not texts:
        raise RnnlabError("no sources to decode")
    return texts, [model.sides[0].split(t) for t in texts]


def _vector_pairs(sequences: Any, name: str = "the clips") -> list[tuple[np.ndarray, str]]:
    """(frames, target text) of each sequence of a VectorSequences; sequences without targets are an error."""
    if sequences.targets is None:
        raise RnnlabError(f"{name} has no targets: seq2seq needs a target text per sequence")
    return list(zip(sequences.features, sequences.targets, strict=True))


def demo(task: str, n: int, seed: int = 0, **sizes: int) -> Pairs:
    """Pairs for a built-in task (rnnlab.tasks.seq2seq_toys.TASKS)."""
    if task not in seq2seq_toys.TASKS:
        raise RnnlabError(f"unknown task {task!r}; choose one of: {', '.join(seq2seq_toys.TASKS)}")
    return seq2seq_toys.TASKS[task](n, seed=seed, **sizes)


def describe(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """`rnnlab info` lines of a seq2seq run: the encoder, attention and decoder, sizes, data and training."""
    m = config["model"]
    stack = f"{m.get('layers', '?')} x {m.get('cell', '?')} {m.get('hidden', '?')}"
    both = ", both directions" if config.get("bidirectional") else ""
    if config.get("one_to_many"):
        source = "class embedding"
    elif config.get("features"):
        source = f"{config['features']} features per frame -> encoder {stack}{both}"
    else:
        source = f"encoder {stack}{both}"
    attention = config.get("attention", "none")
    reads = {"none": "", "additive": " with additive attention", "dot": " with dot-product attention"}.get(attention)
    weights = Path(run_dir) / WEIGHTS
    params = f"{sum(math.prod(s) for s in tensor_shapes(weights).values()):,}" if weights.exists() else "?"
    tokens = [(config.get(side) or {}).get("tokens", "auto") for side in ("source", "target")]
    shown = "" if tokens == ["auto", "auto"] else f"; tokens {tokens[0]} -> {tokens[1]}"
    vocab = len(config.get("src_vocab") or [])
    return [
        f"model        {source} -> decoder {stack}{reads or ''}, embed {m.get('embed', '?')}, "
        f"dropout {m.get('dropout', '?')}",
        f"parameters   {params}",
        f"data         task {config.get('task') or 'user data'}; source vocabulary {vocab}, target vocabulary "
        f"{len(config.get('tgt_vocab') or [])}{shown}; outputs up to {config.get('max_len', '?')} tokens",
        f"training     Adam lr {m.get('lr', '?')}, batch {m.get('batch_size', '?')}, "
        f"{m.get('steps', '?')} steps at most, seed {m.get('seed', '?')}",
    ]
