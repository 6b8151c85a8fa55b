"""Real-valued series from CSV files: the one reader of `rnnlab esn`, `lds` and `ar` (a header row, numeric
columns), so that every series model reads the same rows and refuses the same bad input."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import torch

from rnnlab.errors import RnnlabError


def read_series_csv(path: str | Path, columns: Sequence[str] | None = None) -> tuple[torch.Tensor, list[str]]:
    """Numeric columns of a CSV file with a header row, as a (T, D) float64 tensor, and their names.

    `columns` picks columns by name (default: all). Empty files, unknown columns, non-numbers, NaN and
    infinities are one-line RnnlabErrors that say where.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError) as exc:
        raise RnnlabError(f"cannot read {path} ({str(exc).splitlines()[0]})") from None
    if not rows:
        raise RnnlabError(f"{path} is empty")
    header = [name.strip() for name in rows[0]]
    wanted = list(columns) if columns else header
    missing = [name for name in wanted if name not in header]
    if missing:
        raise RnnlabError(f"{path} has no column {missing[0]!r} (columns: {', '.join(header)})")
    if len(rows) < 2:
        raise RnnlabError(f"{path} has a header but no data rows")
    index = [header.index(name) for name in wanted]
    values = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            values.append([float(row[i]) for i in index])
        except (ValueError, IndexError):
            raise RnnlabError(f"{path}, line {line}: expected numbers in columns {', '.join(wanted)}") from None
    series = torch.tensor(values, dtype=torch.float64)
    bad = (~torch.isfinite(series)).any(dim=1).nonzero()
    if len(bad):
        raise RnnlabError(f"{path}, line {int(bad[0]) + 2}: NaN or infinite value")
    return series, wanted
