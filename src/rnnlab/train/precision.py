"""Speed paths for the training step: mixed precision (autocast, GradScaler) and torch.compile.

Both are opt-in (`--precision bf16|fp16|auto`, `--compile`); the default fp32, eager step is unchanged.
`auto` takes bf16 where the hardware computes it natively (a CUDA GPU with bf16, or a CPU with AVX-512
BF16 / AMX, where oneDNN's bf16 LSTM/GRU kernels run about 1.3-1.7x faster than fp32 with no measured
loss of quality: benchmarks/results/quality.md) and fp32 elsewhere (emulated bf16 is slower).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from rnnlab.errors import RnnlabError
from rnnlab.ui import notice

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast for the forward pass and, for fp16 on CUDA, a GradScaler against gradient underflow.

    bf16 has fp32's exponent range, so it needs no scaler. The loss (cross-entropy) is computed in fp32
    by autocast; evaluation always runs in fp32, so validation scores stay comparable across precisions.
    """

    def __init__(self, name: str, device: torch.device) -> None:
        self.name = resolve_precision(name, device)
        self.dtype, self.device_type = DTYPES[self.name], device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.name == "fp16" and device.type == "cuda")

    def autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


def resolve_precision(name: str, device: torch.device) -> str:
    """`name`, with `auto` replaced by bf16 where `device` computes bf16 natively and fp32 elsewhere."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        except (AttributeError, RuntimeError):  # an older or a stripped-down build: no way to tell
            return "fp32"
        return "bf16" if native and _cpu_bf16_recurrences_run() else "fp32"
    return "fp32"


@functools.cache
def _cpu_bf16_recurrences_run() -> bool:
    """Whether oneDNN's LSTM and GRU run forward and backward under bf16 autocast on this CPU."""
    with torch.random.fork_rng(devices=[]):  # the global generator is left as it was
        try:
            for module in (nn.LSTM(4, 4, batch_first=True), nn.GRU(4, 4, batch_first=True)):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out, _ = module(torch.randn(2, 3, 4))
                out.float().sum().backward()
        except RuntimeError:
            return False
    return True


def check_precision(name: str, device: torch.device, model: nn.Module, vocab_size: int) -> None:
    """Refuse a reduced precision that this machine's kernels cannot run, before anything is written.

    Whether oneDNN has a bf16/fp16 LSTM or GRU primitive depends on the CPU's instruction set (an
    AVX2-only CPU has none), and nothing in PyTorch says so up front: the forward pass raises. So the
    model itself runs one tiny forward and backward pass under autocast here, on a copy of its weights.
    """
    resolved = resolve_precision(name, device)
    if resolved == "fp32":
        return
    precision = Precision(resolved, device)
    tokens = torch.arange(6, device=device).reshape(2, 3) % vocab_size
    try:
        with precision.autocast():
            _, _, loss = model(tokens, None, tokens)
        loss.backward()
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise RnnlabError(
            f"--precision {resolved} cannot run on this {device.type}'s kernels ({reason}); use --precision fp32"
        ) from None
    finally:
        model.zero_grad(set_to_none=True)


def compile_model(model: nn.Module, enabled: bool) -> Callable[..., Any]:
    """`torch.compile(model)` when asked; if compiling fails (no compiler, unsupported platform), a
    notice and the eager model. Compilation happens at the first call, so that is where we fall back."""
    if not enabled:
        return model
    return _CompileOrEager(model)


class _CompileOrEager:
    def __init__(self, model: nn.Module) -> None:
        self.model, self.compiled = model, torch.compile(model)
        self.proven = False

    def __call__(self, *args: Any) -> Any:
        if self.proven:
            return self.compiled(*args)
        try:
            result = self.compiled(*args)
        except Exception as exc:  # any compiler failure (no C++ compiler, unsupported op): run eagerly
            notice(f"torch.compile is unavailable here ({str(exc).strip().splitlines()[0][:200]}); training eagerly")
            self.compiled = self.model
            result = self.model(*args)
        self.proven = True
        return result
