"""Recording is exact, and the correlation ranking finds planted units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rnnlab.analysis.cells import Recording, pearson, rank_all, rank_units, record
from rnnlab.analysis.features import compute_features, regex_feature
from rnnlab.config import ModelConfig
from rnnlab.data.tokenizers import CharTokenizer
from rnnlab.lm.model import RNNLM, LanguageModel


def test_recording_matches_a_full_sequence_forward(probe_run: Path) -> None:
    lm = LanguageModel.load(probe_run)
    text = "def key_1(node):\n    return [node]\n"
    rec = record(lm, text)
    assert rec.text == text and list(rec.activations) == ["h0", "c0"]
    tokens = torch.as_tensor(lm.tokenizer.encode(text)).unsqueeze(0)
    with torch.no_grad():
        x = lm.module.embed(tokens)
        out, (_, c) = lm.module.rnn(x)
    np.testing.assert_allclose(rec.activations["h0"], out[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(rec.activations["c0"][-1], c[0, 0].numpy(), atol=1e-5)


def test_ranking_finds_a_unit_built_to_detect_digits() -> None:
    """A hand-built rnn-tanh whose unit 2 is tanh(+6) on digits and tanh(-6) elsewhere (no recurrence)."""
    text = "ab1 c22 (d) 3e 45f g6\n" * 5
    tokenizer = CharTokenizer(text)
    torch.manual_seed(0)
    module = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size, cell="rnn-tanh", layers=1, hidden=6, embed=0))
    with torch.no_grad():
        cell = module.rnn.layers[0]
        cell.weight_hh[2].zero_()
        cell.bias_ih[2] = cell.bias_hh[2] = 0.0
        cell.weight_ih[2] = torch.tensor([6.0 if ch.isdigit() else -6.0 for ch in tokenizer.chars])
    rec = record(LanguageModel(module, tokenizer), text)
    best = rank_units(rec, regex_feature(r"\d")(text), top=3)
    assert (best[0].layer, best[0].unit) == ("h0", 2)
    assert best[0].r > 0.999 and abs(best[1].r) < 0.9


def test_ranking_finds_a_planted_position_counter(probe_run: Path, text_file: Path) -> None:
    rec = record(LanguageModel.load(probe_run), text_file.read_text(), max_chars=600)
    features = compute_features(rec.text)
    rec.activations["c0"][:, 7] = -0.1 * features["position_in_line"]  # anti-correlated: |r| ranks it
    ranking = rank_all(rec, features, top=2)
    assert (ranking["position_in_line"][0].layer, ranking["position_in_line"][0].unit) == ("c0", 7)
    assert np.isclose(ranking["position_in_line"][0].r, -1.0)
    assert ranking["brace_depth"] == []  # no braces in this text: constant feature, nothing ranked


def test_pearson_is_zero_for_constant_columns() -> None:
    X = np.column_stack([np.ones(5), np.arange(5.0)])
    np.testing.assert_allclose(pearson(X, np.arange(5.0) * 2), [0.0, 1.0])


def test_matrix_lists_units_in_layer_order() -> None:
    rec = Recording("ab", {"h0": np.zeros((2, 2)), "c0": np.ones((2, 1))})
    X, names = rec.matrix()
    assert X.shape == (2, 3) and names == [("h0", 0), ("h0", 1), ("c0", 0)]
