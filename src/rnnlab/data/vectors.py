"""Sequences of real-valued feature vectors (video frames, sensor readings) and their files: the data that
the sequence models read where they would read tokens (`rnnlab.seq.vectors` holds their input layer).

Files (`read_vector_sequences`; `write_vector_sequences` writes the first and the last):
- NPZ: `features` (sum T_i, F) with `lengths` (n,), or `features` (n, T, F) (equal lengths, or `lengths` <= T
  marking right padding); optional `labels` (n,), `tags` (sum T_i,), `targets` (n,) and `ids` (n,), text or
  integers. Read with allow_pickle=False: an object array is refused.
- NPY: `features` (n, T, F), equal lengths, or (T, F), one sequence: features only (for predict).
- CSV: a header with a sequence-id column (`id`, `sequence` or `seq`), numeric feature columns, and optional
  `label` (one per sequence), `tag` (one per row) and `target` (one per sequence) columns. A sequence's rows
  are taken in file order and need not be contiguous.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.errors import RnnlabError
from rnnlab.rundir import write_output

ID_COLUMNS = ("id", "sequence", "seq")
TEXT_COLUMNS = ("label", "tag", "target")
NPZ_ARRAYS = ("features", "lengths", "labels", "tags", "targets", "ids")


@dataclass
class VectorSequences:
    """n sequences of F-dimensional frames, with what a task attaches to them. `ids` name the sequences in
    messages and predictions (a CSV's sequence ids; by default their 0-based positions)."""

    features: list[np.ndarray]  # each (T_i, F) float32, T_i >= 1, the same F for all
    labels: list[str] | None = None  # one label per sequence (classify)
    tags: list[list[str]] | None = None  # one tag per frame (tag)
    targets: list[str] | None = None  # a target text per sequence (seq2seq: vectors -> words)
    ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self.features)

    @property
    def num_features(self) -> int:
        """F, the length of every frame's vector."""
        return int(self.features[0].shape[1])

    def names(self) -> list[str]:
        """Each sequence's id: `ids`, or its position."""
        return list(self.ids) if self.ids is not None else [str(i) for i in range(len(self))]

    def select(self, index: Sequence[int]) -> VectorSequences:
        """The sequences at `index`, in that order, with their labels, tags, targets and ids."""

        def pick(values: list | None) -> list | None:
            return None if values is None else [values[i] for i in index]

        names = self.names()
        return VectorSequences(
            [self.features[i] for i in index],
            pick(self.labels),
            pick(self.tags),
            pick(self.targets),
            [names[i] for i in index],
        )

    def check(self, source: str = "vector sequences") -> VectorSequences:
        """Make every frame array float32 and raise one RnnlabError, naming `source` and the sequence, for what
        a model cannot read: no sequences, an empty sequence, a frame width that differs, a value that is not a
        finite number, or labels, tags, targets or ids that do not match the sequences."""
        if not self.features:
            raise RnnlabError(f"{source} has no sequences")
        n = len(self.features)
        for name, values in (("labels", self.labels), ("targets", self.targets), ("ids", self.ids)):
            if values is not None and len(values) != n:
                raise RnnlabError(f"{source}: {len(values)} {name} for {n} sequences")
        names = self.names()
        if len(set(names)) != n:
            raise RnnlabError(f"{source}: sequence ids repeat ({_first_repeat(names)!r})")
        width = None
        for i, array in enumerate(self.features):
            where = f"{source}: sequence {names[i]}"
            if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype.kind not in "fiub":
                raise RnnlabError(f"{where}: features must be a (frames, features) array of numbers")
            if array.shape[0] == 0 or array.shape[1] == 0:
                raise RnnlabError(f"{where} is empty ({array.shape[0]} frames of {array.shape[1]} features)")
            width = array.shape[1] if width is None else width
            if array.shape[1] != width:
                raise RnnlabError(f"{where} has {array.shape[1]} features per frame, sequence {names[0]} has {width}")
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
                self.features[i] = floats = np.ascontiguousarray(array, dtype=np.float32)
            if not np.isfinite(floats).all():
                t, j = np.argwhere(~np.isfinite(floats))[0]
                raise RnnlabError(f"{where}, frame {t}: feature {j} is {floats[t, j]} (not a finite number)")
        if self.tags is not None:
            if len(self.tags) != n:
                raise RnnlabError(f"{source}: tags for {len(self.tags)} sequences, features for {n}")
            for i, (tags, array) in enumerate(zip(self.tags, self.features, strict=True)):
                if len(tags) != len(array):
                    raise RnnlabError(f"{source}: sequence {names[i]} has {len(array)} frames but {len(tags)} tags")
        return self


