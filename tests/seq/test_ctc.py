"""CTC line recognition: the loss against paths summed by hand, the prefix beam search against brute force,
greedy decoding, CER, learning on rendered lines, padding, and the `rnnlab ctc` commands end to end."""

from __future__ import annotations

import itertools
import json
import math

import matplotlib.image
import numpy as np
import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.seq.ctc import (
    CTCNet,
    LineReader,
    Reading,
    baselines,
    cer,
    collapse,
    ctc_loss,
    describe,
    edit_distance,
    frames,
    greedy_decode,
    pad_frames,
    prefix_beam,
    reverse_padded,
)
from rnnlab.seq.sequence import SeqConfig
from rnnlab.tasks.lines import make_lines

BLANK = 0


def labelling(path: tuple[int, ...]) -> tuple[int, ...]:
    """Collapse a frame path independently of the module: one symbol per run, blanks dropped."""
    return tuple(symbol for symbol, _ in itertools.groupby(path) if symbol != BLANK)


def path_sums(probs: np.ndarray) -> dict[tuple[int, ...], float]:
    """Every labelling's probability: the sum over all T^C frame paths that collapse to it."""
    T, C = probs.shape
    sums: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(C), repeat=T):
        p = math.prod(probs[t, c] for t, c in enumerate(path))
        sums[labelling(path)] = sums.get(labelling(path), 0.0) + p
    return sums


def random_log_probs(T: int, C: int, seed: int) -> torch.Tensor:
    return torch.log_softmax(torch.randn(T, C, generator=torch.Generator().manual_seed(seed)) * 2, dim=-1)


def test_ctc_loss_matches_hand_summed_paths():
    lp = random_log_probs(2, 3, 0)
    y = lp.exp().numpy()  # y[t, c]: class c at frame t; 0 blank, 1 "a", 2 "b"
    # Two frames, target "a": the paths aa, a-, -a.
    by_hand = y[0, 1] * y[1, 1] + y[0, 1] * y[1, 0] + y[0, 0] * y[1, 1]
    loss = ctc_loss(lp[None], torch.tensor([2]), [[1]])
    assert float(loss) == pytest.approx(-math.log(by_hand), rel=1e-5)
    # Two frames, target "ab": the one path ab. Target "aa" cannot fit (it needs a blank between): zero.
    assert float(ctc_loss(lp[None], torch.tensor([2]), [[1, 2]])) == pytest.approx(-math.log(y[0, 1] * y[1, 2]) / 2)
    assert float(ctc_loss(lp[None], torch.tensor([2]), [[1, 1]])) == 0.0
    # Three frames, every target of up to three letters, against all 27 paths enumerated.
    lp3 = random_log_probs(3, 3, 1)
    sums = path_sums(lp3.exp().numpy().astype(np.float64))
    assert sum(sums.values()) == pytest.approx(1.0)
    assert sums[(1, 1)] == pytest.approx(math.prod(lp3.exp()[t, c].item() for t, c in enumerate((1, 0, 1))))
    for target, p in sums.items():
        if target:
            expected = -math.log(p) / len(target)
            assert float(ctc_loss(lp3[None], torch.tensor([3]), [list(target)])) == pytest.approx(expected, rel=1e-5)
    # A batch with padding: each row's loss as alone.
    batch = torch.stack([lp3, torch.cat([lp, torch.zeros(1, 3)])])
    both = ctc_loss(batch, torch.tensor([3, 2]), [[1, 2], [1]])
    assert float(both) == pytest.approx((-math.log(sums[(1, 2)]) / 2 - math.log(by_hand)) / 2, rel=1e-5)


@pytest.mark.parametrize(("T", "C"), [(3, 3), (4, 3), (5, 3), (4, 4)])
def test_prefix_beam_search_equals_brute_force(T, C):
    for seed in range(6):
        lp = random_log_probs(T, C, seed * 10 + T).double().numpy()
        sums = path_sums(np.exp(lp))
        best = max(sums, key=sums.get)
        found, logp = prefix_beam(lp, width=10_000, min_prob=0)
        assert tuple(found) == best
        assert logp == pytest.approx(math.log(sums[best]))
        narrow, narrow_logp = prefix_beam(lp, width=2, min_prob=0)  # pruned: paths are lost, never invented
        assert narrow_logp <= math.log(sums[tuple(narrow)]) + 1e-9


def test_greedy_decoding_collapses_repeats_and_drops_blanks():
    path = [1, 1, 0, 1, 2, 2, 0, 0, 2]
    assert collapse(path) == [1, 1, 2, 2]
    log_probs = np.log(np.full((len(path), 3), 0.1))
    log_probs[np.arange(len(path)), path] = np.log(0.8)
    assert greedy_decode(log_probs) == [1, 1, 2, 2]
    assert greedy_decode(np.log(np.array([[0.9, 0.05, 0.05]] * 4))) == []


def test_character_error_rate_is_edit_distance_over_reference_length():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("ab", "ba") == 2
    assert cer(["kiten", "", "xy"], ["kitten", "ab", "xy"]) == pytest.approx((1 + 2 + 0) / 10)
    scores = baselines(["aab", "a"], ["ab", "b"])
    assert scores["empty output"] == 1.0
    assert scores["'a' x mean length"] == pytest.approx((1 + 2) / 3)  # guess "aa": ab -> 1 edit, b -> 2
    with pytest.raises(RnnlabError, match="no characters"):
        cer([""], [""])


