"""Dynamic evaluation: honest (each token scored before training on it) and helpful on repetitive text."""

import numpy as np
import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.lm.dynamic import DynamicConfig, dynamic_nats
from rnnlab.lm.model import LanguageModel, token_nats


def test_tiny_step_size_equals_static_evaluation_with_batch_one(trained_run):
    lm = LanguageModel.load(trained_run)
    tokens = lm.tokenizer.encode("def value(x):\n    return [x[i] + 1 for i in range(len(x))]\n" * 3)
    static = token_nats(lm.module, tokens, batch_size=1, seq_len=50)
    dynamic = dynamic_nats(lm.module, tokens, DynamicConfig(lr=1e-30, decay=0.0, segment=50))
    assert len(static) == len(dynamic) == len(tokens) - 1
    np.testing.assert_allclose(dynamic, static, rtol=1e-5)


def test_first_segment_is_scored_before_any_update(trained_run):
    """Changing the text after segment 1 cannot change segment 1's score: no peeking ahead."""
    lm = LanguageModel.load(trained_run)
    config = DynamicConfig(lr=1e-2, segment=10)
    a = lm.tokenizer.encode("def items(key):\n" + "x" * 40)
    b = lm.tokenizer.encode("def items(key):\n" + "y" * 40)
    scored_a, scored_b = dynamic_nats(lm.module, a, config), dynamic_nats(lm.module, b, config)
    np.testing.assert_array_equal(scored_a[:10], scored_b[:10])  # the shared first segment
    assert scored_a[10:].sum() != scored_b[10:].sum()


def test_adapting_to_a_repeated_unusual_text_lowers_bits(trained_run):
    lm = LanguageModel.load(trained_run)
    weights = {k: v.clone() for k, v in lm.module.state_dict().items()}
    text = "eat a tuna diet " * 60  # far from the training text, and repetitive: adaptation should help
    static = lm.score(text)
    adapted = lm.score(text, DynamicConfig(lr=3e-3, decay=0.0, segment=20))
    assert adapted.bits_per_char < static.bits_per_char - 0.5
    assert all(torch.equal(v, lm.module.state_dict()[k]) for k, v in weights.items())  # model unchanged


def test_bad_dynamic_settings():
    with pytest.raises(RnnlabError, match="dynamic-lr"):
        dynamic_nats(torch.nn.Linear(1, 1), np.arange(3), DynamicConfig(lr=0))
