"""`rnnlab train --optimizer hf | nesterov` and `--init esn`: they learn, resume exactly, and reject bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

import rnnlab
from rnnlab.nn.init import spectral_radius


def _val_losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["val_loss"] for r in rows if "val_loss" in r]


def test_hessian_free_lowers_the_validation_loss(tmp_path: Path, corpus_file: Path, tiny: dict):
    rnnlab.train([str(corpus_file)], out=tmp_path / "hf", optimizer="hf", max_steps=8, eval_every=2, **tiny)
    losses = _val_losses(tmp_path / "hf")
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] - 0.5, losses


@pytest.mark.parametrize("optimizer", ["hf", "nesterov"])
def test_resume_is_exact(tmp_path: Path, corpus_file: Path, tiny: dict, optimizer: str):
    """4 updates in one go == 2, then --resume to 4: the same weights, byte for byte (HF: λ and the warm start)."""
    args = dict(optimizer=optimizer, lr=0.3, max_steps=4, eval_every=2, checkpoint_every=2, decay="none", **tiny)
    rnnlab.train([str(corpus_file)], out=tmp_path / "whole", **args)
    rnnlab.train([str(corpus_file)], out=tmp_path / "split", **{**args, "max_steps": 2})
    rnnlab.train(out=tmp_path / "split", resume=True, **args)
    assert (tmp_path / "whole/model.safetensors").read_bytes() == (tmp_path / "split/model.safetensors").read_bytes()


@pytest.mark.parametrize(("cell", "blocks"), [("rnn-tanh", 1), ("lstm", 4)])
def test_esn_init_sets_the_spectral_radius_of_w_hh(tmp_path: Path, corpus_file: Path, tiny: dict, cell, blocks):
    """One SGD step with a negligible learning rate after `--init esn --spectral-radius 0.95`."""
    args = {**tiny, "hidden": 24, "layers": 2}
    rnnlab.train([str(corpus_file)], out=tmp_path / "r", cell=cell, init="esn", spectral_radius=0.95,
                 optimizer="sgd", lr=1e-9, max_steps=1, **args)  # fmt: skip
    with safe_open(tmp_path / "r/model.safetensors", framework="pt") as f:
        recurrent = {k: f.get_tensor(k) for k in f.keys() if "weight_hh" in k}  # noqa: SIM118
    assert len(recurrent) == 2
    for W in recurrent.values():
        for block in W.view(blocks, 24, 24):
            assert spectral_radius(block) == pytest.approx(0.95, abs=1e-5)


def test_esn_init_with_nesterov_momentum_learns(tmp_path: Path, corpus_file: Path, tiny: dict):
    rnnlab.train([str(corpus_file)], out=tmp_path / "r", cell="rnn-tanh", init="esn", optimizer="nesterov",
                 momentum=0.9, lr=0.05, max_steps=60, eval_every=20, **tiny)  # fmt: skip
    losses = _val_losses(tmp_path / "r")
    assert losses[-1] < losses[0] - 0.3, losses


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--init", "xavier"], "'xavier' is not one of 'default', 'esn'"),
        (["--init", "esn", "--spectral-radius", "0"], "--spectral-radius must be > 0"),
        (["--init", "esn", "--cell", "mingru"], "--init esn needs a recurrent matrix W_hh"),
        (["--optimizer", "nesterov", "--momentum", "0"], "needs --momentum > 0"),
        (["--optimizer", "hf", "--dropout", "0.1"], "--optimizer hf needs --dropout 0"),
        (["--optimizer", "hf", "--precision", "bf16"], "--optimizer hf runs in fp32"),
        (["--optimizer", "hf", "--hf-curvature-fraction", "0"], "--hf-curvature-fraction must be in (0, 1]"),
        (["--optimizer", "hf", "--hf-cg-iters", "0"], "--hf-cg-iters must be > 0"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(tmp_path: Path, corpus_file: Path, cli, flags: list[str], match: str):
    code, _, err = cli("train", corpus_file, "--out", tmp_path / "r", "--preset", "tiny", "--max-steps", "1", *flags)
    assert code == 2 and len(err.strip().splitlines()) == 1 and match in err, err
    assert not (tmp_path / "r").exists()


def test_resume_cannot_switch_to_or_from_hf(tmp_path: Path, corpus_file: Path, cli):
    flags = ["--preset", "tiny", "--hidden", "16", "--embed", "8", "--batch-size", "4", "--seq-len", "16"]
    assert cli("train", corpus_file, "--out", tmp_path / "r", "--max-steps", "1", *flags)[0] == 0
    config = (tmp_path / "r/config.json").read_bytes()
    code, _, err = cli("train", "--out", tmp_path / "r", "--resume", "--optimizer", "hf", "--max-steps", "2")
    assert (
        code == 2
        and "--optimizer hf differs" in err
        and "cannot change on --resume" in err
        and len(err.strip().splitlines()) == 1
    ), err
    assert (tmp_path / "r/config.json").read_bytes() == config  # the failed command changed nothing
