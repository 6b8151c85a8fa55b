"""Export a trained model's per-step function to ONNX, for inference outside PyTorch.

The exported graph is one step of the recurrence, the function sampling and streaming scoring call:
    inputs:  tokens (N, 1) int64, h (L, N, H) [, c (L, N, H) for the LSTM]
    outputs: logits (N, V), h_out (L, N, H) [, c_out (L, N, H)]
N is a dynamic axis. The caller carries the state: feed h_out (and c_out) back as h (and c). The initial
state is zeros (or, for `learn_init` models, the learned one, see `initial_state`).

The file's metadata (`metadata_props`) carries what a caller needs besides the graph: `rnnlab_version`,
`tokenizer` (tokenizer.json's content, Hugging Face's format: ids <-> text), `vocab_size`, `cell`, `layers`,
`hidden`, `state` (the state inputs, in order) and `usage` (these conventions in a sentence). Writing them needs
the `onnx` package (`pip install 'rnnlab[onnx]'`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from rnnlab._version import __version__
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import RNNLM, LanguageModel
from rnnlab.nn.cells import step_loops
from rnnlab.nn.recurrent import state_from_tensors, state_tensors


class StepModule(nn.Module):
    """(tokens (N, 1), *state) -> (logits (N, V), *new state): one step of `model`, state explicit."""

    def __init__(self, model: RNNLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        logits, new_state, _ = self.model(tokens, state_from_tensors(list(state)))
        return (logits[:, -1], *state_tensors(new_state))

    def state_names(self) -> list[str]:
        return list(self.model.rnn.spec.state)

    def initial_state(self, N: int) -> list[Tensor]:
        """The state to start from: zeros (L, N, H), or the learned initial state expanded to N."""
        learned = self.model.rnn.initial_state(N)
        if learned is not None:
            return [t.detach() for t in state_tensors(learned)]
        L, H = self.model.config.layers, self.model.config.hidden
        return [torch.zeros(L, N, H) for _ in self.state_names()]


def export_onnx(run_dir: str | Path, path: str | Path, opset: int = 17) -> Path:
    """Write the step function of the model in `run_dir` to `path` (an .onnx file), with the tokenizer and the
    conventions in its metadata, and return the path."""
    try:
        import onnx
    except ImportError:
        raise RnnlabError("ONNX export needs the onnx package: pip install 'rnnlab[onnx]'") from None
    lm = LanguageModel.load(run_dir)
    step = StepModule(lm.module).eval()
    spec = step.model.rnn.spec
    if spec.no_onnx:
        raise RnnlabError(f"ONNX export does not support --cell {spec.name}: {spec.no_onnx}")
    # The exporter records primitive ops; rnnlab's own autograd nodes (the scans, the peephole LSTM's
    # hand-written BPTT) are opaque to it and would export wrong, so cells run their step loop instead.
    step_loops(step)
    names = step.state_names()
    tokens = torch.zeros(2, 1, dtype=torch.long)
    state = step.initial_state(2)
    axes = {"tokens": {0: "N"}, "logits": {0: "N"}}
    axes.update({n: {1: "N"} for n in names})
    axes.update({f"{n}_out": {1: "N"} for n in names})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter maps nn.LSTM/GRU to ONNX LSTM/GRU ops and needs no onnxscript;
            # PyTorch now warns that it is the legacy path. Tracing warns about shape checks, and about
            # batch sizes when the state is not an input; here N is dynamic and the state is an input.
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
            warnings.filterwarnings("ignore", message=".*batch_size other than 1")
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                step,
                (tokens, *state),
                str(path),
                input_names=["tokens", *names],
                output_names=["logits", *(f"{n}_out" for n in names)],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
    except Exception as exc:  # the exporter's failures are many and varied; report them in one line
        raise RnnlabError(f"ONNX export failed: {str(exc).strip().splitlines()[0]}") from None
    graph = onnx.load(str(path))
    config = lm.module.config
    metadata = {
        "rnnlab_version": __version__,
        "tokenizer": lm.tokenizer.to_hf().to_str(),  # tokenizer.json: `tokenizers.Tokenizer.from_str` reads it
        "vocab_size": str(config.vocab_size),
        "cell": config.cell,
        "layers": str(config.layers),
        "hidden": str(config.hidden),
        "state": ",".join(names),
        "usage": (
            f"inputs: tokens (N, 1) int64 and the state {', '.join(f'{n} (L, N, H)' for n in names)}; outputs: "
            f"logits (N, V) of the next token and the new state {', '.join(f'{n}_out' for n in names)}, fed back "
            "as the state of the next step; the first state is zeros (or the model's learned one)"
        ),
    }
    onnx.helper.set_model_props(graph, metadata)
    onnx.save(graph, str(path))
    return path
