"""Vector sequences: NPZ/NPY/CSV read back what was written, every hostile file is one RnnlabError, and the
models that read them ignore padding (a padded frame changes no other sequence's result)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.seq.classify import Classifier
from rnnlab.seq.sequence import SeqConfig
from rnnlab.seq.tagger import Tagger
from rnnlab.seq.vectors import (
    VectorSequences,
    is_vector_file,
    pad_vectors,
    read_vector_sequences,
    write_vector_sequences,
)


def sample(n: int = 5, F: int = 3, seed: int = 0) -> VectorSequences:
    """n sequences of 1..6 frames with labels, per-frame tags, targets and ids."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 7, size=n)
    return VectorSequences(
        [rng.normal(size=(T, F)).astype(np.float32) * np.float32(10.0 ** rng.integers(-3, 4)) for T in lengths],
        labels=[str(rng.choice(["a", "b, c"])) for _ in lengths],
        tags=[[str(t) for t in rng.integers(0, 3, size=T)] for T in lengths],
        targets=[f"text {i} with spaces" for i in range(n)],
        ids=[f"clip-{i}" for i in range(n)],
    )


def same(a: VectorSequences, b: VectorSequences) -> bool:
    arrays = len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.features, b.features, strict=True))
    return arrays and (a.labels, a.tags, a.targets, a.names()) == (b.labels, b.tags, b.targets, b.names())


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_written_files_read_back_exactly(tmp_path, suffix):
    data = sample()
    path = write_vector_sequences(data, tmp_path / f"clips{suffix}")
    back = read_vector_sequences(path)
    assert is_vector_file(path) and same(back, data)
    assert all(f.dtype == np.float32 for f in back.features)
    features_only = VectorSequences(data.features)
    assert same(read_vector_sequences(write_vector_sequences(features_only, tmp_path / f"bare{suffix}")), features_only)


def test_npy_and_padded_npz(tmp_path):
    cube = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    np.save(tmp_path / "cube.npy", cube)
    data = read_vector_sequences(tmp_path / "cube.npy")
    assert len(data) == 2 and data.names() == ["0", "1"] and np.array_equal(data.features[1], cube[1])
    np.save(tmp_path / "one.npy", cube[0])
    assert len(read_vector_sequences(tmp_path / "one.npy")) == 1
    tags = np.array([["x", "y", "-"], ["y", "-", "-"]])
    np.savez(tmp_path / "padded.npz", features=cube, lengths=[2, 1], labels=[0, 1], tags=tags)
    data = read_vector_sequences(tmp_path / "padded.npz")
    assert [len(f) for f in data.features] == [2, 1] and data.labels == ["0", "1"] and data.tags == [["x", "y"], ["y"]]


