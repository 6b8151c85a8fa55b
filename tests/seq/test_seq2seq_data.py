"""Sequence to sequence on the user's data: pairs files, tokenisation, learning, the train/eval/predict
commands end to end, vector sources, and hostile input."""

from __future__ import annotations

import io
import random
import re
import shutil
import sys
from pathlib import Path

import pytest

from rnnlab.errors import RnnlabError
from rnnlab.seq.seq2seq import Seq2Seq, Side, builtin_data, most_common_baseline, read_pairs
from rnnlab.seq.sequence import SeqConfig
from rnnlab.seq.vectors import write_vector_sequences
from rnnlab.tasks.seq2seq_toys import DIGIT_WORDS
from rnnlab.tasks.video import moving_shapes

FIXTURE = Path(__file__).parent.parent / "fixtures" / "runs" / "seq2seq"
SMALL = ["--hidden", "32", "--embed", "16", "--lr", "1e-2", "--batch-size", "32"]


def spelled(n: int, seed: int, longest: int = 3) -> list[str]:
    """`407<TAB>four zero seven` lines: characters in, words out."""
    rng = random.Random(seed)
    numbers = ["".join(rng.choice("0123456789") for _ in range(rng.randint(1, longest))) for _ in range(n)]
    return [f"{x}\t{' '.join(DIGIT_WORDS[int(d)] for d in x)}" for x in numbers]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    path.write_text("\n".join(spelled(400, seed=0)) + "\n", encoding="utf-8")
    return path


def _exact(err: str) -> tuple[float, float]:
    """(model's exact match, most common target's) from a report line."""
    found = re.search(r"exact match ([\d.]+).*most common target: exact ([\d.]+)", " ".join(err.split()))
    assert found, err
    return float(found[1]), float(found[2])


def test_train_eval_predict_and_plot_attention_end_to_end(tmp_path, cli, pairs_file, monkeypatch):
    run, png = tmp_path / "run", tmp_path / "attention.png"
    args = ["--source-tokens", "char", "--target-tokens", "word", "--attention", "additive", "--bidirectional"]
    code, _, err = cli(
        "seq2seq", "train", pairs_file, "--out", run, *args, "--max-steps", "200", *SMALL, "--plot-attention", png
    )
    assert code == 0, err
    exact, baseline = _exact(err)
    assert exact > 0.3 > baseline  # 40 held-out pairs; the most common target is right at most a few times
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    assert imread(png).shape[0] > 100 and imread(png)[..., :3].std() > 0.05  # a drawn picture, not blank

    held_out = tmp_path / "more.tsv"
    held_out.write_text("\n".join(spelled(30, seed=1)) + "\n")
    code, _, err = cli("seq2seq", "eval", run, held_out, "--beam", "2")
    assert code == 0 and "BLEU-4" in err and "30 pairs" in " ".join(err.split())
    code, out, _ = cli("seq2seq", "predict", run, "407", "12")
    assert code == 0 and out.count("\t") == 2 and all(line.split("\t")[0] for line in out.splitlines())
    sources = tmp_path / "sources.txt"
    sources.write_text("407\n\n12\n")
    code, from_file, _ = cli("seq2seq", "predict", run, "--sources", sources)
    monkeypatch.setattr(sys, "stdin", io.StringIO("407\n12\n"))
    code_stdin, from_stdin, _ = cli("seq2seq", "predict", run)
    assert code == code_stdin == 0 and from_file == from_stdin == out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("123\tone two three\n4 5 6\n", "pairs.tsv:2: expected source<TAB>target, found 0 tabs"),
        ("", "pairs.tsv has no source<TAB>target lines"),
        ("123\tone two three\n\tfour\n", "pairs.tsv:2: empty source"),
        ("a\tb\tc\n", "pairs.tsv:1: expected source<TAB>target, found 2 tabs"),
    ],
)
def test_hostile_pairs_files_are_one_error_line_and_write_nothing(tmp_path, cli, content, message):
    data = tmp_path / "pairs.tsv"
    data.write_text(content)
    code, _, err = cli("seq2seq", "train", data, "--out", tmp_path / "run", "--max-steps", "1")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(RnnlabError, match=re.escape(message)):
        read_pairs(data)


