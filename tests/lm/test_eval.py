"""`rnnlab eval` through the real command line: honest n-gram memory, and bad input as one `error:` line."""

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import make_text

import rnnlab
from rnnlab.data.prepare import TokenStore
from rnnlab.lm.dynamic import DynamicConfig
from rnnlab.lm.model import LanguageModel, text_nats
from rnnlab.lm.ngram import NgramConfig
from rnnlab.rundir import WEIGHTS, atomic_save_tensors


def assert_one_error(result: tuple[int, str, str], *words: str) -> str:
    """Exit status 2 and exactly one line on stderr, `error: ...`, holding each of `words`."""
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.py"
    path.write_text(make_text(2000, seed=3))
    return path


def test_mix_memory_holds_the_training_split_not_the_validation_split(tmp_path: Path, corpus_file: Path, tiny, cli):
    """Run A validated on V. Run B is A with its token store swapped for that of a run trained on the same
    training file but validated on another text: same weights, tokenizer and training split, only the
    validation split differs. An honest memory (training split + text already scored) gives V the same
    mixed score in A as its byte-identical copy in B; a memory holding A's validation split has seen V."""
    val, other = tmp_path / "v.py", tmp_path / "other.py"
    letters = sorted(set(corpus_file.read_text()) - {"\n"})
    noise = "".join(random.Random(1).choices(letters, k=2000))  # predictable only by having memorised V
    val.write_text(make_text(2000, seed=1) + "\n" + noise)
    other.write_text(make_text(4000, seed=2))
    run_a, run_c, run_b = tmp_path / "a", tmp_path / "c", tmp_path / "b"
    rnnlab.train([str(corpus_file)], out=run_a, val_files=[str(val)], max_steps=20, eval_every=10, **tiny)
    rnnlab.train([str(corpus_file)], out=run_c, val_files=[str(other)], max_steps=1, **tiny)
    shutil.copytree(run_a, run_b)
    shutil.rmtree(run_b / "tokens")
    shutil.copytree(run_c / "tokens", run_b / "tokens")
    store_a, store_b = TokenStore.open(run_a), TokenStore.open(run_b)
    np.testing.assert_array_equal(store_a.train.tokens, store_b.train.tokens)
    copy = tmp_path / "v_copy.py"
    shutil.copyfile(val, copy)

    code_a, out_a, _ = cli("eval", run_a, val, "--mix", "--json")
    code_b, out_b, _ = cli("eval", run_b, copy, "--mix", "--json")
    assert code_a == code_b == 0
    in_a, in_b = json.loads(out_a)["bits_per_char"], json.loads(out_b)["bits_per_char"]
    assert abs(in_a - in_b) < 0.05

    # The comparison can fail: with A's validation split in the memory, V's random half would be nearly free.
    lm = LanguageModel.load(run_a)
    ids = lm.tokenizer.encode(val.read_text())
    history = np.concatenate([store_a.train.tokens, store_a.val.tokens])
    leaked = text_nats(lm.module, ids, mix=NgramConfig(), memory=history)
    assert leaked.sum() / math.log(2) / (len(val.read_text()) - 1) < in_a - 0.5


@pytest.mark.parametrize("content", ["", "d"])
def test_a_file_with_nothing_to_score_is_an_error(trained_run: Path, tmp_path: Path, cli, content: str):
    path = tmp_path / "short.py"
    path.write_text(content)
    assert_one_error(cli("eval", trained_run, path), str(path), "no tokens to score")


def test_an_empty_file_among_several_is_named(trained_run: Path, sample: Path, tmp_path: Path, cli):
    empty = tmp_path / "empty.py"
    empty.write_text("")
    line = assert_one_error(cli("eval", trained_run, sample, empty), str(empty), "no tokens to score")
    assert str(sample) not in line


def _with_weights(run: Path, tmp_path: Path, change) -> Path:
    """A copy of `run` whose weights went through `change(module)` (saved as the trainer saves them)."""
    copy = tmp_path / "changed"
    shutil.copytree(run, copy)
    lm = LanguageModel.load(copy)
    with torch.no_grad():
        change(lm.module)
    atomic_save_tensors(copy / WEIGHTS, lm.module.state_dict())
    return copy


def test_weights_that_overflow_to_non_finite_scores_are_an_error(trained_run: Path, sample: Path, tmp_path, cli):
    """Finite weights (they load) whose logits overflow to infinity: scoring itself must refuse."""

    def overflow(module):
        module.head.weight.fill_(3e38)
        module.head.bias.fill_(3e38)

    run = _with_weights(trained_run, tmp_path, overflow)
    for flags in ((), ("--json",), ("--mix",), ("--dynamic", "--mix")):
        assert_one_error(cli("eval", run, sample, *flags), "non-finite")


def test_nan_weights_are_an_error(trained_run: Path, sample: Path, tmp_path: Path, cli):
    run = _with_weights(trained_run, tmp_path, lambda module: module.head.bias.fill_(math.nan))
    assert_one_error(cli("eval", run, sample))


def test_dynamic_evaluation_that_diverges_is_an_error(trained_run: Path, sample: Path, cli):
    for mix in ((), ("--mix",)):
        assert_one_error(
            cli("eval", trained_run, sample, "--dynamic", "--dynamic-lr", "1e37", *mix), "non-finite", "--dynamic-lr"
        )


@pytest.mark.parametrize(
    "flags",
    [
        ("--dynamic", "--dynamic-lr", "nan"),
        ("--dynamic", "--dynamic-lr", "inf"),
        ("--dynamic", "--dynamic-lr", "-1"),
        ("--dynamic", "--dynamic-decay", "nan"),
        ("--dynamic", "--dynamic-segment", "0"),
        ("--mix", "--mix-lr", "inf"),
        ("--mix", "--mix-lr", "nan"),
        ("--mix", "--mix-discount", "2"),
        ("--mix", "--mix-discount", "nan"),
        ("--streams", "0"),
        ("--dynamic", "--streams", "4"),
        ("--mix", "--streams", "4"),
    ],
)
def test_bad_dynamic_mix_and_stream_settings_are_one_error_line(trained_run: Path, sample: Path, cli, flags):
    flag = next(f for f in flags[::-1] if f.startswith("--"))
    assert_one_error(cli("eval", trained_run, sample, *flags), flag)


@pytest.mark.parametrize("flags", [(), ("--mix",), ("--dynamic",), ("--streams", "8")])
def test_json_output_is_one_valid_json_object(trained_run: Path, sample: Path, cli, flags):
    code, out, _ = cli("eval", trained_run, sample, "--json", *flags)
    assert code == 0 and len(out.strip().splitlines()) == 1
    score = json.loads(out)
    assert set(score) == {"nats_per_token", "bits_per_char", "perplexity", "tokens", "chars"}
    assert score["tokens"] == 1999 and score["chars"] == 1999
    assert all(math.isfinite(value) for value in score.values())
    assert 0 < score["bits_per_char"] < 6


@pytest.mark.parametrize("options", [{"mix": NgramConfig()}, {"dynamic": DynamicConfig(segment=40)}])
def test_slow_scorings_report_their_progress_to_the_last_token(trained_run: Path, sample: Path, options):
    """What a progress bar shows: each file, tokens done (rising) of the tokens it holds, up to all of them."""
    reports = []
    score = LanguageModel.load(trained_run).score_files([sample], **options, progress=lambda *r: reports.append(r))
    done = [r[1] for r in reports]
    assert {r[0] for r in reports} == {sample} and {r[2] for r in reports} == {score.tokens}
    assert done == sorted(done) and len(done) > 3 and done[-1] == score.tokens