def _first_repeat(names: list[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    raise ValueError("no repeated name")


def is_vector_file(path: Path) -> bool:
    """Whether `path` names vector sequences rather than text: .npy/.npz, or a CSV whose header has a
    sequence-id column (and no `text` column, which a text classifier's CSV has)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return True
    if suffix != ".csv":
        return False
    try:
        with path.open(encoding="utf-8", newline="") as f:
            header = [h.strip().lower() for h in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return False  # the reader that handles the file reports the problem
    return any(h in ID_COLUMNS for h in header) and "text" not in header


def read_vector_sequences(path: Path) -> VectorSequences:
    """The sequences in an NPZ, NPY or CSV file (see the module's docstring), checked: anything a model
    cannot read is one RnnlabError naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        data = _read_npz(path)
    elif suffix == ".npy":
        data = _read_npy(path)
    elif suffix == ".csv":
        data = _read_csv(path)
    else:
        raise RnnlabError(f"{path}: vector sequences are read from .npz, .npy or .csv files")
    return data.check(str(path))


def _load(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npy (as `features`) or .npz file, without unpickling anything."""
    try:
        if path.suffix.lower() == ".npy":
            return {"features": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise RnnlabError(
                f"{path} holds an object array, which rnnlab does not load (it could run code); save text "
                "as fixed-width strings, e.g. np.array(labels, dtype=str)"
            ) from None
        if "pickled" in str(exc):  # numpy's guess for a file that is neither .npy nor .npz
            raise RnnlabError(f"cannot read {path}: not a NumPy .npy or .npz file") from None
        raise RnnlabError(f"cannot read {path}: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise RnnlabError(f"cannot read {path}: {exc}") from None


def _read_npy(path: Path) -> VectorSequences:
    features = _numbers(_load(path)["features"], path, "the array")
    if features.ndim == 2:
        return VectorSequences([features])
    if features.ndim != 3:
        raise RnnlabError(
            f"{path}: expected an array (sequences, frames, features) or (frames, features), got shape {features.shape}"
        )
    return VectorSequences(list(features))


def _read_npz(path: Path) -> VectorSequences:
    arrays = _load(path)
    unknown = sorted(set(arrays) - set(NPZ_ARRAYS))
    if unknown:
        raise RnnlabError(f"{path}: unknown array {unknown[0]!r} (expected: {', '.join(NPZ_ARRAYS)})")
    if "features" not in arrays:
        raise RnnlabError(f"{path} has no `features` array")
    features = _numbers(arrays["features"], path, "`features`")
    lengths = arrays.get("lengths")
    if lengths is not None:
        lengths = _numbers(lengths, path, "`lengths`")
        if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or len(lengths) == 0 or lengths.min() < 1:
            raise RnnlabError(f"{path}: `lengths` must be one positive integer per sequence")
    if features.ndim == 3:
        n, T = features.shape[:2]
        if lengths is None:
            lengths = np.full(n, T)
        elif len(lengths) != n or lengths.max() > T:
            raise RnnlabError(
                f"{path}: `lengths` must be {n} integers in 1..{T} for `features` of shape {features.shape}"
            )
        sequences = [features[i, :length] for i, length in enumerate(lengths.tolist())]
    elif features.ndim == 2:
        if lengths is None:
            raise RnnlabError(f"{path}: 2-D `features` (frames, features) needs `lengths`, one per sequence")
        if int(lengths.sum()) != len(features):
            raise RnnlabError(
                f"{path}: `lengths` sum to {int(lengths.sum())} but `features` has {len(features)} frames"
            )
        sequences = np.split(features, np.cumsum(lengths)[:-1])
    else:
        raise RnnlabError(
            f"{path}: `features` must be (frames, features) or (sequences, frames, features), "
            f"got shape {features.shape}"
        )
    n = len(sequences)
    tags = None
    if "tags" in arrays:
        flat = arrays["tags"]
        if flat.ndim == 2 and features.ndim == 3 and flat.shape[0] == n:
            flat = np.concatenate([row[:length] for row, length in zip(flat, lengths, strict=True)])
        frames = _text(flat, path, "tags", int(sum(len(s) for s in sequences)), "frame")
        tags = np.split(np.asarray(frames, dtype=object), np.cumsum([len(s) for s in sequences])[:-1])
        tags = [list(t) for t in tags]

    def text(name: str) -> list[str] | None:
        return _text(arrays[name], path, name, n, "sequence") if name in arrays else None

    return VectorSequences(list(sequences), text("labels"), tags, text("targets"), text("ids"))


def _numbers(array: np.ndarray, path: Path, what: str) -> np.ndarray:
    if array.dtype.kind not in "fiub":
        raise RnnlabError(f"{path}: {what} must hold numbers, not {array.dtype} values")
    return array


def _text(array: np.ndarray, path: Path, name: str, count: int, per: str) -> list[str]:
    """A 1-D array of text or integers, one per sequence or frame, as strings."""
    if array.ndim != 1 or len(array) != count:
        raise RnnlabError(f"{path}: `{name}` must be one value per {per} ({count}), got shape {array.shape}")
    if array.dtype.kind == "S":
        return [value.decode("utf-8", "replace") for value in array.tolist()]
    if array.dtype.kind not in "Uiub":
        raise RnnlabError(f"{path}: `{name}` must hold text or integers, not {array.dtype} values")
    return [str(value) for value in array.tolist()]


def _read_csv(path: Path) -> VectorSequences:
    try:
        rows = [row for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"))) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RnnlabError(f"cannot read {path}: {exc}") from None
    if not rows:
        raise RnnlabError(f"{path} is empty")
    header = [h.strip().lower() for h in rows[0]]
    ids = [j for j, h in enumerate(header) if h in ID_COLUMNS]
    if len(ids) != 1:
        raise RnnlabError(f"{path}: the header needs exactly one sequence-id column ({', '.join(ID_COLUMNS)})")
    named = {h: j for j, h in enumerate(header) if h in TEXT_COLUMNS}
    columns = [j for j, h in enumerate(header) if h not in ID_COLUMNS and h not in TEXT_COLUMNS]
    if not columns:
        raise RnnlabError(f"{path} has no feature columns")
    body = rows[1:]
    if not body:
        raise RnnlabError(f"{path} has a header but no rows")
    for number, row in enumerate(body, 2):
        if len(row) != len(header):
            raise RnnlabError(f"{path}:{number}: {len(row)} cells, the header has {len(header)}")
    cells = np.array([[row[j] for j in columns] for row in body])
    try:
        values = np.char.strip(cells).astype(np.float64)
    except ValueError:
        for number, row in enumerate(body, 2):
            for j in columns:
                try:
                    float(row[j])
                except ValueError:
                    raise RnnlabError(f"{path}:{number}: column {rows[0][j]!r} is {row[j]!r}, not a number") from None
        raise
    order: dict[str, list[int]] = {}
    for i, row in enumerate(body):
        order.setdefault(row[ids[0]].strip(), []).append(i)

    def constant(name: str) -> list[str] | None:
        """A column with one value per sequence (label, target)."""
        if name not in named:
            return None
        out = []
        for sequence, index in order.items():
            seen = list(dict.fromkeys(body[i][named[name]].strip() for i in index))
            if len(seen) > 1:
                raise RnnlabError(f"{path}: sequence {sequence} has more than one {name} ({seen[0]!r}, {seen[1]!r})")
            out.append(seen[0])
        return out

    tags = [[body[i][named["tag"]].strip() for i in index] for index in order.values()] if "tag" in named else None
    features = [values[index].astype(np.float32) for index in order.values()]
    return VectorSequences(features, constant("label"), tags, constant("target"), list(order))


def write_vector_sequences(data: VectorSequences, path: Path) -> Path:
    """Write `data` as an NPZ (`features` (sum T_i, F), `lengths` and whichever of `labels`, `tags`, `targets`,
    `ids` it has) or as a CSV (`id`, `f0`..`f{F-1}`, then `label`, `tag`, `target`), by the file's suffix;
    `read_vector_sequences` reads either back."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise RnnlabError(f"{path}: vector sequences are written as .npz or .csv")
    data.check()
    names = data.names()
    if suffix == ".npz":
        arrays = {"features": np.concatenate(data.features), "lengths": np.array([len(f) for f in data.features])}
        for name in ("labels", "targets"):
            if getattr(data, name) is not None:
                arrays[name] = np.array(getattr(data, name), dtype=str)
        if data.tags is not None:
            arrays["tags"] = np.array([t for tags in data.tags for t in tags], dtype=str)
        if data.ids is not None:
            arrays["ids"] = np.array(names, dtype=str)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        write_output(path, buffer.getvalue())
        return path
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    extra = [name for name in TEXT_COLUMNS if getattr(data, name + "s") is not None]
    writer.writerow(["id", *(f"f{j}" for j in range(data.num_features)), *extra])
    per_sequence = {"label": data.labels, "target": data.targets}
    for i, frames in enumerate(data.features):
        for t, frame in enumerate(np.char.mod("%.9g", frames)):  # %.9g reads back as the same float32
            texts = (data.tags[i][t] if name == "tag" else per_sequence[name][i] for name in extra)  # type: ignore[index]
            writer.writerow([names[i], *frame, *texts])
    write_output(path, text.getvalue().encode("utf-8"))
    return path
