"""Encoder-decoder ("many-to-one + one-to-many") and one-to-many generation, with greedy and beam decoding.

    encoder: source tokens -> Recurrent -> final state (the whole input in one state)
    decoder: that state, then <START> y1 y2 ... -> Recurrent -> linear -> next-token logits, until <END>;
             each decoder input is [embedding of the previous token; c], c the encoder's final top-layer
             h (Cho et al. 2014), so the summary reaches every step directly, not only through the recurrence

Sources are left-padded, so the encoder's final state is always read right after the last real token.
For one-to-many generation the "encoder" is a single vector: a learnt embedding of the class, mapped
through tanh to the decoder's initial state.

Decoding: greedy takes the most likely token at each step; beam search keeps the `width` most likely
prefixes (scores are summed log-probabilities, not length-normalised). The greedy hypothesis is always
among beam search's candidates, so beam search never returns a lower log-probability than greedy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab.errors import RnnlabError
from rnnlab.nn.recurrent import State
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
from rnnlab.tasks import seq2seq_toys

KIND = "seq2seq"
IGNORE = -100
Pairs = list[tuple[list[str], list[str]]]


class Seq2SeqNet(nn.Module):
    """Encoder (a Recurrent over the source, or a class embedding when `one_to_many`) + decoder."""

    def __init__(self, config: SeqConfig, src_vocab: int, tgt_vocab: int, one_to_many: bool = False) -> None:
        super().__init__()
        self.config, self.one_to_many = config, one_to_many
        if one_to_many:
            self.condition = nn.Embedding(src_vocab, config.state_size)
        else:
            self.src_embed = nn.Embedding(src_vocab, config.embed, padding_idx=0)
            self.encoder = config.recurrent()
        self.tgt_embed = nn.Embedding(tgt_vocab, config.embed, padding_idx=0)
        self.decoder = config.recurrent(input_size=config.embed + config.hidden)
        self.head = nn.Linear(config.hidden, tgt_vocab)

    def encode(self, src: Tensor) -> State:
        """(N, S) left-padded source ids (one class id each when one_to_many) -> the decoder's first state."""
        if not self.one_to_many:
            return self.encoder(self.src_embed(src))[1]
        return self.config.vector_state(self.condition(src[:, -1]))

    def decode(self, tokens: Tensor, state: State, context: Tensor) -> tuple[Tensor, State]:
        """(N, T) target-side ids from `state`, with the (N, H) summary `context` -> (N, T, V) logits, new state."""
        x = self.tgt_embed(tokens)
        x = torch.cat([x, context[:, None].expand(-1, x.shape[1], -1)], dim=-1)
        out, state = self.decoder(x, state)
        return self.head(out), state


def top_h(state: State) -> Tensor:
    """The top layer's h (N, H) of a state (L, N, H) or (h, c)."""
    return (state[0] if isinstance(state, tuple) else state)[-1]


