"""The sequence commands end to end through `rnnlab.cli.main`: train, save, load, predict; bad input exits 2."""

from __future__ import annotations

import time

import matplotlib.image
import pytest

from rnnlab.tasks.shapes import make_scenes


def test_classify_train_and_predict(tmp_path, cli):
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"good fun {i},pos\nbad dull {i},neg\n" for i in range(10)))
    small = ["--steps", "60", "--hidden", "16", "--lr", "0.01"]
    code, _, err = cli("classify", "train", data, "--out", tmp_path / "c", *small)
    assert code == 0 and "held-out accuracy" in err
    code, out, _ = cli("classify", "predict", str(tmp_path / "c"), "good fun", "bad dull")
    assert code == 0 and out.split("\n")[0].startswith("pos") and out.split("\n")[1].startswith("neg")


def test_seq2seq_train_predict_and_errors(tmp_path, cli):
    run_dir = str(tmp_path / "s")
    small = ["--length", "3", "--examples", "500", "--steps", "20", "--hidden", "16"]
    code, _, err = cli("seq2seq", "train", "--out", run_dir, "--task", "sort", *small)
    assert code == 0 and "exact match" in err
    code, out, _ = cli("seq2seq", "predict", run_dir, "3 1 2", "--beam", "3")
    assert code == 0 and len(out.split("\t")) == 2
    code, _, err = cli("seq2seq", "train", "--out", run_dir, "--task", "nope")
    assert code == 2 and err.startswith("error: unknown task 'nope'")
    code, _, err = cli("tag", "predict", run_dir, "1", "0")
    assert code == 2 and "holds an encoder-decoder (seq2seq run), not a sequence tagger" in err


def test_tag_and_timeseries_commands(tmp_path, cli):
    code, _, err = cli("tag", "train", "--out", str(tmp_path / "t"), "--examples", "200", "--steps", "20")
    assert code == 0 and "majority tag" in err
    code, out, _ = cli("tag", "predict", str(tmp_path / "t"), "1", "1", "0")
    assert code == 0 and out.count("\t") == 3
    series = tmp_path / "s.csv"
    series.write_text("value\n" + "\n".join(str(i % 7) for i in range(200)) + "\n")
    fit = [series, "--steps", "20", "--window", "20", "--horizon", "3"]
    code, out, err = cli("timeseries", "train", "--out", str(tmp_path / "f"), *fit)
    assert code == 0 and "naive last value" in err and len(out.strip().splitlines()[-1].split()) == 3


def test_vqa_train_predict_and_errors(tmp_path, cli):
    run_dir = str(tmp_path / "v")
    code, _, err = cli("vqa", "train", "--out", run_dir, "--scenes", "50", "--steps", "10", "--hidden", "16")
    assert code == 0 and "held-out accuracy" in err and "majority answer" in err
    assert (tmp_path / "v" / "samples.png").stat().st_size > 0
    questions = ["what colour is the circle?", "is there a red square"]
    code, out, _ = cli("vqa", "predict", run_dir, *questions, "--plot", tmp_path / "a.png")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2 and all(line.count("\t") == 3 and "(true: " in line for line in lines)
    assert (tmp_path / "a.png").stat().st_size > 0
    code, _, err = cli("vqa", "predict", run_dir, "what colour is the hexagon?")
    assert code == 2 and err.startswith("error: word(s) not seen in training questions: hexagon")
    code, out, _ = cli("vqa", "predict", run_dir, questions[0], "what colour is the hexagon?", questions[1])
    lines = out.strip().splitlines()  # the unknown word spoils only its own question
    assert code == 0 and [line.split("\t")[0] != "?" for line in lines] == [True, False, True]
    assert "(cannot answer: word(s) not seen in training questions: hexagon)" in lines[1]
    code, _, err = cli("vqa", "predict", run_dir, questions[0], "--image", str(tmp_path / "a.png"))
    assert code == 2 and err.startswith("error: ") and "32x32" in err
    picture = tmp_path / "scene.png"
    matplotlib.image.imsave(picture, make_scenes(1, seed=5)[0][0].transpose(1, 2, 0))
    code, out, _ = cli("vqa", "predict", run_dir, questions[0], "--image", str(picture))
    assert code == 0 and "(true: ?)" in out
    code, _, err = cli("caption", "predict", run_dir)
    assert code == 2 and "(vqa run), not an image captioner; use `rnnlab vqa predict`" in err


@pytest.mark.parametrize(
    "command",
    [
        ["classify", "train"],
        ["tag", "train", "--examples", "200"],
        ["seq2seq", "train", "--length", "3", "--examples", "200"],
        ["timeseries", "train"],
        ["caption", "train", "--examples", "40"],
        ["vqa", "train", "--scenes", "40"],
    ],
)
def test_every_sequence_trainer_stops_at_max_time_given_as_a_duration(tmp_path, cli, command):
    """One budget vocabulary: `--max-time` is a duration for every trainer and ends training before --max-steps."""
    started = time.perf_counter()
    code, _, err = cli(
        *command, "--out", tmp_path / "run", "--hidden", "8", "--max-steps", "10000000", "--max-time", "1s"
    )
    assert code == 0, err
    assert time.perf_counter() - started < 60
    code, _, err = cli(*command, "--out", tmp_path / "other", "--max-time", "soon")
    assert code == 2 and err == "error: cannot read duration 'soon'; use e.g. 90s, 20m or 1.5h\n"
