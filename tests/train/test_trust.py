"""A failed `train` changes nothing: every class of bad input is one `error:` line and exit 2, the run
directory's bytes stay as they were and it still resumes. Also the lock, SIGINT, umask and temporaries."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import rnnlab
from rnnlab import rundir

FLAGS = ["--preset", "tiny", "--hidden", "16", "--embed", "8", "--batch-size", "4", "--seq-len", "16",
         "--eval-every", "5", "--checkpoint-every", "5", "--log-every", "1"]  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path: its bytes and its permission bits."""
    return {
        str(p.relative_to(folder)): p.read_bytes() + oct(p.stat().st_mode).encode()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def one_error_line(code: int, err: str) -> bool:
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


@pytest.fixture
def run(tmp_path: Path, corpus_file: Path, cli) -> Path:
    """A fresh tiny run, 10 steps in."""
    out = tmp_path / "run"
    code, _, err = cli("train", corpus_file, "--out", out, "--max-steps", "10", *FLAGS)
    assert code == 0, err
    return out


def resumes(cli, run: Path, steps: int = 12) -> None:
    code, _, err = cli("train", "--out", run, "--resume", "--max-steps", steps)
    assert code == 0, err
    progress = json.loads(rundir.read_metadata(run / "checkpoint/state.safetensors")["progress"])
    assert progress["step"] == steps


@pytest.mark.parametrize(
    "flags",
    [
        ["--batch-size", "100000"],
        ["--batch-size", "16"],
        ["--seq-len", "8"],
        ["--optimizer", "sgd"],
        ["--momentum", "0.5"],
        ["--tokenizer", "byte"],
        ["--val-fraction", "0.2"],
        ["--seed", "7"],
        ["--hidden", "17"],
        ["--lr", "inf"],
        ["--clip-norm", "nan"],
        ["--epochs", "nan"],
        ["--precision", "fp8"],
        ["--max-time", "9" * 400],
    ],
)
def test_a_refused_resume_changes_nothing_and_the_run_still_resumes(run: Path, cli, flags: list[str]):
    before = snapshot(run)
    code, _, err = cli("train", "--out", run, "--resume", *flags)
    assert one_error_line(code, err), err
    assert snapshot(run) == before
    resumes(cli, run)


@pytest.mark.parametrize(
    "flags",
    [
        ["--lr", "inf"],
        ["--lr", "nan"],
        ["--clip-norm", "nan"],
        ["--epochs", "nan"],
        ["--epochs", "inf"],
        ["--weight-decay", "nan"],
        ["--seed", str(2**70)],
        ["--seed", "-1"],
        ["--max-steps", str(2**70)],
        ["--hidden", "10000000"],
        ["--residual", "--highway"],
        ["--reset-prob", "1.5"],
        ["--max-time", "9" * 400],
    ],
)
def test_impossible_values_are_one_line_and_write_nothing(tmp_path: Path, corpus_file: Path, cli, flags: list[str]):
    code, _, err = cli("train", corpus_file, "--out", tmp_path / "r", "--max-steps", "2", *FLAGS, *flags)
    assert one_error_line(code, err), err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("model", "hidden", "16"),
        ("model", "layers", 1.5),
        ("model", "dropout", "NaN"),
        ("model", "cell", 3),
        ("train", "lr", "fast"),
        ("train", "batch_size", None),
        ("train", "inputs", "x.txt"),
        ("train", "betas", [0.9]),
    ],
)
def test_an_edited_config_is_refused_by_every_command(run: Path, cli, section: str, key: str, value: object):
    config = json.loads((run / "config.json").read_text())
    config[section][key] = float("nan") if value == "NaN" else value
    (run / "config.json").write_text(json.dumps(config))
    before = snapshot(run)
    for args in (
        ["train", "--out", run, "--resume"],
        ["sample", run, "--length", "5"],
        ["eval", run, run / "tokenizer.json"],
    ):
        if section == "train" and args[0] != "train":
            continue
        code, out, err = cli(*args)
        assert one_error_line(code, err), (args, err)
        assert "config.json" in err and out == ""
    assert snapshot(run) == before


def test_config_that_is_not_an_object_is_refused(run: Path, cli):
    (run / "config.json").write_text(json.dumps({"model": 5, "train": []}))
    code, _, err = cli("sample", run)
    assert one_error_line(code, err), err


