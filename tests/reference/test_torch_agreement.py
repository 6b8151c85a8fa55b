"""The NumPy reference against PyTorch in float64: same weights give the same logits, loss and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.lm.model import RNNLM
from rnnlab.reference import CharRNN
from rnnlab.reference.clip import clip_global_norm
from rnnlab.reference.model import CELLS
from rnnlab.reference.optim import SGD, Adam, RMSProp

N, T, V, H = 3, 7, 6, 5


def max_rel_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |a − b| / max |b|: the largest difference relative to the size of the reference values."""
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def torch_model(cell: str, seed: int) -> RNNLM:
    """An RNNLM with random float64 weights (both biases nonzero, so their sum is what is compared)."""
    torch.manual_seed(seed)
    model = RNNLM(ModelConfig(vocab_size=V, cell=cell, layers=1, hidden=H, embed=0)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return model


@pytest.mark.parametrize("cell", CELLS)
def test_reference_matches_rnnlm(cell: str):
    model = torch_model(cell, seed=1)
    ours = CharRNN(cell, V, H, reduction="mean")
    ours.load_torch({k: v.numpy() for k, v in model.state_dict().items()})
    rng = np.random.default_rng(2)
    tokens, targets = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
    state = tuple(rng.standard_normal((N, H)) for _ in ours.layer.initial_state(N))

    torch_state = tuple(torch.tensor(s[None], requires_grad=True) for s in state)
    logits, _, loss = model(
        torch.from_numpy(tokens), torch_state if cell == "lstm" else torch_state[0], torch.from_numpy(targets)
    )
    loss.backward()
    our_logits, _, our_loss = ours.forward(tokens, targets, state)
    grads = ours.backward()

    diffs = {"logits": max_rel_diff(our_logits, logits.detach().numpy()), "loss": abs(our_loss / loss.item() - 1)}
    torch_grads = {k: p.grad.numpy() for k, p in model.named_parameters()}
    names = {
        "head.weight": "W_hy",
        "head.bias": "b_y",
        "rnn.layers.0.weight_ih": "W_xh",
        "rnn.layers.0.weight_hh": "W_hh",
    }
    if cell.startswith("gru"):
        names |= {"rnn.layers.0.bias_ih": "b_xh", "rnn.layers.0.bias_hh": "b_hh"}
    else:  # one bias b_h = bias_ih + bias_hh, so both torch biases have b_h's gradient
        names |= {"rnn.layers.0.bias_ih": "b_h", "rnn.layers.0.bias_hh": "b_h"}
    assert set(names) == set(torch_grads)
    for torch_name, our_name in names.items():
        diffs[torch_name] = max_rel_diff(grads[our_name], torch_grads[torch_name])
    for i, s in enumerate(torch_state):
        diffs[f"state{i}"] = max_rel_diff(ours.dstate0[i], s.grad[0].numpy())
    assert max(diffs.values()) < 1e-10, diffs


def test_run_directory_names_are_rnnlm_state_dict_names():
    for cell in CELLS:
        expected = RNNLM(ModelConfig(vocab_size=V, cell=cell, layers=1, hidden=H, embed=0)).state_dict()
        ours = CharRNN(cell, V, H).to_torch()
        assert {k: v.shape for k, v in ours.items()} == {k: tuple(v.shape) for k, v in expected.items()}


def test_cho_gru_is_a_different_function_except_with_the_reset_gate_open():
    """Reset before W_hn (Cho) and after it (torch) agree only where r = 1."""
    rng = np.random.default_rng(3)
    torch_form, cho = CharRNN("gru", V, H, std=0.5), CharRNN("gru-cho", V, H, std=0.5)
    for name, p in torch_form.params.items():
        p[...] = cho.params[name][...] = rng.standard_normal(p.shape)
    tokens = rng.integers(0, V, (N, T))
    a, _, _ = torch_form.forward(tokens)
    b, _, _ = cho.forward(tokens)
    assert np.max(np.abs(a - b)) > 1e-2
    for m in (torch_form, cho):  # r = σ(huge) = 1 exactly, and b_hn = 0 (it sits inside r ⊙ (...) only in torch's form)
        m.params["b_xh"][:H] = 1e3
        m.params["b_hh"][2 * H :] = 0.0
    a, _, _ = torch_form.forward(tokens)
    b, _, _ = cho.forward(tokens)
    assert np.max(np.abs(a - b)) < 1e-12


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        (lambda p: RMSProp(p, lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-8)),
        (lambda p: Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01, eps=1e-8)),
    ],
    ids=["sgd-momentum", "rmsprop", "adam"],
)
def test_optimisers_match_torch_optim(ours, theirs):
    rng = np.random.default_rng(4)
    start = rng.standard_normal((4, 3))
    params = {"w": start.copy()}
    tensor = torch.tensor(start, requires_grad=True)
    opt, torch_opt = ours(params), theirs([tensor])
    for _ in range(5):
        g = rng.standard_normal((4, 3))
        opt.step({"w": g})
        tensor.grad = torch.from_numpy(g.copy())
        torch_opt.step()
    assert max_rel_diff(params["w"], tensor.detach().numpy()) < 1e-12
    assert np.max(np.abs(params["w"] - start)) > 1e-3


def test_global_norm_clipping_matches_torch_and_uses_the_l2_norm():
    rng = np.random.default_rng(5)
    grads = {"a": rng.standard_normal((3, 4)) * 3, "b": rng.standard_normal(5) * 3}
    tensors = [torch.tensor(g, requires_grad=True) for g in grads.values()]
    for t, g in zip(tensors, grads.values(), strict=True):
        t.grad = torch.from_numpy(g.copy())
    expected_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm=2.0).item()
    norm = clip_global_norm(grads, 2.0)
    assert norm == pytest.approx(expected_norm, rel=1e-14)
    assert norm > 2.0**2  # so a squared-norm comparison would have clipped at a different point
    for t, g in zip(tensors, grads.values(), strict=True):
        assert max_rel_diff(g, t.grad.numpy()) < 1e-14
    assert np.sqrt(sum(np.sum(g**2) for g in grads.values())) == pytest.approx(2.0, rel=1e-6)
