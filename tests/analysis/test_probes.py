"""Surprisal, gradient norms and novelty against independent computations; the probe commands end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlab.analysis.gradients import grad_norms, saturation, set_spectral_radius, untrained
from rnnlab.analysis.novelty import fraction_seen, ngram_hashes, novelty
from rnnlab.analysis.surprisal import surprisal
from rnnlab.config import ModelConfig
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import RNNLM, LanguageModel, total_nats
from rnnlab.nn import registry


def test_surprisal_sums_to_the_exact_score(probe_run: Path) -> None:
    lm = LanguageModel.load(probe_run)
    text = "def node_3(items):\n    return [items]\n"
    chars = surprisal(lm, text, top_k=3)
    assert "".join(c.char for c in chars) == text and chars[0].bits is None
    nats, _ = total_nats(lm.module, lm.tokenizer.encode(text))
    assert math.isclose(sum(c.bits for c in chars[1:]) * math.log(2), nats, rel_tol=1e-6)
    probs = [p for _, p in chars[5].top]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-9


@pytest.mark.parametrize(("cell", "layers"), [("lstm", 2), ("gru", 1), ("rnn-tanh", 2)])
def test_grad_norms_match_autograd_on_a_recomputed_state(cell: str, layers: int) -> None:
    """Independent check: run the fused sequence forward to h_t, make that state a leaf, run the rest of the
    sequence from it, and take torch.autograd.grad of the last loss with respect to it."""
    torch.manual_seed(1)
    model = untrained(ModelConfig(vocab_size=11, cell=cell, layers=layers, hidden=8, embed=5), cell)
    tokens = torch.randint(11, (21,))
    norms = grad_norms(model, tokens)
    x = model.embed(tokens[:-1].unsqueeze(0))
    T = x.shape[1]
    for t in (0, 7, T - 2, T - 1):
        with torch.no_grad():
            _, state = model.rnn(x[:, : t + 1])
        if cell == "lstm":
            h_t = state[0].clone().requires_grad_(True)
            start = (h_t, state[1])
        else:
            h_t = state.clone().requires_grad_(True)
            start = h_t
        if t < T - 1:
            out, _ = model.rnn(x[:, t + 1 :], start)
            top = out[:, -1]
        else:
            top = h_t[-1]
        loss = F.cross_entropy(model.head(top), tokens[-1:])
        (grad,) = torch.autograd.grad(loss, h_t)
        assert math.isclose(norms[T - 1 - t], float(grad.norm()), rel_tol=1e-4), (t, norms[T - 1 - t])


def test_spectral_radius_controls_vanishing_and_exploding() -> None:
    config = ModelConfig(vocab_size=11, cell="rnn-tanh", layers=1, hidden=32, embed=5)
    tokens = torch.randint(11, (61,), generator=torch.Generator().manual_seed(0))
    tails = {}
    for rho in (0.5, 3.0):
        model = untrained(config, "rnn-tanh")
        set_spectral_radius(model, rho)
        W = model.rnn.layers[0].weight_hh.detach().double()
        assert math.isclose(float(torch.linalg.eigvals(W).abs().max()), rho, rel_tol=1e-6)
        norms = grad_norms(model, tokens)
        tails[rho] = norms[50] / norms[0]
    assert tails[0.5] < 1e-6 and tails[3.0] > 1.0


def test_saturation_counts_hand_set_gates() -> None:
    model = untrained(ModelConfig(vocab_size=5, cell="rnn-tanh", layers=1, hidden=4, embed=3), "rnn-tanh")
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.zero_()
        model.rnn.layers[0].bias_ih[:] = torch.tensor([5.0, -5.0, 0.1, 0.0])  # two of four units saturate
    assert saturation(model, torch.arange(5)) == {"tanh_saturated": 0.5}


@pytest.mark.parametrize("name", [spec.name for spec in registry.cells() if spec.torch_mode is not None])
def test_saturation_is_the_same_in_either_parameter_layout(name: str) -> None:
    """The cell's `equations` recompute the gates from each layer's weights, PyTorch's module's or the cells' own;
    a stack with a per-layer extra is more than its equations, and has no figure."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=7, cell=name, layers=2, hidden=6, embed=4)
    fused, layered = RNNLM(config), RNNLM(ModelConfig(**{**vars(config), "variational": True}))
    layered.load_state_dict(fused.state_dict(), strict=False)  # embedding and head
    with torch.no_grad():
        for ours, theirs in zip(fused.rnn.layer_weights(), layered.rnn.layer_weights(), strict=True):
            for a, b in zip(ours, theirs, strict=True):
                b.copy_(a * 4)  # wide weights, so that some units saturate
                a.mul_(4)
    tokens = torch.randint(7, (30,), generator=torch.Generator().manual_seed(1))
    figures = saturation(fused, tokens)
    assert figures.keys() == saturation(layered, tokens).keys() and all(0 < v < 1 for v in figures.values())
    assert figures == pytest.approx(saturation(layered, tokens), abs=1e-6)
    assert saturation(RNNLM(ModelConfig(**{**vars(config), "layer_norm": True})), tokens) == {}


