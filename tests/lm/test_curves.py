"""Loss curves: RUN/loss.png drawn while training, and `rnnlab plot` over several runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pytest

import rnnlab
from rnnlab.lm import curves


def test_training_draws_its_curves_and_plot_draws_several_runs(tmp_path: Path, corpus_file: Path, tiny: dict, cli):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(curves, "REFRESH_S", 0.0)  # at every validation (a real run: at most every 30 s)
        rnnlab.train([str(corpus_file)], out=tmp_path / "a", max_steps=30, eval_every=10, **tiny)
    picture = matplotlib.image.imread(tmp_path / "a" / "loss.png")
    assert picture.shape[:2] == (400, 700) and picture.std() > 0.05  # drawn, not blank
    train, val = curves.read_metrics(tmp_path / "a")
    assert [step for step, _ in val] == [10, 20, 30] and len(train) == 3 and all(b > 0 for _, b in train + val)
    rnnlab.train([str(corpus_file)], out=tmp_path / "b", max_steps=20, eval_every=10, **tiny)
    assert not (tmp_path / "b" / "loss.png").exists()  # a few seconds of training: no figure to keep up to date
    code, _, err = cli("plot", tmp_path / "a", tmp_path / "b", "--output", tmp_path / "both.png")
    assert code == 0, err
    assert matplotlib.image.imread(tmp_path / "both.png").shape[:2] == (400, 700)


def test_plot_refuses_what_is_not_a_language_model_run(tmp_path: Path, cli):
    code, _, err = cli("plot", tmp_path / "missing", "--output", tmp_path / "x.png")
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    fixture = Path(__file__).parents[1] / "fixtures" / "runs" / "classify"
    code, _, err = cli("plot", fixture, "--output", tmp_path / "x.png")
    assert code == 2 and "classify run" in err and not (tmp_path / "x.png").exists()
    code, _, err = cli(
        "plot", Path(__file__).parents[1] / "fixtures" / "runs" / "reference", "--output", tmp_path / "r.png"
    )
    assert code == 0 and (tmp_path / "r.png").exists()  # the NumPy reference's runs log the same metrics