def test_a_tokenizer_that_does_not_match_the_weights_is_refused(run: Path, cli):
    tokenizer = json.loads((run / "tokenizer.json").read_text())  # Hugging Face's format
    vocab = tokenizer["model"]["vocab"]
    tokenizer["model"]["vocab"] = {c: i - 1 for c, i in vocab.items() if i}  # one character fewer: ids would shift
    (run / "tokenizer.json").write_text(json.dumps(tokenizer))
    for args in (["sample", run, "--length", "5"], ["train", "--out", run, "--resume"]):
        code, out, err = cli(*args)
        assert one_error_line(code, err), err
        assert out == ""


def test_nan_weights_and_edited_weights_are_refused(run: Path, corpus_file: Path, cli):
    weights = run / "model.safetensors"
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name][0] = float("nan")
    save_file(tensors, weights)  # no content hash: the finite check must catch it
    for args in (["sample", run, "--length", "5"], ["eval", run, corpus_file]):
        code, out, err = cli(*args)
        assert one_error_line(code, err) and "NaN" in err and out == "", err
    rundir.atomic_save_tensors(weights, {k: torch.nan_to_num(v) for k, v in tensors.items()})
    assert cli("sample", run, "--length", "5")[0] == 0
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x10  # one bit of the last weight: values stay finite, the hash no longer matches
    weights.write_bytes(bytes(data))
    code, _, err = cli("sample", run, "--length", "5")
    assert one_error_line(code, err) and "changed or damaged" in err, err


def test_an_edited_checkpoint_is_refused_and_leaves_the_run_as_it_was(run: Path, cli):
    state = run / "checkpoint/state.safetensors"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    before = snapshot(run)
    code, _, err = cli("train", "--out", run, "--resume", "--max-steps", "12")
    assert one_error_line(code, err), err
    assert snapshot(run) == before


def test_divergence_always_ends(tmp_path: Path, corpus_file: Path, cli, monkeypatch):
    """Every update writes NaN weights (a finite loss can still step into them): rollbacks are counted in
    total, so training stops with one error line and the last good checkpoint is kept for a resume."""
    from rnnlab.lm import train as trainer

    real_step = torch.optim.Adam.step

    def poisoned(self: torch.optim.Adam, *args: object, **kwargs: object) -> object:
        result = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("nan"))
        return result

    out = tmp_path / "r"
    assert cli("train", corpus_file, "--out", out, "--max-steps", "5", *FLAGS)[0] == 0
    before = snapshot(out / "checkpoint")
    monkeypatch.setattr(torch.optim.Adam, "step", poisoned)
    code, _, err = cli("train", "--out", out, "--resume", "--max-steps", "500")
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: training kept diverging (non-finite weights)"), err
    assert sum("rolled back" in line for line in lines) == trainer.MAX_ROLLBACKS
    assert snapshot(out / "checkpoint") == before
    monkeypatch.undo()
    resumes(cli, out, 7)


def test_a_rollback_does_not_rewind_the_time_budget(tmp_path: Path, corpus_file: Path, tiny: dict, monkeypatch):
    from rnnlab.lm import train as trainer

    calls = {"n": 0}
    finite = trainer._Loop._weights_finite

    def fail_every_third(self: trainer._Loop) -> bool:
        calls["n"] += 1
        return finite(self) and calls["n"] % 3 != 0

    monkeypatch.setattr(trainer._Loop, "_weights_finite", fail_every_third)
    monkeypatch.setattr(trainer, "MAX_ROLLBACKS", 10**6)
    start = time.perf_counter()
    result = rnnlab.train([str(corpus_file)], out=tmp_path / "r", max_time=3.0, checkpoint_every=1000, **tiny)
    assert time.perf_counter() - start < 30
    assert result.elapsed >= 3.0


def test_disk_full_while_checkpointing_keeps_the_last_checkpoint(run: Path, cli, monkeypatch):
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rundir, "save_file", full)
    before = snapshot(run / "checkpoint")
    code, _, err = cli("train", "--out", run, "--resume", "--max-steps", "15")
    lines = err.strip().splitlines()  # progress lines come first: training ran until its first write
    assert code == 2 and lines[-1] == "error: No space left on device" and "Traceback" not in err, err
    assert sum(line.startswith("error:") for line in lines) == 1
    assert snapshot(run / "checkpoint") == before
    assert not list(run.rglob("*.tmp"))
    monkeypatch.undo()
    resumes(cli, run, 15)


