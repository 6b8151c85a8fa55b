"""Every cell against its published equations (NumPy float64), its own step function, autograd,
torch's modules and the NumPy reference; every stack path against the fused one; every cell learns."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.models.language_model import RNNLM
from rnnlab.nn.cells import CELL_NAMES, make_cell
from rnnlab.nn.recurrent import LockedDropout, Recurrent
from rnnlab.reference import gru as reference_gru

D, H, N, T = 5, 5, 3, 7  # D = H so that MUT1/MUT2 (un-weighted input) are defined


def sig(x):
    return 1 / (1 + np.exp(-x))


def numpy_step(name: str, p: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, c: np.ndarray | None):
    """One step of each cell's published equations, written independently of rnnlab.nn.cells."""
    if name in ("rnn-tanh", "rnn-relu", "irnn"):
        a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        h = np.tanh(a) if name == "rnn-tanh" else np.maximum(a, 0)
        return h, None
    if name == "lstm":
        a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        i, f, g, o = np.split(a, 4, axis=1)
        if "peephole" in p:
            i, f = i + p["peephole"][0] * c, f + p["peephole"][1] * c
        c = sig(f) * c + sig(i) * np.tanh(g)
        if "peephole" in p:
            o = o + p["peephole"][2] * c
        return sig(o) * np.tanh(c), c
    if name in ("gru", "gru-cho"):
        Wr, Wz, Wn = np.split(p["weight_ih"], 3)
        Ur, Uz, Un = np.split(p["weight_hh"], 3)
        bir, biz, bin_ = np.split(p["bias_ih"], 3)
        bhr, bhz, bhn = np.split(p["bias_hh"], 3)
        r = sig(x @ Wr.T + bir + h @ Ur.T + bhr)
        z = sig(x @ Wz.T + biz + h @ Uz.T + bhz)
        if name == "gru":
            n = np.tanh(x @ Wn.T + bin_ + r * (h @ Un.T + bhn))
        else:
            n = np.tanh(x @ Wn.T + bin_ + (r * h) @ Un.T + bhn)
        return (1 - z) * n + z * h, None
    if name.startswith("mut"):
        bz, br, bh = np.split(p["bias"], 3)
        if name == "mut1":
            Wxz, Wxr = np.split(p["weight_ih"], 2)
            Whr, Whh = np.split(p["weight_hh"], 2)
            z = sig(x @ Wxz.T + bz)
            r = sig(x @ Wxr.T + h @ Whr.T + br)
            cand = np.tanh((r * h) @ Whh.T + np.tanh(x) + bh)
        elif name == "mut2":
            Wxz, Wxh = np.split(p["weight_ih"], 2)
            Whz, Whr, Whh = np.split(p["weight_hh"], 3)
            z = sig(x @ Wxz.T + h @ Whz.T + bz)
            r = sig(x + h @ Whr.T + br)
            cand = np.tanh((r * h) @ Whh.T + x @ Wxh.T + bh)
        else:
            Wxz, Wxr, Wxh = np.split(p["weight_ih"], 3)
            Whz, Whr, Whh = np.split(p["weight_hh"], 3)
            z = sig(x @ Wxz.T + np.tanh(h) @ Whz.T + bz)
            r = sig(x @ Wxr.T + h @ Whr.T + br)
            cand = np.tanh((r * h) @ Whh.T + x @ Wxh.T + bh)
        return cand * z + h * (1 - z), None
    if name == "mrnn":
        F_ = p["weight_fh"].shape[0]
        W_fx, W_hx = p["weight_ih"][:F_], p["weight_ih"][F_:]
        b_f, b = p["bias_ih"][:F_], p["bias_ih"][F_:]
        f = (x @ W_fx.T + b_f) * (h @ p["weight_fh"].T)
        return np.tanh(f @ p["weight_hf"].T + x @ W_hx.T + b), None
    raise AssertionError(name)


def random_cell(name: str, peephole: bool = False):
    torch.manual_seed(CELL_NAMES.index(name))  # hash(name) changes between processes
    cell = make_cell(name, D, H, peephole=peephole, factors=4).double()
    with torch.no_grad():
        for param in cell.parameters():
            param.normal_(0, 0.5)  # away from the special initialisations, so every term matters
    return cell


