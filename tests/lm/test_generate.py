"""Choosing tokens (NumPy), stop strings, escapes, and sampling through the steppers: greedy text equals the
module's own greedy text, seeded text is reproducible, and the fast path samples what the module path samples."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.data.tokenizers import CharTokenizer
from rnnlab.errors import RnnlabError
from rnnlab.lm.generate import StopMatcher, decode_escapes, next_token, sampling_rng
from rnnlab.lm.model import RNNLM, LanguageModel
from rnnlab.lm.stepper import CellStepper, FusedStepper, ModuleStepper, make_stepper


def test_top_k_one_and_greedy_pick_the_argmax():
    logits = np.array([0.1, 2.0, 1.9, -1.0], dtype=np.float32)
    assert next_token(logits, greedy=True) == 1
    assert next_token(logits, temperature=0) == 1
    rng = sampling_rng(0)
    assert {next_token(logits, top_k=1, rng=rng) for _ in range(50)} == {1}


def test_top_k_keeps_the_k_largest():
    logits = np.array([0.0, 3.0, 1.0, 2.0, -1.0], dtype=np.float32)
    rng = sampling_rng(0)
    assert {next_token(logits, top_k=2, temperature=5.0, rng=rng) for _ in range(300)} == {1, 3}


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = sampling_rng(0)
    picks = {next_token(logits, top_p=0.75, rng=rng) for _ in range(300)}
    assert picks == {0, 1}  # 0.5 < 0.75, 0.5 + 0.3 >= 0.75
    assert {next_token(logits, top_p=0.5, rng=rng) for _ in range(100)} == {0}  # 0.5 reaches 0.5 alone


def test_draws_follow_the_softmax():
    """Inverting the cumulative distribution draws each token with its softmax probability."""
    logits = np.array([1.0, 0.0, -1.0, 2.0, -30.0], dtype=np.float32)
    rng = sampling_rng(1)
    counts = np.bincount([next_token(logits, temperature=0.7, rng=rng) for _ in range(20_000)], minlength=5)
    expected = np.exp(logits / 0.7) / np.exp(logits / 0.7).sum()
    np.testing.assert_allclose(counts / counts.sum(), expected, atol=0.012)
    assert counts[4] == 0


def test_temperature_sharpens_and_a_tiny_one_is_greedy():
    logits = np.array([1.0, 0.0], dtype=np.float32)
    rng = sampling_rng(0)
    cold = sum(next_token(logits, temperature=0.1, rng=rng) == 0 for _ in range(200))
    hot = sum(next_token(logits, temperature=5.0, rng=rng) == 0 for _ in range(200))
    assert cold > 195 and hot < 150
    assert {next_token(logits, temperature=1e-300, rng=rng) for _ in range(20)} == {0}  # no overflow to NaN


def test_stop_matcher_holds_back_partial_matches():
    m = StopMatcher(["END"])
    out = "".join(m.feed(c) for c in "abcEN")
    assert out == "abc" and not m.stopped
    assert m.feed("D") == "" and m.stopped
    m = StopMatcher(["END"])
    assert "".join(m.feed(c) for c in "xENy") + m.flush() == "xENy"


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        (r"\n\n", "\n\n"),
        (r"a\tb", "a\tb"),
        (r"\\n", "\\n"),  # an escaped backslash, then a plain n
        (r"\x\d", r"\x\d"),  # other escapes stay as typed
        ("end\\", "end\\"),  # a trailing lone backslash too
        ("\n", "\n"),  # a real newline is already what it means
    ],
)
def test_decode_escapes(typed: str, meant: str):
    assert decode_escapes(typed) == meant


CHARS = string.ascii_letters + string.digits + " .,;:\n"


def random_lm(spread: float = 0.4, **options: object) -> LanguageModel:
    """A character model with random weights, spread wider than PyTorch's init so that greedy text varies."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer(CHARS)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, **{"hidden": 32, "embed": 12, "layers": 2, **options})
    module = RNNLM(config).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(spread * torch.randn_like(p))
    return LanguageModel(module, tokenizer)


@torch.no_grad()
def module_sample(lm: LanguageModel, prime: str, length: int, **options: object) -> str:
    """The old path: the module's forward one token at a time, the same token choice."""
    rng = sampling_rng(options.pop("seed", 0))
    logits, state, _ = lm.module(torch.from_numpy(lm.tokenizer.encode(prime))[None])
    out = []
    for _ in range(length):
        out.append(next_token(logits[0, -1].numpy(), rng=rng, **options))
        logits, state, _ = lm.module(torch.tensor([[out[-1]]]), state)
    return lm.tokenizer.decode(out)


