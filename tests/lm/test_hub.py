"""Hugging Face conventions: `save_pretrained` / `from_pretrained` (huggingface_hub's ModelHubMixin) write and read
run directories, with the model card."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rnnlab
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import RNNLM, LanguageModel

TEXTS = ["the cat sat on the mat. " * 200]
SMALL = {"preset": "tiny", "hidden": 32, "embed": 8, "batch_size": 4, "seq_len": 16, "progress": False}


def test_save_pretrained_and_from_pretrained_round_trip(tmp_path: Path, cli) -> None:
    rnnlab.train(texts=TEXTS, out=tmp_path / "run", max_steps=6, eval_every=3, **SMALL)
    lm = LanguageModel.load(tmp_path / "run")
    lm.save_pretrained(tmp_path / "saved")
    saved = {p.name for p in (tmp_path / "saved").iterdir()}
    assert {"config.json", "tokenizer.json", "model.safetensors", "README.md", "metrics.jsonl", "tokens"} <= saved
    again = LanguageModel.from_pretrained(tmp_path / "saved")
    for (name, a), (_, b) in zip(lm.module.state_dict().items(), again.module.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert again.generate(prime="the ", length=30, seed=3) == lm.generate(prime="the ", length=30, seed=3)
    code, out, _ = cli("sample", tmp_path / "saved", "--prime", "the ", "--length", "30", "--seed", "3")
    assert code == 0 and out.strip() == ("the " + lm.generate(prime="the ", length=30, seed=3)).strip()
    assert "library_name" in (tmp_path / "saved" / "README.md").read_text()


def test_a_model_made_in_memory_saves_too_and_a_missing_hub_model_is_one_error(tmp_path: Path) -> None:
    from rnnlab.config import ModelConfig
    from rnnlab.data.tokenizers import CharTokenizer

    tokenizer = CharTokenizer("abc ")
    module = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size, cell="gru", hidden=8, embed=4, layers=1)).eval()
    LanguageModel(module, tokenizer).save_pretrained(tmp_path / "fresh")
    assert LanguageModel.from_pretrained(tmp_path / "fresh").module.config.cell == "gru"
    with pytest.raises(RnnlabError, match=r"^cannot get 'nobody/no-such-model' from the Hugging Face Hub: "):
        LanguageModel.from_pretrained("nobody/no-such-model", local_files_only=True)