SCAN_CELLS = ("mingru", "minlstm", "ssm")  # parallel-scan cells: their equations are checked in test_scan.py
VARIANTS = [(name, False) for name in CELL_NAMES if name not in SCAN_CELLS] + [("lstm", True)]


@pytest.mark.parametrize(("name", "peephole"), VARIANTS)
def test_cell_matches_its_published_equations(name, peephole):
    cell = random_cell(name, peephole)
    x = torch.randn(N, T, D, dtype=torch.float64)
    out, _state = cell(x)
    p = {k: v.detach().numpy() for k, v in cell.named_parameters()}
    h, c = np.zeros((N, H)), np.zeros((N, H))
    for t in range(T):
        h, c = numpy_step(name, p, x[:, t].numpy(), h, c)
        np.testing.assert_allclose(out[:, t].detach().numpy(), h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "peephole"), VARIANTS)
def test_sequence_forward_equals_step_by_step(name, peephole):
    cell = random_cell(name, peephole)
    x = torch.randn(N, T, D, dtype=torch.float64)
    out, final = cell(x)
    state = None
    for t in range(T):
        h, state = cell.forward_step(x[:, t], state)
        torch.testing.assert_close(h, out[:, t], rtol=1e-14, atol=1e-14)
    for a, b in zip(
        final if isinstance(final, tuple) else (final,), state if isinstance(state, tuple) else (state,), strict=False
    ):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(("name", "peephole"), [("lstm", False), ("gru", False), ("lstm", True)])
def test_fused_sequence_op_equals_the_step_loop_in_value_and_gradient(name, peephole):
    """LSTM and GRU cells run a sequence with PyTorch's fused op, the peephole LSTM with its hand-written BPTT
    (nn/peephole_lstm.py); `fused_op = False` gives the step loop."""
    from rnnlab.train.hessian_free import plain_copy

    cell = random_cell(name, peephole)
    x = torch.randn(N, T, D, dtype=torch.float64, requires_grad=True)
    start = cell.initial_state(N, x.device, x.dtype)
    start = tuple(torch.randn_like(s) for s in start) if isinstance(start, tuple) else torch.randn_like(start)
    runs = []
    for fused in (True, False):
        cell.fused_op = fused
        cell.zero_grad()
        x.grad = None
        out, final = cell(x, start)
        finals = final if isinstance(final, tuple) else (final,)
        (out.sum() + sum((f**2).sum() for f in finals)).backward()
        runs.append([out, *finals, x.grad, *(p.grad for p in cell.parameters())])
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    cell.fused_op = True
    twin, _ = plain_copy(Recurrent(name, D, H, 2, layer_norm=True, peephole=peephole))
    assert all(not c.fused_op for c in twin.layers)