MODELS = {
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    "rnn-tanh": {"cell": "rnn-tanh"},
    "lstm --learn-init": {"cell": "lstm", "learn_init": True},
    "lstm --variational --dropout 0.3": {"cell": "lstm", "variational": True, "dropout": 0.3},  # layered
    "irnn": {"cell": "irnn", "spread": 0.1},  # layered ReLU Elman cells
    "gru --embed 0": {"cell": "gru", "embed": 0},
    "gru-cho": {"cell": "gru-cho"},  # the module's one-step forward
    "lstm --layer-norm": {"cell": "lstm", "layer_norm": True},  # the module's one-step forward
    "mlstm": {"cell": "mlstm"},  # the block's own NumPy step
    "mlstm-local --window 7": {"cell": "mlstm-local", "window": 7},  # the same NumPy step, with a window
}
FAST = {"lstm", "gru", "rnn-tanh", "lstm --learn-init", "lstm --variational --dropout 0.3", "irnn",
        "gru --embed 0"}  # fmt: skip


@pytest.mark.parametrize("name", list(MODELS))
def test_greedy_text_equals_the_modules_greedy_text(name: str):
    lm = random_lm(**MODELS[name])
    expected_stepper = FusedStepper if name in FAST else CellStepper if name.startswith("mlstm") else ModuleStepper
    assert isinstance(make_stepper(lm.module), expected_stepper)
    expected = module_sample(lm, "The cat", 120, greedy=True)
    assert len(set(expected)) > 3  # not one character repeated: a real test of the state carried along
    assert lm.generate("The cat", 120, greedy=True) == expected


@pytest.mark.parametrize("name", ["lstm", "gru-cho"])
def test_seeded_samples_equal_the_module_path_with_the_same_draws(name: str):
    lm = random_lm(**MODELS[name])
    options = {"temperature": 0.9, "top_k": 40, "top_p": 0.95}
    assert lm.generate("The", 150, seed=11, **options) == module_sample(lm, "The", 150, seed=11, **options)


def test_a_float64_model_keeps_the_module_path():
    """The NumPy stepper is float32 on the CPU; anything else (a CUDA model too) steps through the module."""
    lm = random_lm(cell="lstm")
    lm.module.double()
    assert isinstance(make_stepper(lm.module), ModuleStepper)
    assert lm.generate("The cat", 40, greedy=True) == module_sample(lm, "The cat", 40, greedy=True)


def test_no_prime_starts_after_a_newline_or_from_a_seeded_token():
    lm = random_lm(cell="lstm")
    assert lm.generate("", 30, greedy=True) == lm.generate("\n", 30, greedy=True)
    no_newline = LanguageModel(lm.module, CharTokenizer(CHARS.replace("\n", "!")))
    assert no_newline.generate("", 30, seed=4) == no_newline.generate("", 30, seed=4)


def test_sampling_is_reproducible_with_a_seed(trained_run):
    lm = LanguageModel.load(trained_run)
    a = lm.generate("def ", 80, seed=3, temperature=0.8)
    b = lm.generate("def ", 80, seed=3, temperature=0.8)
    c = lm.generate("def ", 80, seed=4, temperature=0.8)
    assert a == b and a != c
    assert len(a) == 80
    assert lm.generate("def ", 40, seed=2**63 - 1) == lm.generate("def ", 40, seed=2**63 - 1)


def test_stop_string_ends_generation(trained_run):
    lm = LanguageModel.load(trained_run)
    full = lm.generate("def ", 100, greedy=True)
    stop = full[20:23]
    cut = lm.generate("def ", 100, greedy=True, stop=["never there", stop])
    assert cut == full[: full.index(stop)]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"top_p": 0}, "top-p"),
        ({"top_p": float("nan")}, "top-p"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"length": -1}, "length"),
        ({"length": 2**63}, "length"),
        ({"top_k": -1}, "top-k"),
        ({"seed": 2**63}, "seed"),
        ({"seed": -1}, "seed"),
        ({"prime": "€"}, "not in the model's vocabulary"),
    ],
)
def test_bad_sampling_arguments_raise_at_the_call(options: dict, match: str):
    """`stream` checks before it returns, so a caller can refuse before printing or streaming anything."""
    lm = random_lm(cell="lstm")
    with pytest.raises(RnnlabError, match=match):
        lm.stream(**options)
