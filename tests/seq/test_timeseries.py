"""Next-value regression: beats the last-value baseline on the demo series; CSV columns are read safely."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig
from rnnlab.seq.timeseries import Forecaster, demo, read_series


def test_beats_the_naive_last_value_forecast(tmp_path):
    series = demo(1200, seed=0)
    model = Forecaster.train(series[:1000], SeqConfig("gru", hidden=24, steps=120, lr=1e-2), window=40)
    result = model.evaluate(series, 1000)
    assert result.count == 200
    assert result.model_rmse < 0.6 * result.naive_rmse
    again = Forecaster.load(model.save(tmp_path / "run"))
    assert np.allclose(again.forecast(series, 3), model.forecast(series, 3))
    assert model.forecast(series, 3).shape == (3,)


def test_reads_columns_by_name_index_or_default(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("day,value\n1,0.5\n2,1.5\n")
    assert read_series(path).tolist() == [0.5, 1.5]
    assert read_series(path, "day").tolist() == [1.0, 2.0]
    assert read_series(path, "0").tolist() == [1.0, 2.0]
    with pytest.raises(RnnlabError, match="no column 'x'"):
        read_series(path, "x")
    (tmp_path / "t.csv").write_text("1\nabc\n")
    with pytest.raises(RnnlabError, match="not numeric"):
        read_series(tmp_path / "t.csv")
