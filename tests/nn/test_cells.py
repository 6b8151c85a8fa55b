"""The cell suite, parametrised over the registry (nn/registry.py), so that a newly registered cell is tested with
no edit here: every cell's sequence forward against its own steps, its fused op against its step loop in value and
gradient, gradcheck, its registered state layout, its NumPy `equations` against its torch step, PyTorch's module
where it has one, and learning. Besides: the cells with published equations against them (NumPy float64), the
NumPy reference, and every stack path against the fused one."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.lm.model import RNNLM
from rnnlab.nn import registry
from rnnlab.nn.cells import NUMPY, make_cell
from rnnlab.nn.recurrent import LockedDropout, Recurrent, state_tensors
from rnnlab.reference import gru as reference_gru

D, H, N, T = 5, 5, 3, 7  # D = H so that the cells that add their input un-weighted (MUT1/MUT2) are defined
NAMES = registry.names()
# every registered cell, and each cell that takes --peephole with it on
VARIANTS = [(name, False) for name in NAMES] + [(s.name, True) for s in registry.cells() if "peephole" in s.options]
WITH_EQUATIONS = [spec.name for spec in registry.cells() if spec.equations is not None]
WITH_TORCH_MODULE = [spec.name for spec in registry.cells() if spec.torch_module is not None]


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


PUBLISHED = ("rnn-tanh", "rnn-relu", "irnn", "lstm", "gru", "gru-cho", "mut1", "mut2", "mut3", "mrnn")  # numpy_step's
# (the scan cells' equations are checked in test_scan.py)


def random_cell(name: str, peephole: bool = False):
    torch.manual_seed(NAMES.index(name))  # hash(name) changes between processes
    cell = make_cell(name, D, H, peephole=peephole, factors=4).double()
    with torch.no_grad():
        for param in cell.parameters():
            param.normal_(0, 0.5)  # away from the special initialisations, so every term matters
    return cell


def random_state(cell) -> tuple[torch.Tensor, ...]:
    """A start state other than zeros, as a tuple of its parts."""
    return tuple(torch.randn_like(s) for s in state_tensors(cell.initial_state(N, torch.device("cpu"), torch.float64)))


def as_state(parts: tuple[torch.Tensor, ...]):
    """A tuple of a state's parts in the cell's own form: one tensor, or the tuple."""
    return parts if len(parts) > 1 else parts[0]


@pytest.mark.parametrize(("name", "peephole"), [(n, p) for n, p in VARIANTS if n in PUBLISHED])
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
    """Generation (`forward_step`, one step at a time) gives what training computes (`forward`, the fused op where
    the cell has one), from a carried state."""
    cell = random_cell(name, peephole)
    x = torch.randn(N, T, D, dtype=torch.float64)
    start = as_state(random_state(cell))
    out, final = cell(x, start)
    state = start
    for t in range(T):
        h, state = cell.forward_step(x[:, t], state)
        torch.testing.assert_close(h, out[:, t], rtol=1e-14, atol=1e-14)
    for a, b in zip(state_tensors(final), state_tensors(state), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize(("name", "peephole"), [(n, p) for n, p in VARIANTS if registry.get(n).cls.fused_op])
def test_fused_sequence_op_equals_the_step_loop_in_value_and_gradient(name, peephole):
    """Cells with a fused sequence op (PyTorch's LSTM and GRU ops, the peephole LSTM's hand-written BPTT, the scans)
    against their step loop, `fused_op = False`, which Hessian-free's twin (`plain_copy`) switches to."""
    from rnnlab.train.hessian_free import plain_copy

    cell = random_cell(name, peephole)
    x = torch.randn(N, T, D, dtype=torch.float64, requires_grad=True)
    start = as_state(random_state(cell))
    runs = []
    for fused in (True, False):
        cell.fused_op = fused
        cell.zero_grad()
        x.grad = None
        out, final = cell(x, start)
        finals = state_tensors(final)
        (out.sum() + sum((f**2).sum() for f in finals)).backward()
        runs.append([out, *finals, x.grad, *(p.grad for p in cell.parameters())])
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    cell.fused_op = True
    twin, _ = plain_copy(Recurrent(name, D, H, 2, layer_norm=True, peephole=peephole))
    assert all(not c.fused_op for c in twin.layers)


@pytest.mark.parametrize(("name", "peephole"), VARIANTS)
def test_gradcheck(name, peephole):
    """Gradients of the sequence forward with respect to the input, the start state and every weight."""
    cell = random_cell(name, peephole)
    x = torch.randn(2, 4, D, dtype=torch.float64, requires_grad=True)
    start = tuple(s[:2].requires_grad_() for s in random_state(cell))
    names = [n for n, _ in cell.named_parameters()]

    def run(x, *tensors):
        weights = dict(zip(names, tensors[len(start) :], strict=True))
        out, final = torch.func.functional_call(cell, weights, (x, as_state(tensors[: len(start)])))
        return out, *state_tensors(final)

    assert torch.autograd.gradcheck(run, (x, *start, *cell.parameters()), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_the_state_has_the_registered_layout(name):
    """The parts the registration names, each (N, H) where it says per unit, in the cell and in the stack (L, N, H),
    the learned initial state included."""
    spec, cell = registry.get(name), random_cell(name)
    _, final = cell(torch.randn(N, T, D, dtype=torch.float64))
    stack = Recurrent(name, D, H, num_layers=2, learn_init=spec.per_unit).double()
    _, stacked = stack(torch.randn(N, T, D, dtype=torch.float64))
    assert len(state_tensors(final)) == len(state_tensors(stacked)) == len(spec.state)
    if spec.per_unit:
        assert all(s.shape == (N, H) for s in state_tensors(final))
        assert all(s.shape == (2, N, H) for s in [*state_tensors(stacked), *state_tensors(stack.initial_state(N))])


@pytest.mark.parametrize("name", WITH_EQUATIONS)
def test_equations_on_numpy_arrays_equal_the_torch_step(name):
    """The arithmetic the NumPy stepper runs is the cell's own `step`'s: the same `equations`, given NumPy arrays,
    batched (N, G·H) and as the stepper calls it, one row (G·H,)."""
    cell = random_cell(name)
    x, start = torch.randn(N, D, dtype=torch.float64), as_state(random_state(cell))
    with torch.no_grad():
        h, state = cell.forward_step(x, start)
        xw = cell.project(x).numpy()
        hw = torch.nn.functional.linear(state_tensors(start)[0], cell.weight_hh, cell.bias_hh).numpy()
    arrays = [s.numpy() for s in state_tensors(start)]
    for rows in (slice(None), 0):
        ours, our_state = cell.equations(xw[rows], hw[rows], as_state(tuple(a[rows] for a in arrays)), NUMPY)
        np.testing.assert_allclose(ours, h.numpy()[rows], rtol=1e-12, atol=1e-12)
        for a, b in zip(state_tensors(state), our_state if isinstance(our_state, tuple) else (our_state,), strict=True):
            np.testing.assert_allclose(b, a.numpy()[rows], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", WITH_TORCH_MODULE)
def test_matches_torch_modules_with_the_same_weights(name):
    cell = random_cell(name)
    ref = registry.get(name).torch_module(D, H, batch_first=True).double()
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


@pytest.mark.parametrize("name", WITH_TORCH_MODULE)
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


@pytest.mark.parametrize(("name", "peephole"), VARIANTS)
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