def test_csv_groups_rows_by_id_in_file_order(tmp_path):
    path = tmp_path / "sensors.csv"
    path.write_text("x,Seq,y,label,tag\n1,b,2,up,p\n3,a,4,down,q\n5,b,6,up,r\n 7 ,a,8e0,down,s\n")
    data = read_vector_sequences(path)
    assert data.names() == ["b", "a"] and data.labels == ["up", "down"] and data.tags == [["p", "r"], ["q", "s"]]
    assert data.features[1].tolist() == [[3, 4], [7, 8]] and data.targets is None
    assert is_vector_file(path)
    (tmp_path / "texts.csv").write_text("id,text,label\n1,good,pos\n")
    assert not is_vector_file(tmp_path / "texts.csv") and not is_vector_file(tmp_path / "corpus.txt")


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD = {"features": np.zeros((5, 2)), "lengths": [2, 3]}
HOSTILE = {
    "nan": (lambda p: _npz(p / "a.npz", features=np.array([[0.0, np.nan]]), lengths=[1]), "not a finite number"),
    "inf in csv": (lambda p: _text(p / "a.csv", "id,x\n1,inf\n"), "feature 0 is inf"),
    "overflow": (lambda p: _npz(p / "a.npz", features=np.array([[1e300]]), lengths=[1]), "not a finite number"),
    "short row": (lambda p: _text(p / "a.csv", "id,x,y\n1,2,3\n1,2\n"), r"a\.csv:3: 2 cells, the header has 3"),
    "no rows": (lambda p: _text(p / "a.csv", "id,x\n"), "header but no rows"),
    "empty csv": (lambda p: _text(p / "a.csv", ""), "is empty"),
    "no frames": (lambda p: _npz(p / "a.npz", features=np.zeros((0, 2)), lengths=np.zeros(0, int)), "positive"),
    "no features": (lambda p: _npz(p / "a.npz", features=np.zeros((2, 0)), lengths=[2]), "is empty"),
    "varying label": (lambda p: _text(p / "a.csv", "id,x,label\n1,0,a\n2,0,a\n1,0,b\n"), "sequence 1 has more than"),
    "lengths sum": (lambda p: _npz(p / "a.npz", features=np.zeros((5, 2)), lengths=[2, 2]), "sum to 4 but"),
    "zero length": (lambda p: _npz(p / "a.npz", features=np.zeros((5, 2)), lengths=[5, 0]), "positive integer"),
    "object": (lambda p: _npz(p / "a.npz", **GOOD, labels=np.array(["a", 1], dtype=object)), "object array"),
    "text features": (lambda p: _npz(p / "a.npz", features=np.array([["1"]]), lengths=[1]), "must hold numbers"),
    "word cell": (lambda p: _text(p / "a.csv", "id,x\n1,0.5\n1,abc\n"), r"a\.csv:3: column 'x' is 'abc', not a"),
    "no id column": (lambda p: _text(p / "a.csv", "x,y\n1,2\n"), "sequence-id column"),
    "two id columns": (lambda p: _text(p / "a.csv", "id,seq,x\n1,1,2\n"), "exactly one sequence-id"),
    "only ids": (lambda p: _text(p / "a.csv", "id,label\n1,a\n"), "no feature columns"),
    "tags count": (lambda p: _npz(p / "a.npz", **GOOD, tags=["a"] * 4), "one value per frame"),
    "labels count": (lambda p: _npz(p / "a.npz", **GOOD, labels=["a"]), "one value per sequence"),
    "float labels": (lambda p: _npz(p / "a.npz", **GOOD, labels=[0.5, 1.5]), "text or integers"),
    "repeated ids": (lambda p: _npz(p / "a.npz", **GOOD, ids=["x", "x"]), "ids repeat"),
    "typo": (lambda p: _npz(p / "a.npz", **GOOD, label=["a", "b"]), "unknown array 'label'"),
    "missing": (lambda p: _npz(p / "a.npz", lengths=[1]), "no `features` array"),
    "4-D": (lambda p: _npz(p / "a.npz", features=np.zeros((1, 1, 1, 1))), "got shape"),
    "corrupt": (lambda p: _text(p / "a.npz", "not a zip"), "cannot read"),
    "absent": (lambda p: p / "none.csv", "cannot read"),
    "suffix": (lambda p: _text(p / "a.txt", "id,x\n1,2\n"), r"\.npz, \.npy or \.csv"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_files_are_one_clear_error(tmp_path, case):
    make, message = HOSTILE[case]
    with pytest.raises(RnnlabError, match=message) as caught:
        read_vector_sequences(make(tmp_path))
    assert "\n" not in str(caught.value)


def test_sequences_made_in_python_are_checked():
    with pytest.raises(RnnlabError, match="sequence 1 has 3 features per frame, sequence 0 has 2"):
        VectorSequences([np.zeros((2, 2)), np.zeros((2, 3))]).check()
    with pytest.raises(RnnlabError, match="sequence 0 has 2 frames but 1 tags"):
        VectorSequences([np.zeros((2, 2))], tags=[["a"]]).check()
    with pytest.raises(RnnlabError, match="has no sequences"):
        VectorSequences([]).check()


@pytest.fixture(scope="module")
def data() -> VectorSequences:
    """Sequences of two features, labelled by whether the first one rises, tagged by its sign."""
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(int(T), 2)).astype(np.float32) for T in rng.integers(2, 9, size=64)]
    labels = ["rises" if f[-1, 0] > f[0, 0] else "falls" for f in features]
    tags = [["+" if v > 0 else "-" for v in f[:, 0]] for f in features]
    return VectorSequences(features, labels, tags)


def test_padding_never_changes_another_sequences_result(data):
    config = SeqConfig("lstm", hidden=8, embed=4, steps=5)
    classifier, tagger = Classifier.train(data, config), Tagger.train(data, config)
    short, long = data.features[0][:2], np.full((30, 2), 1e3, dtype=np.float32)  # long pads short with 28 frames
    alone = classifier.probabilities([short])
    assert torch.allclose(classifier.probabilities([short, long])[0], alone, atol=1e-6)
    tags_alone = tagger.predict([short])[0]
    assert tagger.predict([short, long])[0] == tags_alone and len(tags_alone) == 2
    x, lengths = pad_vectors([short, long])
    x[0, 2:] = torch.randn(28, 2) * 1e3  # garbage, not zeros, in the padding
    with torch.no_grad():
        logits = tagger.module(x)[0, :2]
        assert torch.allclose(classifier.module(x, lengths)[0].softmax(-1), alone[0], atol=1e-6)
        assert torch.allclose(logits, tagger.module(x[:1, :2])[0], atol=1e-5)


def test_vector_runs_save_load_and_refuse_other_widths(data, tmp_path):
    config = SeqConfig("gru", hidden=8, embed=4, steps=5)
    model = Classifier.train(data, config)
    again = Classifier.load(model.save(tmp_path / "run"))
    assert again.features == 2 and torch.equal(again.probabilities(data), model.probabilities(data))
    assert torch.equal(again.module.embed.mean, model.module.embed.mean)  # the training statistics were saved
    with pytest.raises(RnnlabError, match="reads 2 features per frame, the sequences have 3"):
        again.predict([np.zeros((4, 3), dtype=np.float32)])
    with pytest.raises(RnnlabError, match="a \\(frames, features\\) array of numbers"):
        again.predict(["a text"])
    tagger = Tagger.load(Tagger.train(data, config).save(tmp_path / "tags"))
    assert tagger.features == 2 and [len(t) for t in tagger.predict(data)] == [len(f) for f in data.features]
    with pytest.raises(RnnlabError, match="no tags"):
        Tagger.train(VectorSequences(data.features, data.labels), config)
    with pytest.raises(RnnlabError, match="no labels"):
        Classifier.train(VectorSequences(data.features, tags=data.tags), config)
