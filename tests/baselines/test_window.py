"""The feed-forward window language model (rnnlab.baselines.window): a distribution over whole texts, an exact
score equal to a hand loop over positions, learning what a window of two tokens determines, and its commands."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.baselines.window import WindowConfig, WindowModel, WindowNet, describe, fit, token_nats
from rnnlab.config import TrainConfig
from rnnlab.data.tokenizers import CharTokenizer, WordTokenizer
from rnnlab.metrics import LN2, Score
from rnnlab.rundir import read_run


def random_net(vocab_size: int, context: int, direct: bool = True, seed: int = 0) -> WindowNet:
    torch.manual_seed(seed)
    net = WindowNet(WindowConfig(vocab_size=vocab_size, context=context, embed=4, hidden=6, direct=direct))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.7)  # every term matters, the direct connections included
    return net.double().eval()


def test_the_probabilities_of_every_continuation_sum_to_one() -> None:
    """Given its first token, the scores of all V^4 continuations of a 5-token text are a distribution: each
    window's probabilities over the V tokens (never the start symbol) sum to 1, and `token_nats` gives each
    position the window before it, padded with the start symbol (a misaligned window would break the sum)."""
    V, L = 3, 5
    net = random_net(V, context=3)
    start = torch.full((1, 3), V)
    assert net.log_probs(start).shape == (1, V)
    for first in range(V):
        texts = [(first, *rest) for rest in itertools.product(range(V), repeat=L - 1)]
        total = sum(math.exp(-token_nats(net, np.array(t)).sum()) for t in texts)
        assert total == pytest.approx(1.0, abs=1e-9)


def hand_nats(net: WindowNet, ids: np.ndarray) -> float:
    """−log P summed over positions 1..L-1, each from its window built by hand: the last n - 1 tokens, the start
    symbol where the text has none."""
    n, start, total = net.config.context, net.config.start, 0.0
    for i in range(1, len(ids)):
        window = [start] * max(n - i, 0) + [int(t) for t in ids[max(i - n, 0) : i]]
        with torch.no_grad():
            logp = torch.log_softmax(net(torch.tensor([window])).double(), -1)[0]
        total -= float(logp[int(ids[i])])
    return total


@pytest.mark.parametrize("kind", ["char", "word"])
def test_the_exact_score_equals_a_hand_loop_over_positions(kind: str) -> None:
    text = "the cat sat on the mat; the dog sat on the log."
    tokenizer = CharTokenizer.fit([text]) if kind == "char" else WordTokenizer.fit([text])
    ids = tokenizer.encode(text)
    model = WindowModel(random_net(tokenizer.vocab_size, context=4, seed=1), tokenizer)
    score = model.score(text)
    first = 1 if kind == "char" else len("the")  # the first token is context only, as in `rnnlab eval`
    expected = Score.from_totals(hand_nats(model.net, ids), len(ids) - 1, len(text) - first)
    assert (score.tokens, score.chars) == (expected.tokens, expected.chars)
    assert score.nats_per_token == pytest.approx(expected.nats_per_token, rel=1e-6)
    assert score.bits_per_char == pytest.approx(expected.bits_per_char, rel=1e-6)


def bits(counts: Counter) -> float:
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values())


def test_it_learns_a_text_that_the_previous_two_tokens_determine() -> None:
    """x_t = x_{t-1} + x_{t-2} mod 5 (period 20): the previous token alone leaves more than a bit open, the previous
    two none. A window of two learns it to near 0 bits per token; a window of one cannot, nor a unigram."""
    seq = [0, 1]
    while len(seq) < 1000:
        seq.append((seq[-1] + seq[-2]) % 5)
    ids = np.array(seq)
    unigram = bits(Counter(seq))
    after = {a: Counter(b for x, b in itertools.pairwise(seq) if x == a) for a in range(5)}
    bigram = sum(sum(c.values()) * bits(c) for c in after.values()) / (len(seq) - 1)  # H(x_t | x_{t-1})
    assert unigram > 2.0 and bigram > 1.0
    config = TrainConfig(max_steps=300, batch_size=64, lr=1e-2, warmup=0, seed=0)
    learned = {}
    for context in (1, 2):
        torch.manual_seed(0)
        net = WindowNet(WindowConfig(vocab_size=5, context=context, embed=8, hidden=32))
        fit(net, ids, config)
        learned[context] = token_nats(net, ids).mean() / LN2
    assert learned[2] < 0.05, learned
    assert learned[1] > 0.8 * bigram, learned


# ---- the commands ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("window")
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "log"]
    (folder / "train.txt").write_text(" ".join(rng.choice(words, 3000)) + "\n")
    (folder / "held.txt").write_text(" ".join(rng.choice(words, 300)) + "\n")
    return folder / "train.txt", folder / "held.txt"


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_eval_sample_and_describe_round_trip(
    cli: Callable[..., tuple[int, str, str]], text_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train, held = text_files
    out = tmp_path / "runs" / "window"
    code, stdout, err = cli("window", "train", train, "--tokenizer", "word", "--context", 3, "--max-steps", 150,
                            "--embed", 8, "--hidden", 16, "--out", out)  # fmt: skip
    assert code == 0, err
    assert "run saved in" in err and "best validation" in err  # the console writes to stderr
    config = read_run(out, "window")
    assert config["model"]["context"] == 3 and config["train"]["tokenizer"] == "word"
    assert {"config.json", "tokenizer.json", "model.safetensors", "metrics.jsonl", "tokens/train.bin"} <= set(
        files_under(out)
    )
    code, stdout, err = cli("window", "eval", out, held, "--json")
    assert code == 0, err
    score = json.loads(stdout)
    assert set(score) == set(Score.from_totals(1.0, 1, 1).to_dict())  # `rnnlab eval --json`'s keys
    words = held.read_text().split(" ")
    assert score["tokens"] == 2 * len(words) - 1  # words, the spaces between, the final newline; not the first
    assert score["chars"] == len(held.read_text()) - len(words[0])
    assert score["nats_per_token"] < 0.7 * math.log(config["model"]["vocab_size"])  # the spaces are learned
    code, again, _ = cli("window", "eval", out, held)
    assert code == 0 and f"{score['bits_per_char']:.4f}" in again
    code, first, _ = cli("window", "sample", out, "--length", 20, "--seed", 3, "--prime", "the cat")
    code2, second, _ = cli("window", "sample", out, "--length", 20, "--seed", 3, "--prime", "the cat")
    assert code == code2 == 0 and first == second and first.startswith("the cat")
    assert len(first) > len("the cat\n") and set(first) <= set(train.read_text() + "<unk>")  # pieces it knows
    lines = describe(out, config)
    assert all(line[:13].rstrip() and line[12] == " " for line in lines)
    assert any(line.startswith("model ") and "3 previous tokens" in line for line in lines)


def corrupt_weights(run: Path) -> None:
    (run / "model.safetensors").write_bytes(b"not safetensors")


def other_kind(run: Path) -> None:
    data = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(data | {"kind": "lm"}))


def edited_context(run: Path) -> None:
    data = json.loads((run / "config.json").read_text())
    data["model"]["context"] = 9
    (run / "config.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A char run of a few steps, copied by the hostile tests that damage it."""
    from rnnlab.baselines.window import train

    folder = tmp_path_factory.mktemp("small")
    (folder / "a.txt").write_text("abcabcabd " * 50)
    config = TrainConfig(inputs=[str(folder / "a.txt")], max_steps=5, batch_size=8)
    return train(folder / "run", WindowConfig(context=2, embed=4, hidden=4), config, progress=False).run_dir


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "{missing}", "--out", "{new}"], "input not found"),
        (["train", "{text}", "--context", "0", "--out", "{new}"], "--context must be a whole number >= 1"),
        (["train", "{text}", "--hidden", "-3", "--out", "{new}"], "--hidden must be a whole number >= 1"),
        (["train", "{text}", "--max-steps", "0", "--out", "{new}"], "--max-steps must be >= 1"),
        (["train", "{text}", "--lr", "nan", "--out", "{new}"], "--lr must be a finite number"),
        (["train", "{empty}", "--out", "{new}"], "the training input is empty"),
        (["train", "{binary}", "--out", "{new}"], "binary"),
        (["train", "{text}", "--out", "{full}"], "already exists"),
        (["train", "{text}", "--out", "{full}", "--overwrite"], "is not one, so it is left alone"),
        (["eval", "{full}", "{text}"], "no config.json"),
        (["eval", "{run}", "{missing}"], "input not found"),
        (["eval", "{run}", "{one}"], "no tokens to score"),
        (["eval", "{run}", "{unseen}"], "not in the model's vocabulary"),
        (["eval", "{weights}", "{text}"], "corrupt or truncated"),
        (["eval", "{kind}", "{text}"], "(lm run), not a feed-forward window language model"),
        (["eval", "{context}", "{text}"], "config.json says"),
        (["sample", "{run}", "--temperature", "-1"], "--temperature must be a finite number >= 0"),
        (["sample", "{run}", "--prime", "xyz"], "not in the model's vocabulary"),
    ],
)
def test_hostile_input_is_one_error_line_and_nothing_is_written(
    cli: Callable[..., tuple[int, str, str]], small_run: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    import shutil

    places = {"missing": tmp_path / "missing.txt", "new": tmp_path / "out" / "run", "full": tmp_path / "full"}
    for name, damage in (("weights", corrupt_weights), ("kind", other_kind), ("context", edited_context)):
        shutil.copytree(small_run, tmp_path / name)
        damage(tmp_path / name)
        places[name] = tmp_path / name
    contents = {"text": "abcabc\n", "empty": "", "one": "a", "unseen": "abcxyz"}
    for name, text in contents.items():
        (tmp_path / f"{name}.txt").write_text(text)
        places[name] = tmp_path / f"{name}.txt"
    places["binary"] = tmp_path / "binary.bin"
    places["binary"].write_bytes(bytes(range(256)) * 4)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    places["run"] = small_run
    before, run_before = files_under(tmp_path), files_under(small_run)
    code, stdout, err = cli("window", *[a.format(**places) for a in args])
    assert code == 2, (stdout, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert files_under(tmp_path) == before and files_under(small_run) == run_before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["context", "full", "kind", "weights"]
