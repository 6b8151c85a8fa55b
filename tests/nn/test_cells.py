"""The cell suite, parametrised over the registry (nn/registry.py), so that a newly registered cell is tested with
no edit here: every cell's sequence forward against its own steps, its fused op against its step loop in value and
gradient, gradcheck, its registered state layout, its NumPy `equations` against its torch step, PyTorch's module
where it has one, and learning. Besides: the cells with published equations against them (NumPy float64), the
NumPy reference, every stack path against the fused one and `torch.nn.RNN/LSTM/GRU`, and weights saved in the old
layout (an `nn.LSTM` inside the stack)."""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from rnnlab.config import ModelConfig, model_config_from_dict
from rnnlab.lm.model import RNNLM
from rnnlab.nn import recurrent, registry
from rnnlab.nn.cells import NUMPY, make_cell, step_loops, torch_layers
from rnnlab.nn.recurrent import LockedDropout, Recurrent, state_tensors, upgrade_state_dict
from rnnlab.reference import gru as reference_gru

OLD_LM_RUN = Path(__file__).parents[1] / "fixtures" / "runs" / "lm"  # saved by rnnlab 0.1.0: rnn.rnn.weight_ih_l0

D, H, N, T = 5, 5, 3, 7  # D = H so that the cells that add their input un-weighted (MUT1/MUT2) are defined
NAMES = registry.names()
# every registered cell, and each cell that takes --peephole with it on
VARIANTS = [(name, False) for name in NAMES] + [(s.name, True) for s in registry.cells() if "peephole" in s.options]
WITH_EQUATIONS = [spec.name for spec in registry.cells() if spec.equations is not None]
WITH_TORCH_OP = [spec.name for spec in registry.cells() if spec.torch_mode is not None]  # the stack's fused path
# PyTorch's module for each op: what the cells with that op must equal, given the same weights
TORCH_MODULES = {
    "RNN_TANH": partial(nn.RNN, nonlinearity="tanh"),
    "RNN_RELU": partial(nn.RNN, nonlinearity="relu"),
    "LSTM": nn.LSTM,
    "GRU": nn.GRU,
}


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
    """Cells with a fused sequence op (PyTorch's Elman, LSTM and GRU ops, the peephole LSTM's hand-written BPTT, the scans)
    against their step loop, `fused_op = False`, which `step_loops` switches to for Hessian-free and the exporter."""
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


@pytest.mark.parametrize("name", WITH_TORCH_OP)
def test_matches_torch_modules_with_the_same_weights(name):
    cell = random_cell(name)
    ref = TORCH_MODULES[registry.get(name).torch_mode](D, H, batch_first=True).double()
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


