"""Ensembles: several models' next-token probabilities averaged, token by token (Mikolov et al. 2011, "averaged
with other models").

p(x_i | x_<i) = (1 / M) Σ_m p_m(x_i | x_<i) is a proper distribution whenever each p_m is one, and scoring it
needs only each model's probability of the token that came, so a member is anything that gives −ln p_m of
tokens[1:]: a network run (static, dynamic or mixed, as `rnnlab eval` scores it) or an n-gram run
(`rnnlab ngram`, whose public API is loaded only when a member is one). All members must share one tokenizer,
so that they predict the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.data.tokenizers import Tokenizer
from rnnlab.errors import RnnlabError
from rnnlab.lm import words
from rnnlab.lm.dynamic import DynamicConfig
from rnnlab.lm.model import LanguageModel, _first_token_chars, check_streams, text_nats
from rnnlab.lm.ngram import NgramConfig
from rnnlab.metrics import Score
from rnnlab.rundir import read_run


@dataclass
class Member:
    """One model of an ensemble: its run directory, tokenizer, and −ln p of tokens[1:] given the tokens before."""

    run_dir: Path
    tokenizer: Tokenizer
    nats: Callable[[np.ndarray], np.ndarray]
    network: bool


def load_member(
    run_dir: Path,
    device: str = "cpu",
    dynamic: DynamicConfig | None = None,
    mix: NgramConfig | None = None,
    streams: int = 1,
) -> Member:
    """A network run (scored as `LanguageModel.score` scores it: `dynamic`, `mix`, `streams`) or an n-gram run."""
    if read_run(run_dir)["kind"] == "ngram":
        from rnnlab.baselines.ngram import NgramRun

        run = NgramRun.load(run_dir)
        return Member(run_dir, run.tokenizer, run.model.token_nats, network=False)
    lm = LanguageModel.load(run_dir, device=device)
    check_streams(streams, dynamic, mix)
    memory = lm.training_tokens() if mix is not None else None  # a run without its training text fails here

    word_tokens = words.word_mask(lm.tokenizer) if mix is not None else None

    def nats(ids: np.ndarray) -> np.ndarray:
        return text_nats(lm.module, ids, dynamic, mix, memory, streams, lm.device, None, word_tokens)

    return Member(run_dir, lm.tokenizer, nats, network=True)


def load_ensemble(
    run_dirs: list[Path],
    device: str = "cpu",
    dynamic: DynamicConfig | None = None,
    mix: NgramConfig | None = None,
    streams: int = 1,
) -> list[Member]:
    """The members of an ensemble, checked: one tokenizer for all, and a network among them if `dynamic` or `mix`
    (which adapt networks) are asked for."""
    members = [load_member(run_dir, device, dynamic, mix, streams) for run_dir in run_dirs]
    check_tokenizers(members)
    if (dynamic is not None or mix is not None) and not any(member.network for member in members):
        raise RnnlabError("--dynamic and --mix adapt a network's predictions, and none of these runs is a network")
    return members


def check_tokenizers(members: list[Member]) -> None:
    """All members must tokenize alike (the same ids for the same text); else one RnnlabError naming the pair."""
    first = members[0]
    for other in members[1:]:
        if other.tokenizer.to_dict() != first.tokenizer.to_dict():
            raise RnnlabError(
                f"{other.run_dir} and {first.run_dir} tokenize differently ({other.tokenizer.kind}, "
                f"{other.tokenizer.vocab_size} tokens vs {first.tokenizer.kind}, {first.tokenizer.vocab_size}): "
                "an ensemble averages the probabilities of the same tokens, so its runs must share a tokenizer"
            )


def average_nats(per_model: list[np.ndarray]) -> np.ndarray:
    """−ln of the mean probability, per token, from each model's −ln p (log-sum-exp, so no probability underflows)."""
    stacked = -np.stack(per_model)
    top = stacked.max(axis=0)
    with np.errstate(invalid="ignore"):  # every member certain the token is impossible: −inf − (−inf)
        mean = np.log(np.exp(stacked - top).mean(axis=0)) + top
    return -np.where(np.isfinite(top), mean, top)


def score_files(members: list[Member], paths: list[Path]) -> Score:
    """One score of the ensemble over several files, each read from a fresh state, as `rnnlab eval` scores them."""
    check_tokenizers(members)
    tokenizer = members[0].tokenizer
    total, tokens, chars = 0.0, 0, 0
    for path in paths:
        ids, text = _encode(tokenizer, path)
        nats = average_nats([member.nats(ids) for member in members])
        if not np.isfinite(nats).all():
            raise RnnlabError(f"scoring {path} gave non-finite log-probabilities: a member's weights are bad")
        total, tokens = total + float(nats.sum()), tokens + len(nats)
        chars += max(len(text) - _first_token_chars(tokenizer, text), 0)
    return Score.from_totals(total, tokens, chars)


def _encode(tokenizer: Tokenizer, path: Path) -> tuple[np.ndarray, str]:
    """A file's ids and its text (bytes for byte models, decoded afterwards only to count characters)."""
    from rnnlab.data.corpus import read_text

    if tokenizer.kind == "byte":
        data = path.read_bytes()
        ids, text = tokenizer.encode_bytes(data), data.decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    else:
        text = read_text(path)
        try:
            ids = tokenizer.encode(text)
        except RnnlabError as exc:
            raise RnnlabError(f"{path}: {exc}") from None
    if len(ids) < 2:
        raise RnnlabError(f"{path} has no tokens to score (it needs two or more: the first is context only)")
    return ids, text
