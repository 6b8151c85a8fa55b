"""ONNX export of the per-step function: onnxruntime computes what PyTorch computes, step after step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.errors import RnnlabError
from rnnlab.lm.export import StepModule, export_onnx
from rnnlab.lm.model import LanguageModel

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _compare(run_dir: Path, onnx_path: Path, steps: int = 6, N: int = 3) -> None:
    """Feed the same random tokens to both for `steps` steps, each carrying its own state."""
    step = StepModule(LanguageModel.load(run_dir).module).eval()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = step.state_names()
    torch_state = step.initial_state(N)
    onnx_state = [t.numpy() for t in torch_state]
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        tokens = torch.randint(step.model.config.vocab_size, (N, 1), generator=generator)
        with torch.no_grad():
            logits, *torch_state = step(tokens, *torch_state)
        outputs = session.run(None, {"tokens": tokens.numpy(), **dict(zip(names, onnx_state, strict=True))})
        onnx_logits, *onnx_state = outputs
        np.testing.assert_allclose(onnx_logits, logits.numpy(), rtol=1e-4, atol=1e-5)
        for mine, theirs in zip(onnx_state, torch_state, strict=True):
            np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-4, atol=1e-5)
    assert logits.shape == (N, step.model.config.vocab_size)


def test_exported_lstm_step_matches_pytorch(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "model.onnx"
    main(["export", str(trained_run), "--onnx", str(out)])
    assert out.is_file() and capsys.readouterr().err.strip().startswith("wrote")
    _compare(trained_run, out)


@pytest.mark.parametrize("options", [{"cell": "gru", "layers": 2}, {"cell": "lstm", "layers": 2, "layer_norm": True},
                                     {"cell": "lstm", "layers": 2, "peephole": True}, {"cell": "mingru"}])  # fmt: skip
def test_exported_gru_and_layered_lstm_match_pytorch(tmp_path: Path, corpus_file: Path, tiny: dict, options: dict):
    """A fused GRU (one state tensor), an LSTM built from rnnlab's own cells (not nn.LSTM), and cells whose
    sequence runs as rnnlab's own autograd node (peephole LSTM, scans), which export as their step."""
    rnnlab.train([str(corpus_file)], out=tmp_path / "run", max_steps=2, **{**tiny, **options})
    out = export_onnx(tmp_path / "run", tmp_path / "model.onnx")
    _compare(tmp_path / "run", out)


def test_exporting_an_ssm_is_refused_in_one_line(tmp_path: Path, corpus_file: Path, tiny: dict):
    rnnlab.train([str(corpus_file)], out=tmp_path / "run", max_steps=1, **{**tiny, "cell": "ssm"})
    with pytest.raises(RnnlabError, match="does not support --cell ssm"):
        export_onnx(tmp_path / "run", tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_the_file_carries_the_vocabulary_and_its_conventions(trained_run: Path, tmp_path: Path):
    """A caller outside rnnlab can turn text into the tokens input and logits back into text from the file alone."""
    import onnx
    import tokenizers

    out = export_onnx(trained_run, tmp_path / "model.onnx")
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    lm = LanguageModel.load(trained_run)
    assert props["rnnlab_version"] == rnnlab.__version__ and props["state"] == "h,c" and props["cell"] == "lstm"
    tokenizer = tokenizers.Tokenizer.from_str(props["tokenizer"])  # Hugging Face's library, no rnnlab needed
    text = "def f(x):\n    return x"
    assert tokenizer.encode(text).ids == lm.tokenizer.encode(text).tolist()
    assert int(props["vocab_size"]) == lm.module.config.vocab_size and "tokens (N, 1) int64" in props["usage"]