def test_out_under_a_file_is_one_line(tmp_path: Path, corpus_file: Path, cli):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli("train", corpus_file, "--out", blocker / "run", "--max-steps", "1", *FLAGS)
    assert one_error_line(code, err), err


def test_files_follow_the_umask(tmp_path: Path, corpus_file: Path, cli):
    old = os.umask(0o022)
    try:
        out = tmp_path / "r"
        assert cli("train", corpus_file, "--out", out, "--max-steps", "5", *FLAGS)[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for name in ("config.json", "tokenizer.json", "model.safetensors", "checkpoint/state.safetensors"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_temporaries_of_a_killed_process_are_removed_at_the_next_start(run: Path, cli):
    (run / ".config.json.abc.tmp").write_text("half")
    (run / "checkpoint/.state.safetensors.def.tmp").write_bytes(b"half")
    stale = run.parent / f".{run.name}.xyz"  # a fresh run's folder, left by kill -9 (its lock is free)
    stale.mkdir()
    (stale / ".lock").write_text("999999\n")
    resumes(cli, run)
    assert not list(run.rglob("*.tmp")) and not stale.exists()


def test_another_process_filling_out_meanwhile_is_one_line(tmp_path: Path, corpus_file: Path, cli, monkeypatch):
    from rnnlab.lm import train as trainer

    out = tmp_path / "r"
    real = trainer.build_token_store

    def racing(config: object, folder: Path) -> object:
        out.mkdir()
        (out / "config.json").write_text("{}")  # the other trainer won the race
        return real(config, folder)

    monkeypatch.setattr(trainer, "build_token_store", racing)
    code, _, err = cli("train", corpus_file, "--out", out, "--max-steps", "1", *FLAGS)
    assert one_error_line(code, err) and "another process" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["r"] and (out / "config.json").read_text() == "{}"


def _train_process(corpus: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rnnlab", "train", str(corpus), "--out", str(out), *FLAGS, *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(out: Path, step: int, proc: subprocess.Popen) -> None:
    metrics, deadline = out / "metrics.jsonl", time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and any(json.loads(r)["step"] >= step for r in metrics.read_text().splitlines() if r):
            return
        time.sleep(0.05)
    raise AssertionError(f"training did not reach step {step}: {proc.poll()}")


def test_a_second_trainer_is_refused_by_the_lock_and_a_dead_owner_is_taken_over(tmp_path: Path, corpus_file: Path, cli):
    out = tmp_path / "r"
    proc = _train_process(corpus_file, out, "--max-steps", "100000")
    try:
        _wait_for_step(out, 6, proc)
        assert (out / ".lock").read_text().strip() == str(proc.pid)
        code, _, err = cli("train", "--out", out, "--resume", "--max-steps", "100000")
        assert one_error_line(code, err) and f"PID {proc.pid}" in err, err
    finally:
        proc.kill()
        proc.wait()
    assert (out / ".lock").exists()  # kill -9 leaves the file; its lock died with the process
    step = json.loads(rundir.read_metadata(out / "checkpoint/state.safetensors")["progress"])["step"]
    resumes(cli, out, step + 2)
    assert not (out / ".lock").exists()


def test_sigint_saves_and_exits_130_then_resumes(tmp_path: Path, corpus_file: Path, cli):
    out = tmp_path / "r"
    proc = _train_process(corpus_file, out, "--max-steps", "100000")
    _wait_for_step(out, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    step = json.loads(rundir.read_metadata(out / "checkpoint/state.safetensors")["progress"])["step"]
    assert step >= 3
    resumes(cli, out, step + 2)


def test_debug_shows_the_traceback(tmp_path: Path, corpus_file: Path):
    env = {**os.environ, "RNNLAB_DEBUG": "1"}
    cmd = [sys.executable, "-m", "rnnlab", "sample", str(tmp_path / "missing")]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert one_error_line(plain.returncode, plain.stderr)
    debug = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert debug.returncode == 2 and "Traceback" in debug.stderr and debug.stderr.strip().endswith(plain.stderr.strip())
    flag = subprocess.run([*cmd, "--debug"], capture_output=True, text=True)
    assert flag.returncode == 2 and "Traceback" in flag.stderr