class Seq2Seq:
    """A trained encoder-decoder (or one-to-many generator) with its vocabularies."""

    def __init__(self, module: Seq2SeqNet, src: Vocab, tgt: Vocab, config: SeqConfig, max_len: int) -> None:
        self.module, self.src, self.tgt, self.config, self.max_len = module, src, tgt, config, max_len

    @classmethod
    def train(
        cls,
        pairs: Pairs,
        config: SeqConfig,
        one_to_many: bool = False,
        log: Callable[[int, float], None] | None = None,
    ) -> Seq2Seq:
        """Teacher forcing: the decoder reads <START> + target and predicts target + <END>."""
        config.validate()
        if not pairs or any(not s or not t for s, t in pairs):
            raise RnnlabError("need non-empty (source, target) pairs to train")
        if one_to_many and any(len(s) != 1 for s, _ in pairs):
            raise RnnlabError("one-to-many generation takes exactly one class token per example")
        src = Vocab(tok for s, _ in pairs for tok in s)
        tgt = Vocab((tok for _, t in pairs for tok in t), specials=(START, END))
        torch.manual_seed(config.seed)
        module = Seq2SeqNet(config, len(src), len(tgt), one_to_many)
        model = cls(module, src, tgt, config, max(len(t) for _, t in pairs) + 5)
        sources = [src.encode(s) for s, _ in pairs]
        inputs = [tgt.encode([START, *t]) for _, t in pairs]
        targets = [tgt.encode([*t, END]) for _, t in pairs]

        def batch_loss(generator: torch.Generator) -> Tensor:
            pick = torch.randint(len(pairs), (config.batch_size,), generator=generator).tolist()
            x, _ = pad([inputs[i] for i in pick])
            y, _ = pad([targets[i] for i in pick], IGNORE)
            state = module.encode(_left_pad([sources[i] for i in pick]))
            logits, _ = module.decode(x, state, top_h(state))
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)

        fit(module, batch_loss, config, log=log)
        return model

    def _encode(self, sources: list[list[str]]) -> tuple[State, Tensor]:
        """Sources -> (the decoder's first state, the (N, H) summary fed to every decoder step)."""
        unknown = sorted({tok for s in sources for tok in s if tok not in self.src.index})
        if unknown:
            raise RnnlabError(f"input token(s) not seen in training: {' '.join(map(repr, unknown[:10]))}")
        state = self.module.encode(_left_pad([self.src.encode(s) for s in sources]))
        return state, top_h(state)

    @torch.no_grad()
    def greedy(self, sources: list[list[str]]) -> list[tuple[list[str], float]]:
        """Most likely token at every step, for a batch of sources: (output tokens, log-probability) each."""
        self.module.eval()
        N, end = len(sources), self.tgt.index[END]
        state, context = self._encode(sources)
        token = torch.full((N, 1), self.tgt.index[START])
        outputs, scores = [[] for _ in range(N)], torch.zeros(N, dtype=torch.float64)
        done = torch.zeros(N, dtype=torch.bool)
        for _ in range(self.max_len):
            logits, state = self.module.decode(token, state, context)
            logp = logits[:, -1].double().log_softmax(-1)
            best = logp.argmax(-1)
            scores += torch.where(done, 0.0, logp.gather(1, best[:, None])[:, 0])
            for i in (~done).nonzero()[:, 0].tolist():
                if best[i] != end:
                    outputs[i].append(self.tgt.tokens[best[i]])
            done |= best == end
            if done.all():
                break
            token = best[:, None]
        return list(zip(outputs, scores.tolist(), strict=True))

    @torch.no_grad()
    def beam(self, source: list[str], width: int = 5) -> tuple[list[str], float]:
        """Beam search for one source: the finished hypothesis with the highest summed log-probability."""
        if width < 1:
            raise RnnlabError(f"--beam must be >= 1, got {width}")
        self.module.eval()
        start, end = self.tgt.index[START], self.tgt.index[END]
        state, context = self._encode([source])
        alive: list[tuple[float, list[int]]] = [(0.0, [])]
        tokens = torch.tensor([[start]])
        finished = [(score, self.tgt.encode(out)) for out, score in self.greedy([source])]
        for step in range(self.max_len):
            logits, state = self.module.decode(tokens, state, context.expand(len(alive), -1))
            logp = logits[:, -1].double().log_softmax(-1)
            total = torch.tensor([s for s, _ in alive], dtype=torch.float64)[:, None] + logp
            values, flat = total.flatten().topk(min(2 * width, total.numel()))
            keep: list[tuple[float, list[int]]] = []
            rows: list[int] = []
            for value, index in zip(values.tolist(), flat.tolist(), strict=True):
                row, token = divmod(index, logp.shape[1])
                if token == end or step == self.max_len - 1:
                    finished.append((value, alive[row][1] + ([] if token == end else [token])))
                elif len(keep) < width:
                    keep.append((value, alive[row][1] + [token]))
                    rows.append(row)
            best_finished = max(s for s, _ in finished)
            if not keep or best_finished >= keep[0][0]:  # scores only fall: no live prefix can win any more
                break
            alive = keep
            state = select_state(state, torch.tensor(rows))
            tokens = torch.tensor([[ids[-1]] for _, ids in alive])
        score, ids = max(finished, key=lambda f: f[0])
        return self.tgt.decode(ids), score

    def exact_match(self, pairs: Pairs, batch_size: int = 256) -> float:
        """Fraction of sources whose greedy output equals the target exactly."""
        hits = 0
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            outputs = self.greedy([s for s, _ in chunk])
            hits += sum(out == t for (out, _), (_, t) in zip(outputs, chunk, strict=True))
        return hits / len(pairs)

    def save(self, out: Path, task: str = "") -> Path:
        extra: dict[str, Any] = {
            "src_vocab": self.src.tokens,
            "tgt_vocab": self.tgt.tokens,
            "max_len": self.max_len,
            "one_to_many": self.module.one_to_many,
            "task": task,
        }
        return save_run(out, KIND, self.config, self.module, extra)

    @classmethod
    def load(cls, run_dir: Path) -> Seq2Seq:
        data, config = read_run(run_dir, KIND)
        src, tgt = Vocab(data["src_vocab"]), Vocab(data["tgt_vocab"], specials=(START, END))
        module = Seq2SeqNet(config, len(src), len(tgt), bool(data["one_to_many"]))
        return cls(load_weights(module, run_dir), src, tgt, config, int(data["max_len"]))  # type: ignore[arg-type]


def _left_pad(seqs: list[list[int]]) -> Tensor:
    """Pad on the left, so that the last column holds every sequence's last token."""
    tokens, _ = pad([s[::-1] for s in seqs])
    return tokens.flip(1)


def demo(task: str, n: int, seed: int = 0) -> Pairs:
    """Pairs for a built-in task: reverse, sort, translit (many-to-one + one-to-many) or multiples (one-to-many)."""
    if task not in seq2seq_toys.TASKS:
        raise RnnlabError(f"unknown task {task!r}; choose one of: {', '.join(seq2seq_toys.TASKS)}")
    return seq2seq_toys.TASKS[task](n, seed=seed)
