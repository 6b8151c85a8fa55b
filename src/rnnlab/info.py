"""`rnnlab info`: a readable summary of a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rnnlab.config import model_config_from_dict
from rnnlab.models.language_model import RNNLM
from rnnlab.rundir import METRICS, WEIGHTS, read_config


def describe(run_dir: Path) -> str:
    """Model, size, data and training history of a run, as text."""
    config = read_config(run_dir)
    model_cfg = model_config_from_dict(config["model"])
    train_cfg = config.get("train", {})
    with torch.device("meta"):  # counts parameters without allocating them
        params = RNNLM(model_cfg).num_parameters()
    lines = [
        f"run          {run_dir}",
        f"rnnlab       {config.get('rnnlab_version', '?')}",
        f"model        {model_cfg.layers} x {model_cfg.cell} {model_cfg.hidden}, embed {model_cfg.embed or 'one-hot'}, "
        f"dropout {model_cfg.dropout}",
        f"parameters   {params:,}",
        f"tokenizer    {train_cfg.get('tokenizer', '?')}, vocabulary {model_cfg.vocab_size}",
        f"inputs       {' '.join(train_cfg.get('inputs') or ['<default corpus: Python standard library>'])}",
    ]
    meta_path = Path(run_dir) / "tokens" / "meta.json"
    if meta_path.is_file():
        try:
            splits = json.loads(meta_path.read_text())["splits"]
            lines += [f"{name + ' tokens':<13}{int(split['tokens']):,}" for name, split in splits.items()]
        except (ValueError, KeyError, TypeError, AttributeError):
            lines.append(f"tokens       {meta_path} is unreadable")
    lines.append(
        f"training     {train_cfg.get('optimizer')} lr {train_cfg.get('lr')}, batch {train_cfg.get('batch_size')} "
        f"x seq {train_cfg.get('seq_len')}"
    )
    rows = _metrics(Path(run_dir) / METRICS)
    train_keys, val_keys = ("step", "elapsed", "train_bpc", "tokens_per_s"), ("step", "val_bpc")
    train_rows = [r for r in rows if all(isinstance(r.get(k), (int, float)) for k in train_keys)]
    val_rows = [r for r in rows if all(isinstance(r.get(k), (int, float)) for k in val_keys)]
    if train_rows:
        last = train_rows[-1]
        lines.append(
            f"history      {last['step']} steps, {last['elapsed']:.0f}s, "
            f"last train {last['train_bpc']:.4f} bits/token, "
            f"{last['tokens_per_s']:,.0f} tokens/s"
        )
    if val_rows:
        best = min(val_rows, key=lambda r: r["val_bpc"])
        lines.append(
            f"validation   best {best['val_bpc']:.4f} bits/char at step {best['step']} ({len(val_rows)} evaluations)"
        )
    weights = Path(run_dir) / WEIGHTS
    lines.append(
        f"weights      {weights.name} ({weights.stat().st_size:,} bytes)"
        if weights.exists()
        else "weights      none yet"
    )
    return "\n".join(lines)


def _metrics(path: Path) -> list[dict]:
    """The rows of metrics.jsonl that parse as JSON objects (an edited or cut-off line is skipped)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