def test_impossible_options_are_refused_before_training(tmp_path, cli, pairs_file):
    run = tmp_path / "run"
    for extra, message in [
        (["--plot-attention", tmp_path / "a.png"], "--plot-attention needs a model with attention"),
        (["--attention", "cosine"], "unknown attention 'cosine'"),
        (["--tokens", "morpheme"], "unknown tokens 'morpheme'"),
        (["--bidirectional", "--hidden", "7"], "needs an even --hidden"),
        (["--beam", "0"], "--beam must be >= 1"),
    ]:
        code, _, err = cli("seq2seq", "train", pairs_file, "--out", run, "--max-steps", "1", *extra)
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not run.exists() and not (tmp_path / "a.png").exists()


def test_old_run_evaluates_on_a_pairs_file_and_new_runs_record_their_shape(tmp_path, cli):
    run = tmp_path / "old"
    shutil.copytree(FIXTURE, run)
    data = tmp_path / "digits.tsv"
    data.write_text("1 2 3\t3 2 1\n4 5 6\t6 5 4\n")
    code, _, err = cli("seq2seq", "eval", run, data)
    assert code == 0 and "2 pairs" in " ".join(err.split())
    model = Seq2Seq.load(run)
    assert model.module.attention_kind == "none" and not model.module.bidirectional
    assert model.sides[0].kind == "auto"


def test_bpe_and_word_sides_round_trip_their_text():
    texts = ["the cat sat on the mat", "a dog ran far away", "the cat ran"] * 5
    bpe = Side.fit("bpe", texts, 300)
    for text in ["the cat sat", "a mat ran far"]:
        assert bpe.join(bpe.split(text)) == text
        assert bpe.units(bpe.split(text)) == text.split()
    word = Side.fit("word", texts)
    assert word.split("the  cat ") == ["the", "cat"] and word.join(["the", "cat"]) == "the cat"
    assert Side.from_dict(bpe.to_dict()).split("the cat") == bpe.split("the cat")


def test_vector_sources_describe_clips_better_than_the_most_common_description(tmp_path, cli):
    data = builtin_data("video", 400, length=0, seed=0)
    config = SeqConfig("gru", hidden=32, embed=16, steps=150, lr=1e-2)
    model = Seq2Seq.train(data.train, config, attention="dot", sides=data.sides)
    test = data.test[:200]
    scores, baseline = model.evaluate(test), most_common_baseline(data.train, test)
    assert scores.token_accuracy > baseline.token_accuracy + 0.15

    clips = tmp_path / "clips.npz"
    write_vector_sequences(moving_shapes(40, seed=2), clips)
    code, _, err = cli("seq2seq", "train", clips, "--out", tmp_path / "run", "--max-steps", "2", "--hidden", "8")
    assert code == 0 and "exact match" in err, err
    code, out, _ = cli("seq2seq", "predict", tmp_path / "run", "--sources", clips)
    assert code == 0 and len(out.splitlines()) == 40 and out.splitlines()[0].endswith("\t0")


def test_spell_task_reads_characters_and_writes_words(tmp_path, cli):
    run = tmp_path / "spell"
    code, _, err = cli("seq2seq", "train", "--task", "spell", "--length", "3", "--examples", "300", "--out", run,
                       "--max-steps", "150", *SMALL)  # fmt: skip
    assert code == 0, err
    code, out, _ = cli("seq2seq", "predict", run, "407")
    words = out.split("\t")[0].split(" ")  # words, one space apart (not the characters of "fourzeroseven")
    assert code == 0 and len(words) == 3 and set(words) <= set(DIGIT_WORDS) and words[0] == "four"