def old_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Today's names in the layout of rnnlab 0.1.0, whose fused stack was a torch.nn module called `rnn`:
    `<prefix>layers.{k}.weight_ih` -> `<prefix>rnn.weight_ih_l{k}`."""
    return {re.sub(r"layers\.(\d+)\.(\w+)$", r"rnn.\2_l\1", k): v for k, v in tensors.items()}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", WITH_TORCH_OP)
def test_stack_paths_equal_the_torch_module_in_value_and_gradient(name, dtype, monkeypatch):
    """One parameter layout, three ways to run it on the same weights, L = 2, from zeros and from a carried state:
    PyTorch's op for both layers at once (the fused path), each cell's step loop (`step_loops`, what Hessian-free and
    the ONNX exporter run) and `fused=False` (each cell's own op), against `torch.nn.RNN/LSTM/GRU` holding the same
    weights (what the fused path was until it took the cells' weights): the module registered with the same op."""
    torch.manual_seed(0)
    kernel_calls = []
    monkeypatch.setattr(recurrent, "torch_layers", lambda *a: kernel_calls.append(1) or torch_layers(*a))
    fused = Recurrent(name, 4, 6, num_layers=2).to(dtype)
    with torch.no_grad():
        for p in fused.parameters():
            p.normal_(0, 0.5)
    looped, layered = copy.deepcopy(fused), Recurrent(name, 4, 6, num_layers=2, fused=False).to(dtype)
    layered.load_state_dict(fused.state_dict())
    reference = TORCH_MODULES[registry.get(name).torch_mode](4, 6, num_layers=2, batch_first=True).to(dtype)
    reference.load_state_dict({k.removeprefix("rnn."): v for k, v in old_names(fused.state_dict()).items()})
    x = torch.randn(3, 9, 4, dtype=dtype)
    start = tuple(torch.randn(2, 3, 6, dtype=dtype) for _ in registry.get(name).state)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {}
    for state in (None, start):
        runs = []
        for module in (fused, step_loops(looped), layered, reference):
            inputs = [x.clone().requires_grad_(), *(s.clone().requires_grad_() for s in state or ())]
            given = None if state is None else inputs[1] if len(inputs) == 2 else tuple(inputs[1:])
            out, final = module(inputs[0], given)
            finals = state_tensors(final)
            (out.sum() + sum((f**2).sum() for f in finals)).backward()
            runs.append([out, *finals, *(t.grad for t in inputs), *(p.grad for p in module.parameters())])
            module.zero_grad()
        for other in runs[1:]:
            for a, b in zip(runs[0], other, strict=True):
                torch.testing.assert_close(a, b, **tol)
    assert len(kernel_calls) == 2  # the fused stack's two runs; the step loops and fused=False never call it


def test_weights_in_the_old_layout_load():
    """A state dict of rnnlab 0.1.0 (nn.LSTM's names inside the stack) loads into today's layout, by `load_state_dict`
    itself or by `upgrade_state_dict` first, and computes what it did; today's names pass unchanged."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=9, cell="lstm", layers=2, hidden=8, embed=5)
    model, tokens = RNNLM(config).eval(), torch.randint(9, (2, 7))
    new = model.state_dict()
    old = old_names(new)
    assert "rnn.rnn.weight_ih_l1" in old and "rnn.layers.1.weight_ih" not in old
    assert list(upgrade_state_dict(old)) == list(new) == list(upgrade_state_dict(new))
    for load in (lambda m: m.load_state_dict(old), lambda m: m.load_state_dict(upgrade_state_dict(old))):
        torch.manual_seed(1)
        fresh = RNNLM(config).eval()
        load(fresh)
        torch.testing.assert_close(fresh(tokens)[0], model(tokens)[0], rtol=0, atol=0)
    stack = Recurrent("gru", 3, 4, num_layers=2)  # a stack on its own: the names without a prefix
    stack.load_state_dict(old_names(Recurrent("gru", 3, 4, num_layers=2).state_dict()))


def test_the_old_fixture_run_loads_and_computes_what_nn_lstm_computes():
    """tests/fixtures/runs/lm, written by rnnlab 0.1.0, against torch.nn.LSTM holding its weights under their names."""
    config = model_config_from_dict(json.loads((OLD_LM_RUN / "config.json").read_text())["model"])
    tensors = load_file(OLD_LM_RUN / "model.safetensors")
    model = RNNLM(config).eval()
    model.load_state_dict(tensors)
    lstm = torch.nn.LSTM(config.embed, config.hidden, config.layers, batch_first=True)
    lstm.load_state_dict({k.removeprefix("rnn.rnn."): v for k, v in tensors.items() if k.startswith("rnn.rnn.")})
    tokens = torch.randint(config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(0))
    out, _ = lstm(torch.nn.functional.embedding(tokens, tensors["embed.weight"]))
    expected = torch.nn.functional.linear(out, tensors["head.weight"], tensors["head.bias"])
    torch.testing.assert_close(model(tokens)[0], expected)


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


def _torch_op_runs_in_bf16(mode: str) -> bool:
    """Whether PyTorch's own module for `mode` runs under bf16 autocast on this CPU: an AVX2-only CPU's oneDNN has
    no bf16 LSTM primitive, and `--precision bf16` is refused there (tests/train/test_precision.py)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            TORCH_MODULES[mode](D, H, batch_first=True)(torch.randn(N, T, D))
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_a_stack_runs_under_bf16_autocast_without_warnings(name):
    """Mixed-precision training (`--precision bf16`) hands every layer after the first bf16 inputs; no cell may warn
    about it on every call (the blocks' RMSNorm did: a bf16 input with a float32 weight). PyTorch warns once per
    process, so this catches it where no test before it warned."""
    spec = registry.get(name)
    if spec.torch_mode is not None and not _torch_op_runs_in_bf16(spec.torch_mode):
        pytest.skip(
            f"this CPU's oneDNN cannot run torch.nn's {spec.torch_mode} in bf16 (the refusal is tested instead)"
        )
    stack = Recurrent(name, D if spec.same_width else D + 2, H, num_layers=2)  # an input projection
    with warnings.catch_warnings(record=True) as caught, torch.autocast("cpu", dtype=torch.bfloat16):
        warnings.simplefilter("always")
        out, _ = stack(torch.randn(N, T, stack.input_size))
    assert torch.isfinite(out.float()).all()
    assert [str(w.message) for w in caught] == []
