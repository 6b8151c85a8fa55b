"""The interpolated Kneser-Ney n-gram model: normalised everywhere, equal to NLTK's KneserNeyInterpolated on the same
events, scoring held-out text it never saw, and its `rnnlab ngram` commands end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rnnlab.baselines.ngram import KneserNey, NgramRun, describe

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by the log."
HELD_OUT = "a dog sat by the cat. the mat met a log."


def _ids(text: str, alphabet: str) -> np.ndarray:
    return np.array([alphabet.index(c) for c in text])


ALPHABET = "".join(sorted(set(TEXT + HELD_OUT))) + "#"  # '#' never occurs: a token seen in no context


def _contexts(ids: np.ndarray, order: int, rng: np.random.Generator, V: int) -> list[np.ndarray]:
    """Every history the corpus has (the n - 1 tokens before each position, shorter at the start), plus random
    histories, most never seen."""
    seen = [ids[max(0, i - order + 1) : i] for i in range(len(ids) + 1)]
    return seen + [rng.integers(0, V, size=order - 1) for _ in range(20)]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("discount", [None, 0.5, 1.0])
def test_distribution_sums_to_one_for_every_context(order: int, discount: float | None) -> None:
    ids, V = _ids(TEXT, ALPHABET), len(ALPHABET)
    kn = KneserNey.fit(ids, V, order, discount)
    for context in _contexts(ids, order, np.random.default_rng(order), V):
        p = kn.distribution(context)
        assert p.shape == (V,)
        assert abs(p.sum() - 1) < 1e-12
        assert p.min() > 0  # the uniform floor: '#' and every token unseen after this context keep some mass


def _nltk_model(ids: np.ndarray, V: int, order: int, discount: float):
    """NLTK's KneserNeyInterpolated fitted on the events our model counts: for each token of the stream after
    n - 1 '<s>', every k-gram that ends on it (k = 1..n)."""
    nltk_lm = pytest.importorskip("nltk.lm")
    stream = ["<s>"] * (order - 1) + [str(i) for i in ids]
    grams = [tuple(stream[i - k + 1 : i + 1]) for i in range(order - 1, len(stream)) for k in range(1, order + 1)]
    lm = nltk_lm.KneserNeyInterpolated(order, discount=discount)
    lm.fit([grams], [str(i) for i in range(V)] + ["<s>"])
    return lm


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("discount", [0.1, 0.75])
def test_equals_nltk_kneser_ney_interpolated(order: int, discount: float) -> None:
    """Reference mode (no uniform floor: NLTK's lowest order is the plain continuation unigram) equals NLTK for
    every token after every context, seen or not, and along a held-out text (the vectorised scoring path)."""
    ids, V = _ids(TEXT, ALPHABET), len(ALPHABET)
    kn = KneserNey.fit(ids, V, order, discount, uniform_floor=False)
    lm = _nltk_model(ids, V, order, discount)

    def nltk_context(context: np.ndarray) -> list[str]:
        padded = ["<s>"] * (order - 1) + [str(i) for i in context]
        return padded[len(padded) - (order - 1) :]

    for context in _contexts(ids, order, np.random.default_rng(order), V):
        expected = [lm.score(str(w), nltk_context(context)) for w in range(V)]
        np.testing.assert_allclose(kn.distribution(context), expected, rtol=0, atol=1e-12)
        assert abs(sum(expected) - 1) < 1e-12  # normalised: fed these events, NLTK has no start-of-text quirk
    test = _ids(HELD_OUT, ALPHABET)
    expected = [lm.score(str(test[i]), nltk_context(test[max(0, i - order + 1) : i])) for i in range(1, len(test))]
    np.testing.assert_allclose(kn.token_probs(test), expected, rtol=0, atol=1e-12)


def test_default_mode_differs_from_reference_only_by_the_floor() -> None:
    """With the uniform floor the unigram level is discounted too: the two modes differ, and only the default one
    gives a token never seen in training a non-zero probability."""
    ids, V = _ids(TEXT, ALPHABET), len(ALPHABET)
    floor, reference = KneserNey.fit(ids, V, 3, 0.75), KneserNey.fit(ids, V, 3, 0.75, uniform_floor=False)
    unseen = ALPHABET.index("#")
    assert reference.distribution(np.array([0, 1]))[unseen] == 0
    assert floor.distribution(np.array([0, 1]))[unseen] > 0
    assert not np.allclose(floor.distribution(np.array([0, 1])), reference.distribution(np.array([0, 1])))


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Text A (training) and held-out text B: sentences from one small grammar, split in two."""
    rng = np.random.default_rng(0)
    subjects, verbs, objects = ["the cat", "a dog", "my king", "the lord"], ["sees", "loves", "hath"], ["a mat", "it"]
    lines = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(400)]
    folder = tmp_path_factory.mktemp("ngram_text")
    return _write(folder, "a.txt", "\n".join(lines[:300])), _write(folder, "b.txt", "\n".join(lines[300:]) + " zebra")