def test_the_gradient_probe_refuses_a_cell_without_an_h_state() -> None:
    model = RNNLM(ModelConfig(vocab_size=7, cell="ssm", layers=1, hidden=8, embed=8))
    with pytest.raises(RnnlabError, match="--cell ssm keeps no h state"):
        grad_norms(model, torch.arange(5))


def test_ngram_lookup() -> None:
    corpus = np.sort(ngram_hashes(np.array([1, 2, 3, 4, 5]), 3))
    assert fraction_seen(corpus, ngram_hashes(np.array([2, 3, 4, 9]), 3)) == 0.5
    assert len(ngram_hashes(np.array([1, 2]), 3)) == 0


def test_novelty_of_copied_training_text_is_one(
    probe_run: Path, text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = text_file.read_text()
    monkeypatch.setattr(LanguageModel, "generate", lambda self, prime, length, **kw: train[100 : 100 + length])
    result = novelty(probe_run, samples=2, length=300, ns=(5, 20))
    assert result.generated == [1.0, 1.0]
    assert result.validation is not None and all(0 <= v <= 1 for v in result.validation)


def test_probe_commands_end_to_end(
    probe_run: Path, text_file: Path, tmp_path: Path, cli: pytest.CaptureFixture
) -> None:
    report, numbers = tmp_path / "cells.html", tmp_path / "cells.json"
    code, out, err = cli(
        "probe", "cells", probe_run, text_file, "--report", report, "--json", numbers,
        "--feature", "returns=return", "--max-chars", "500",
    )  # fmt: skip
    assert code == 0, err
    page = report.read_text()
    assert "position_in_line" in page and 'id="data"' in page and "http" not in page.replace("http-equiv", "")
    data = json.loads(numbers.read_text())
    assert data["chars"] == 500 and abs(data["features"]["returns"][0]["r"]) > 0
    code, _, err = cli(
        "probe", "surprisal", probe_run, text_file, "--report", tmp_path / "s.html", "--max-chars", "200"
    )
    assert code == 0, err
    assert "bits" in (tmp_path / "s.html").read_text()
    code, out, err = cli("probe", "gradients", probe_run, "--plot", tmp_path / "g.png", "--untrained", "--steps", "30")
    assert code == 0, err
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG" and "gru (untrained)" in out and "rho=2" in out
    code, out, err = cli("probe", "novelty", probe_run, "--samples", "1", "--length", "50", "--n", "3,5")
    assert code == 0, err
    assert out.splitlines()[1].split()[0] == "3"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["cells", "{run}", "missing.txt"], "is not a file"),
        (["cells", "{run}", "{text}", "--feature", "x=("], "invalid regular expression"),
        (["cells", "{text}", "{text}"], "not a directory"),
        (["gradients", "{run}", "--untrained", "--cell", "lstm,tcn"], "--cell takes"),
        (["gradients", "{run}", "--steps", "100000000"], "training tokens"),
        (["novelty", "{run}", "--n", "a,b"], "--n takes"),
    ],
)
def test_probe_errors_are_one_line(probe_run: Path, text_file: Path, cli, args: list[str], match: str) -> None:
    code, _, err = cli("probe", *[a.format(run=probe_run, text=text_file) for a in args])
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and match in err, err