def test_bidirectional_network_ignores_padding():
    x = torch.arange(12.0).view(2, 3, 2)
    assert reverse_padded(x, torch.tensor([3, 2]))[1].tolist() == [[8, 9], [6, 7], [10, 11]]
    config = SeqConfig("lstm", hidden=8, layers=2, embed=6)
    net = CTCNet(config, features=5, classes=4, bidirectional=True).eval()
    short, long = torch.randn(4, 5), torch.randn(7, 5)
    batch, lengths = pad_frames([short, long])
    with torch.no_grad():
        padded, alone = net(batch, lengths), net(short[None], torch.tensor([4]))
    assert torch.allclose(padded[0, :4], alone[0], atol=1e-6)
    assert torch.allclose(padded.exp().sum(-1), torch.ones(2, 7))


def test_training_on_a_few_dozen_lines_beats_the_image_blind_baselines(tmp_path):
    images, texts = make_lines(48, seed=0, height=16, max_chars=6, chars="abc")
    test_images, test_texts = make_lines(40, seed=1, height=16, max_chars=6, chars="abc")
    assert frames(images[0], 2).shape == (-(-images[0].shape[1] // 2), 32)
    config = SeqConfig("gru", hidden=32, embed=32, steps=150, batch_size=16, lr=1e-2)
    model = LineReader.train(images, texts, config, Reading(height=16, window=1))
    blind = min(baselines(texts, test_texts).values())
    greedy, beam = model.cer(test_images, test_texts), model.cer(test_images, test_texts, beam=4)
    assert greedy < 0.5 * blind and beam < 0.5 * blind
    again = LineReader.load(model.save(tmp_path / "run", "lines"))
    assert again.decode(test_images[:5]) == model.decode(test_images[:5])
    assert again.alphabet == " abc"


def test_ctc_commands_end_to_end(tmp_path, cli):
    data, run = tmp_path / "lines", tmp_path / "run"
    code, out, _ = cli("task", "lines", "--out", data, "--count", "24", "--height", "16")
    assert code == 0 and "24 line images" in out
    rows = (data / "labels.tsv").read_text().splitlines()
    assert len(rows) == 24 and all(row.split("\t")[0] in {p.name for p in data.glob("*.png")} for row in rows)
    small = ["--height", "16", "--max-steps", "20", "--hidden", "16", "--embed", "16"]
    code, _, err = cli("ctc", "train", data, "--out", run, *small)
    assert code == 0 and "held-out CER" in err and "empty output 1.000" in err
    code, out, _ = cli(
        "ctc", "decode", run, data / "00.png", data / "01.png", "--beam", "3", "--plot", tmp_path / "d.png"
    )
    lines = out.splitlines()
    assert code == 0 and [line.split("\t")[1] for line in lines] == [str(data / "00.png"), str(data / "01.png")]
    code, out, _ = cli("ctc", "eval", run, data, "--plot", tmp_path / "e.png")
    assert code == 0 and out.startswith("CER ") and "on 24 lines" in out
    for png in ("d.png", "e.png"):
        pixels = matplotlib.image.imread(tmp_path / png)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels[..., :3].std() > 0.05  # a real picture
    code, out, _ = cli("info", run)
    assert code == 0 and "ctc: a CTC sequence labeller" in out
    config = json.loads((run / "config.json").read_text())
    info = "\n".join(describe(run, config))
    assert f"1 x bidirectional gru 16 -> blank + {len(config['alphabet'])} characters" in info
    assert f"held-out CER {config['held_out_cer']['cer']}" in info
    code, _, err = cli("classify", "predict", run, "text")
    assert code == 2 and "ctc run" in err


def test_bad_input_is_one_error_line_and_nothing_written(tmp_path, cli):
    data = tmp_path / "lines"
    cli("task", "lines", "--out", data, "--count", "12", "--height", "16")
    small = ["--height", "16", "--max-steps", "5", "--hidden", "8", "--embed", "8"]

    def fails(*args: object, match: str) -> None:
        code, _, err = cli(*args)
        assert code == 2 and err.startswith("error: ") and match in err and err.count("\n") == 1, err

    (data / "extra.png").write_bytes((data / "00.png").read_bytes())
    fails("ctc", "train", data, "--out", tmp_path / "r1", *small, match="have no line in labels.tsv, e.g. extra.png")
    (data / "extra.png").unlink()
    transcript = (data / "labels.tsv").read_text()
    (data / "labels.tsv").write_text(transcript + "gone.png\tabc\n")
    fails("ctc", "train", data, "--out", tmp_path / "r1", *small, match="not in")
    (data / "labels.tsv").write_text(transcript)
    (data / "03.png").write_bytes(b"not an image")
    fails("ctc", "train", data, "--out", tmp_path / "r1", *small, match="cannot read image")
    (tmp_path / "empty").mkdir()
    fails("ctc", "train", tmp_path / "empty", "--out", tmp_path / "r1", *small, match="has no labels.tsv")
    fails("ctc", "train", "--out", tmp_path / "r1", "--task", "nope", match="unknown task 'nope'")
    assert not (tmp_path / "r1").exists()

    good = tmp_path / "good"
    cli("task", "lines", "--out", good, "--count", "12", "--height", "16", "--seed", "3")
    code, _, _ = cli("ctc", "train", good, "--out", tmp_path / "run", *small)
    assert code == 0
    (good / "labels.tsv").write_text((good / "labels.tsv").read_text().replace("\t", "\tÉ", 1))
    fails(
        "ctc", "eval", tmp_path / "run", good, "--plot", tmp_path / "e.png", match="'É' are not in the run's alphabet"
    )
    fails("ctc", "decode", tmp_path / "run", data / "03.png", "--plot", tmp_path / "d.png", match="cannot read image")
    fails("ctc", "decode", tmp_path / "run", good / "00.png", "--beam", "0", match="--beam must be >= 1")
    fails("task", "lines", "--out", tmp_path / "t", "--count", "0", match="--count >= 1")
    assert not (tmp_path / "e.png").exists() and not (tmp_path / "d.png").exists() and not (tmp_path / "t").exists()
