"""The mLSTM block with local attention heads (nn/local.py): the window's attention against a direct NumPy
computation, its reach (exactly W tokens), chunk independence of the whole block, its heads and state, and the
--window option. The registry-driven cell suite (test_cells.py) runs its step loop, gradients and learning too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.errors import RnnlabError
from rnnlab.nn.local import LocalMLSTMCell, local_attention
from rnnlab.nn.recurrent import Recurrent


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Step by step: the last W keys and values, the carried window first, a softmax over q·k / √d."""
    all_k, all_v = np.concatenate([keys, k], 2), np.concatenate([values, v], 2)
    W, T, d = keys.shape[2], q.shape[2], q.shape[3]
    out = np.empty_like(q)
    for t in range(T):
        seen_k, seen_v = all_k[:, :, t + 1 : t + W + 1], all_v[:, :, t + 1 : t + W + 1]
        logits = np.einsum("nhd,nhsd->nhs", q[:, :, t], seen_k) / np.sqrt(d)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        out[:, :, t] = np.einsum("nhs,nhsd->nhd", weights, seen_v)
    return out


def test_attention_over_the_window_equals_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 4, generator=g, dtype=torch.float64) for _ in range(3))
    keys, values = (torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64) for _ in range(2))
    h, (new_keys, new_values) = local_attention(q, k, v, (keys, values))
    expected = reference(*(t.numpy() for t in (q, k, v, keys, values)))
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(new_keys, k[:, :, -5:])  # T > W: only this chunk's last W steps remain
    torch.testing.assert_close(new_values, v[:, :, -5:])


def test_a_chunk_shorter_than_the_window_keeps_part_of_the_carried_window():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 3, 4, generator=g) for _ in range(3))
    keys, values = (torch.randn(1, 2, 8, 4, generator=g) for _ in range(2))
    _, (new_keys, new_values) = local_attention(q, k, v, (keys, values))
    torch.testing.assert_close(new_keys, torch.cat([keys[:, :, 3:], k], 2))
    torch.testing.assert_close(new_values, torch.cat([values[:, :, 3:], v], 2))


def test_a_step_sees_exactly_the_last_w_tokens():
    """Changing the key and value W steps back leaves step t unchanged; W − 1 steps back changes it."""
    W, t = 4, 10
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 1, 12, 3, generator=g) for _ in range(3))
    window = (torch.zeros(1, 1, W, 3), torch.zeros(1, 1, W, 3))
    base, _ = local_attention(q, k, v, window)
    for back, changes in ((W, False), (W - 1, True)):
        k2, v2 = k.clone(), v.clone()
        k2[0, 0, t - back] += 1.0
        v2[0, 0, t - back] += 1.0
        moved, _ = local_attention(q, k2, v2, window)
        assert (not torch.allclose(moved[0, 0, t], base[0, 0, t])) == changes


def test_the_block_gives_the_same_outputs_however_the_sequence_is_cut():
    torch.manual_seed(3)
    stack = Recurrent("mlstm-local", 5, 8, num_layers=2, window=6).double()
    x = torch.randn(3, 150, 5, dtype=torch.float64)
    whole, final = stack(x)
    state, parts = None, []
    for cut in (slice(0, 2), slice(2, 9), slice(9, 10), slice(10, 150)):  # shorter and longer than W and CHUNK
        out, state = stack(x[:, cut], state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), whole)
    for a, b in zip(state, final, strict=True):
        torch.testing.assert_close(a, b)


def test_half_the_heads_keep_a_memory_and_only_they_have_gates():
    cell = LocalMLSTMCell(4, 8, window=5)  # inner width 16: four heads of 4
    assert (cell.heads, cell.memory_heads, cell.gates.out_features) == (4, 2, 4)
    _, C, n, m, keys, values = cell.initial_state(3, torch.device("cpu"), torch.float32)
    assert (C.shape, n.shape, m.shape) == ((3, 2, 4, 4), (3, 2, 4), (3, 2))
    assert keys.shape == values.shape == (3, 2, 5, 4)
    assert torch.all(cell.gates.bias[2:] >= 3)  # the memory heads' forget gates start open


def test_the_window_must_hold_a_token():
    with pytest.raises(ValueError, match="at least 1 token"):
        LocalMLSTMCell(4, 8, window=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cell": "mlstm-local", "window": 0}, r"--window must be in \[1, 65536\], got 0"),
        ({"cell": "mlstm-local", "window": 70000}, r"--window must be in \[1, 65536\], got 70000"),
        ({"cell": "mlstm", "window": 32}, "--window applies to --cell mlstm-local only"),
    ],
)
def test_window_values_are_checked(options: dict, message: str):
    with pytest.raises(RnnlabError, match=message):
        ModelConfig(vocab_size=10, **options).validate()