def test_cli_round_trip(cli, texts: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = texts
    code, out, err = cli("ngram", "train", a, "--out", tmp_path / "run", "--order", 4, "--unknown", "unk")
    assert code == 0, err
    code, out, err = cli("ngram", "eval", tmp_path / "run", b, "--json")
    assert code == 0, err
    score = json.loads(out)
    # The same numbers from the Python API, counting A alone: B was never seen.
    run = NgramRun.load(tmp_path / "run")
    alphabet = run.tokenizer
    kn = KneserNey.fit(alphabet.encode(a.read_text()), alphabet.vocab_size, 4)
    b_ids = alphabet.encode(b.read_text())
    nats = kn.token_nats(b_ids)
    assert score["tokens"] == len(b_ids) - 1 == score["chars"]
    assert score["nats_per_token"] == pytest.approx(nats.mean(), rel=1e-12)
    assert score["bits_per_char"] == pytest.approx(nats.sum() / math.log(2) / score["chars"], rel=1e-12)
    assert score["unknown"] == sum(c not in a.read_text() for c in b.read_text()[1:]) > 0  # 'zebra' has 'z', 'b'
    # Held out, B costs more than A does, and far less than a uniform guess.
    own = kn.token_nats(alphabet.encode(a.read_text())).mean()
    assert own < score["nats_per_token"] < 0.6 * math.log(alphabet.vocab_size)
    code, first, _ = cli("ngram", "sample", tmp_path / "run", "--seed", 3, "--length", 40, "--prime", "the")
    code2, again, _ = cli("ngram", "sample", tmp_path / "run", "--seed", 3, "--length", 40, "--prime", "the")
    assert code == code2 == 0 and first == again and first.startswith("the") and len(first) == 3 + 40 + 1


def test_word_model_scores_unknown_words_as_one_class(cli, texts: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = texts
    assert cli("ngram", "train", a, "--out", tmp_path / "w", "--tokenizer", "word", "--order", 3)[0] == 0
    code, out, err = cli("ngram", "eval", tmp_path / "w", b)
    assert code == 0, err
    assert "unknown         1 tokens" in out  # 'zebra', mapped to <unk>, with its own (small, non-zero) probability
    run = NgramRun.load(tmp_path / "w")
    p = run.model.distribution(run.tokenizer.encode("the cat sees "))
    assert abs(p.sum() - 1) < 1e-12 and 0 < p[0] < 0.01


def test_saved_model_equals_fitted(texts: tuple[Path, Path], tmp_path: Path) -> None:
    from rnnlab.baselines.ngram import NgramTrainConfig, train

    a, b = texts
    run = train(NgramTrainConfig(inputs=[str(a)], order=3, unknown="unk"), tmp_path / "r")
    kn = KneserNey.fit(run.tokenizer.encode(a.read_text()), run.tokenizer.vocab_size, 3)
    ids = run.tokenizer.encode(b.read_text())
    loaded = NgramRun.load(tmp_path / "r")
    np.testing.assert_array_equal(loaded.model.token_probs(ids), kn.token_probs(ids))
    lines = describe(tmp_path / "r", loaded.config)
    assert [line[:13] for line in lines] == ["model        ", "parameters   ", "discounts    ", "data         "]
    assert f"{kn.num_counts():,} n-gram counts" in lines[1] and "3-gram over char tokens" in lines[0]


def _one_error_line(code: int, err: str) -> bool:
    return code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_hostile_inputs(cli, texts: tuple[Path, Path], tmp_path: Path, trained_run: Path) -> None:
    a, _ = texts
    empty = _write(tmp_path, "empty.txt", "")
    for args in (
        (empty, "--out", tmp_path / "e"),
        (a, "--out", tmp_path / "o", "--order", 0),
        (a, "--out", tmp_path / "d", "--discount", 1.5),
        (tmp_path / "missing.txt", "--out", tmp_path / "m"),
    ):
        code, _, err = cli("ngram", "train", *args)
        assert _one_error_line(code, err), err
        assert not Path(args[2]).exists()  # nothing written
    assert cli("ngram", "train", a, "--out", tmp_path / "run", "--order", 2)[0] == 0
    assert _one_error_line(*cli("ngram", "train", a, "--out", tmp_path / "run")[::2])  # exists: no --overwrite
    code, _, err = cli("ngram", "eval", tmp_path, a)  # not a run directory
    assert _one_error_line(code, err) and "not an rnnlab run directory" in err
    code, _, err = cli("ngram", "eval", trained_run, a)  # a network's run
    assert _one_error_line(code, err) and "rnnlab sample" in err
    code, _, err = cli("ngram", "eval", tmp_path / "run", empty)
    assert _one_error_line(code, err) and "no tokens" in err
    weights = tmp_path / "run" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-9])
    code, _, err = cli("ngram", "eval", tmp_path / "run", a)
    assert _one_error_line(code, err) and "model.safetensors" in err