@pytest.mark.parametrize(("name", "peephole"), VARIANTS)
def test_gradcheck(name, peephole):
    cell = random_cell(name, peephole)
    x = torch.randn(2, 4, D, dtype=torch.float64, requires_grad=True)
    params = list(cell.parameters())

    def run(x, *weights):
        out, _ = torch.func.functional_call(
            cell, dict(zip([n for n, _ in cell.named_parameters()], weights, strict=False)), (x,)
        )
        return out

    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(("name", "module"), [("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU),
                                              ("rnn-tanh", torch.nn.RNN), ("rnn-relu", torch.nn.RNN)])  # fmt: skip
def test_matches_torch_modules_with_the_same_weights(name, module):
    cell = random_cell(name)
    kwargs = {"nonlinearity": name[4:]} if name.startswith("rnn-") else {}
    ref = module(D, H, batch_first=True, **kwargs).double()
    ref.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(N, T, D, dtype=torch.float64)
    torch.testing.assert_close(cell(x)[0], ref(x)[0], rtol=1e-12, atol=1e-12)


def test_gru_cho_matches_the_numpy_reference():
    cell = random_cell("gru-cho")
    ref = reference_gru.GRU(D, H, form="cho")
    ref.params.update({"W_xh": cell.weight_ih, "W_hh": cell.weight_hh, "b_xh": cell.bias_ih, "b_hh": cell.bias_hh})
    ref.params = {k: v.detach().numpy().copy() for k, v in ref.params.items()}
    x = torch.randn(N, T, D, dtype=torch.float64)
    expected, _ = ref.forward(x.numpy())
    np.testing.assert_allclose(cell(x)[0].detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_irnn_starts_as_identity_recurrence():
    cell = make_cell("irnn", D, H)
    assert torch.equal(cell.weight_hh, torch.eye(H))
    assert not cell.bias_hh.any() and not cell.bias_ih.any()


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn-tanh"])
def test_layered_path_equals_fused_path(name):
    torch.manual_seed(0)
    fused = Recurrent(name, 4, 6, num_layers=3).double()
    layered = Recurrent(name, 4, 6, num_layers=3, fused=False).double()
    assert fused.fused and not layered.fused
    layered.load_state_dict(
        {
            f"layers.{k.rsplit('_l', 1)[1]}.{k.split('.')[1].rsplit('_l', 1)[0]}": v
            for k, v in fused.state_dict().items()
        }
    )
    x = torch.randn(2, 9, 4, dtype=torch.float64)
    (a, sa), (b, sb) = fused(x), layered(x)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for u, v in zip(sa if isinstance(sa, tuple) else (sa,), sb if isinstance(sb, tuple) else (sb,), strict=False):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)


def test_locked_dropout_shares_one_mask_over_time():
    drop = LockedDropout(0.5).train()
    torch.manual_seed(0)
    y = drop(torch.ones(4, 10, 8))
    assert torch.equal(y, y[:, :1].expand_as(y))
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(drop.eval()(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))


def test_highway_and_residual_definitions():
    torch.manual_seed(0)
    stack = Recurrent("gru", 6, 6, num_layers=1, highway=True).double()
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    inner, _ = stack.layers[0](x)
    g = torch.sigmoid(stack.gates["0"](x))
    torch.testing.assert_close(stack(x)[0], g * inner + (1 - g) * x)
    res = Recurrent("gru", 6, 6, num_layers=1, residual=True).double()
    torch.testing.assert_close(res(x)[0], res.layers[0](x)[0] + x)


def test_learned_initial_state_gets_gradient_and_is_used():
    torch.manual_seed(0)
    stack = Recurrent("lstm", 3, 4, num_layers=2, learn_init=True)
    with torch.no_grad():
        stack.initial.normal_()
    x = torch.randn(2, 5, 3)
    out, _ = stack(x)
    out.sum().backward()
    assert stack.initial.grad is not None and stack.initial.grad.abs().sum() > 0
    zero_state = tuple(torch.zeros(2, 2, 4) for _ in range(2))
    assert not torch.allclose(out, stack(x, zero_state)[0])


def unigram_entropy_nats(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(c / total * math.log(c / total) for c in counts.values())


@pytest.mark.parametrize(("name", "peephole"), [(name, False) for name in CELL_NAMES] + [("lstm", True)])
def test_every_cell_learns_below_unigram_entropy(name, peephole):
    """A few seconds of training on structured text: the loss must fall well below the unigram entropy."""
    torch.manual_seed(0)
    text = "the cat sat on the mat. the dog sat on the log. " * 40
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(ch) for ch in text])
    cfg = ModelConfig(vocab_size=len(vocab), cell=name, layers=1, hidden=32, embed=32, peephole=peephole)
    model = RNNLM(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    usable = (len(ids) - 1) // 4 * 4
    x, y = ids[:usable].view(4, -1), ids[1 : usable + 1].view(4, -1)
    for _ in range(6):
        for start in range(0, x.shape[1], 40):
            _, _, loss = model(x[:, start : start + 40], targets=y[:, start : start + 40])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    assert loss.item() < 0.5 * unigram_entropy_nats(text), (name, loss.item())


@pytest.mark.parametrize("extra", [{"variational": True, "dropout": 0.2}, {"residual": True}, {"highway": True},
                                   {"layer_norm": True}, {"learn_init": True}, {"peephole": True}])  # fmt: skip
def test_stack_options_build_and_run_in_the_model(extra):
    cfg = ModelConfig(vocab_size=9, cell="lstm", layers=2, hidden=8, embed=8, **extra)
    model = RNNLM(cfg)
    logits, state, loss = model(torch.randint(9, (2, 6)), targets=torch.randint(9, (2, 6)))
    loss.backward()
    assert logits.shape == (2, 6, 9) and state[0].shape == (2, 2, 8)
