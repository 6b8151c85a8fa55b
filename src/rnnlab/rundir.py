"""The run directory: a self-describing folder that any rnnlab command can load on any device.

    config.json        the run's `kind` (see KINDS), model + training config and the rnnlab version
    tokenizer.json     the tokenizer
    model.safetensors  the weights to use (best validation score; last weights without validation)
    metrics.jsonl      one JSON object per log/eval step
    tokens/            the memory-mapped token store (train.bin, val.bin, meta.json)
    checkpoint/        state.safetensors: everything exact resume needs (see rnnlab.train.checkpoint)

Every write is atomic: a temporary file in the same folder, then `os.replace`, with the permissions the
user's umask gives (a temporary file is created 0600; colleagues on a shared filesystem must read runs).
Saved tensors carry a SHA-256 of their contents in the file's metadata, checked when they are loaded, and
a loaded tensor must be finite. `RunLock` keeps a second trainer out of a run directory that is training.

Every kind of run writes its config.json with `write_run_config` and every command reads it with `read_run`,
which names the run's kind and the command to use when a command is handed a run it cannot use.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from rnnlab._version import __version__
from rnnlab.errors import RnnlabError

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint"
LOCK = ".lock"
HASH_KEY = "rnnlab.sha256"
TMP_SUFFIX = ".tmp"


def user_mode(directory: bool = False) -> int:
    """The mode a new file (0666) or folder (0777) gets under the process's umask."""
    try:  # Linux reports the umask without changing it (os.umask would, for every thread)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                mask = int(line.split()[1], 8)
                break
        else:
            raise OSError
    except (OSError, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new folder in `parent` (tempfile.mkdtemp), with the umask's permissions instead of 0700."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(path, user_mode(directory=True))
    return path


def _temp_file(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.fchmod(fd, user_mode())
    os.close(fd)
    return tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a half."""
    tmp = _temp_file(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output(path: Path) -> Path:
    """Where OUTPUT will be written, checked before any work so that a command that cannot write fails
    at once: not a folder, a device or a pipe, in an existing writable folder, not a read-only file.
    A symbolic link is followed, so its target is replaced and the link kept."""
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise RnnlabError(f"cannot write {path}: it is a directory")
    if target.exists() and not target.is_file():
        raise RnnlabError(f"cannot write {path}: not a regular file")
    if not target.parent.is_dir():
        raise RnnlabError(f"cannot write {path}: its folder does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise RnnlabError(f"cannot write {path}: its folder is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise RnnlabError(f"cannot write {path}: the file is read-only")
    return target


def write_output(path: Path, data: bytes) -> None:
    """Write a file the user asked for, atomically (a reader, or a failure, never sees half of it; an
    existing file is replaced only by the complete new one) with the permissions of the user's umask."""
    try:
        atomic_write_bytes(check_output(path), data)
    except OSError as exc:
        raise RnnlabError(f"cannot write {path}: {exc.strerror or exc}") from None


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors.save_file, made atomic, with a content hash in the metadata (checked by `load_tensors`)."""
    tmp = _temp_file(path)
    try:
        plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(plain, tmp, metadata={**(metadata or {}), HASH_KEY: tensors_digest(plain)})
        os.chmod(tmp, user_mode())  # save_file creates the file anew (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated, corrupted or edited file, or one holding NaN or
    infinite values, is a one-line RnnlabError (files written before hashes were recorded load unchecked).

    Each tensor is copied into its own fresh allocation: safetensors hands out views at arbitrary byte
    offsets, and BLAS kernels pick code paths by alignment, so an unaligned weight can round differently
    from the same weight in memory (a loaded model must compute exactly what the saved one did).
    """
    if not path.is_file():
        raise RnnlabError(f"{path} is missing")
    try:
        tensors = {name: tensor.clone() for name, tensor in load_file(path).items()}
        with safe_open(path, framework="pt") as f:
            expected = (f.metadata() or {}).get(HASH_KEY)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise RnnlabError(f"{path} is corrupt or truncated ({_first_line(exc)})") from None
    if expected is not None and tensors_digest(tensors) != expected:
        raise RnnlabError(f"{path} has been changed or damaged since it was saved (its content hash differs)")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise RnnlabError(f"{path}: {name} holds NaN or infinite values")
    return tensors


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file (call `load_tensors` first to check the file)."""
    try:
        with safe_open(path, framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise RnnlabError(f"{path} is corrupt or truncated ({_first_line(exc)})") from None


class RunKind(NamedTuple):
    """What a run of one kind holds, and the command that uses it (named when another command is given it)."""

    holds: str
    command: str


KINDS: dict[str, RunKind] = {
    "lm": RunKind("a language model", "rnnlab sample"),
    "reference": RunKind("a language model trained by the NumPy reference", "rnnlab sample"),
    "classify": RunKind("a sequence classifier", "rnnlab classify predict"),
    "tag": RunKind("a sequence tagger", "rnnlab tag predict"),
    "seq2seq": RunKind("an encoder-decoder", "rnnlab seq2seq predict"),
    "timeseries": RunKind("a next-value forecaster", "rnnlab timeseries predict"),
    "caption": RunKind("an image captioner", "rnnlab caption predict"),
    "vqa": RunKind("a visual question answerer", "rnnlab vqa predict"),
    "esn": RunKind("an echo state network", "rnnlab esn predict"),
    "ngram": RunKind("an interpolated Kneser-Ney n-gram language model", "rnnlab ngram eval"),
    "hmm": RunKind("a hidden Markov model language model", "rnnlab hmm eval"),
    "window": RunKind("a feed-forward window language model", "rnnlab window eval"),
    "lds": RunKind("a linear dynamical system", "rnnlab lds predict"),
    "ar": RunKind("an autoregressive series model", "rnnlab ar predict"),
    "ctc": RunKind("a CTC sequence labeller", "rnnlab ctc decode"),
}
LANGUAGE_MODELS = ("lm", "reference")  # the kinds that sample, eval, compress, probe, export and serve load
REFERENCE_ENGINE = "rnnlab.reference"  # config.json's train.engine in a reference run of rnnlab 0.1.0 (no kind)


def write_run_config(run_dir: Path, kind: str, model: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Write run_dir/config.json atomically: the run's `kind`, the rnnlab version, the `model` section and
    the `extra` sections (training settings, vocabularies, ...). The one writer of every run kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    data = {"kind": kind, "rnnlab_version": __version__, "model": model}
    if set(data) & set(extra or {}):
        raise ValueError(f"extra sections may not replace {sorted(set(data) & set(extra or {}))}")
    atomic_write_json(Path(run_dir) / CONFIG, data | (extra or {}))


def read_run(run_dir: Path, expect: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """config.json of a run directory with its `kind` filled in; the one reader of every run kind.

    A config.json without a `kind` (rnnlab 0.1.0's language models and reference runs) is an "lm" run, or a
    "reference" run when its training section names the reference engine. With `expect`, a run of any other
    kind is a one-line RnnlabError naming the run's kind and the command that uses it.
    """
    data = read_config(run_dir)
    kind = data.get("kind")
    if kind is None:
        train = data.get("train")
        kind = "reference" if isinstance(train, dict) and train.get("engine") == REFERENCE_ENGINE else "lm"
    if not isinstance(kind, str) or kind not in KINDS:
        raise RnnlabError(
            f"{Path(run_dir) / CONFIG} has an unknown run kind {kind!r} (a newer rnnlab's?); "
            f"this rnnlab reads {', '.join(KINDS)}"
        )
    wanted = (expect,) if isinstance(expect, str) else expect
    if wanted is not None and kind not in wanted:
        raise RnnlabError(
            f"{run_dir} holds {KINDS[kind].holds} ({kind} run), not {KINDS[wanted[0]].holds}; "
            f"use `{KINDS[kind].command}`"
        )
    return data | {"kind": kind}


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.json of a run directory, or a clear error if `run_dir` is not one."""
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise RnnlabError(f"{run_dir} is not a directory")
    if not path.is_file():
        raise RnnlabError(f"{run_dir} is not an rnnlab run directory (no {CONFIG})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RnnlabError(f"{path} is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise RnnlabError(f"{path} is not an rnnlab config (no 'model' section)")
    return data


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, read from its header alone (nothing is loaded)."""
    try:
        with safe_open(path, framework="pt") as f:
            names = f.keys()  # safe_open has keys() but is not iterable
            return {name: tuple(f.get_slice(name).get_shape()) for name in names}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise RnnlabError(f"{path} is corrupt or truncated ({_first_line(exc)})") from None


def load_state_dict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load weights strictly; names or shapes that do not match the config are a clear error."""
    check_state_dict({name: t.shape for name, t in module.state_dict().items()}, tensors, source)
    module.load_state_dict(tensors)


def check_state_dict(expected: dict[str, torch.Size], tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Raise RnnlabError unless `tensors` has exactly the names and shapes of `expected`."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise RnnlabError(f"{source} does not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, value in tensors.items():
        if value.shape != expected[name]:
            raise RnnlabError(
                f"{source}: {name} has shape {tuple(value.shape)}, config.json says {tuple(expected[name])}"
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class RunLock:
    """An exclusive lock on a run directory while it trains: `.lock` holds the owner's PID.

    The lock is an advisory `flock` on that file, so the kernel releases it when its process dies: a
    lock left by `kill -9` is simply taken over. The file is removed on release; after taking the lock we
    check that the file we hold is still the one at that path (another process may have removed it).
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, user_mode())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise RnnlabError(
                    f"{self.path.parent} is being trained by another process (PID {self._owner()}); "
                    "wait for it to finish or stop it first"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # removed by its previous owner between our open and our lock: try again
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        Path(self.path).unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None

    def moved_to(self, run_dir: Path) -> None:
        """The locked folder was renamed (a fresh run moved into place); the lock itself goes with it."""
        self.path = Path(run_dir) / LOCK

    def _owner(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def is_locked(folder: Path) -> bool:
    """Whether a live process holds `folder`'s run lock."""
    try:
        fd = os.open(Path(folder) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


STALE_AFTER_S = 600.0  # an unlocked temporary folder this old belongs to no live process


def remove_temporaries(run_dir: Path) -> None:
    """Delete what a killed process left: temporary files in the run directory and its checkpoint folder,
    and half-made sibling folders of a fresh run (`.NAME.*`) that no live process holds."""
    run_dir = Path(run_dir)
    for folder in (run_dir, run_dir / CHECKPOINT):
        if folder.is_dir():
            for path in folder.glob(f".*{TMP_SUFFIX}"):
                path.unlink(missing_ok=True)
    if not run_dir.parent.is_dir():
        return
    for path in run_dir.parent.glob(f".{run_dir.name}.*"):
        if not path.is_dir() or path.is_symlink() or is_locked(path):
            continue
        fresh = time.time() - path.stat().st_mtime < STALE_AFTER_S and not (path / LOCK).exists()
        if not fresh:
            shutil.rmtree(path, ignore_errors=True)


def check_new_run(out: Path, overwrite: bool, kind: str | None = None) -> bool:
    """Whether `out` holds a run that the new one will replace; a one-line error unless `out` is new, an empty
    folder, or (with `overwrite`) a run directory no process is training, of `kind` when one is given."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return False
    if not out.is_dir() or out.is_symlink():
        raise RnnlabError(f"cannot write the run to {out}: it is not a folder")
    if not any(out.iterdir()):
        return False  # an empty folder: the finished run is renamed onto it
    if not overwrite:
        raise RnnlabError(f"{out} already exists; use --overwrite to replace it, or another --out")
    try:
        found = read_run(out)["kind"]
    except RnnlabError:
        found = None
    if found is None or (kind is not None and found != kind):
        wanted = f"a {kind} run directory" if kind else "a run directory"
        raise RnnlabError(f"--overwrite replaces {wanted}; {out} is not one, so it is left alone")
    if is_locked(out):
        raise RnnlabError(f"{out} is being trained by another process; wait for it or stop it first")
    return True


@contextmanager
def building(out: Path) -> Iterator[Path]:
    """A temporary sibling folder to build a run in (check `out` with check_new_run first). When the block ends
    the finished run takes `out`'s place in one rename, an old run there moved aside and deleted; when it fails
    the folder and any parent folders made for it are removed, and `out` is as it was."""
    out = Path(out)
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()][::-1]
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out)
    tmp = make_temp_dir(out.parent, prefix=f".{out.name}.")
    try:
        yield tmp
        if out.is_dir() and any(out.iterdir()):
            trash = make_temp_dir(out.parent, prefix=f".{out.name}.")
            os.rename(out, trash / "replaced")
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, out)  # atomic; an empty folder at `out` is replaced
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(made):
            shutil.rmtree(folder, ignore_errors=True)
        raise
