"""`rnnlab info`: a readable summary of a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from rnnlab.config import model_config_from_dict
from rnnlab.models.language_model import RNNLM
from rnnlab.rundir import METRICS, WEIGHTS, read_config


def describe(run_dir: Path) -> str:
    """Model, size, data and training history of a run, as text."""
    config = read_config(run_dir)
    model_cfg = model_config_from_dict(config["model"])
    train_cfg = config.get("train", {})
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
        meta = json.loads(meta_path.read_text())
        for name, split in meta["splits"].items():
            lines.append(f"{name + ' tokens':<13}{split['tokens']:,}")
    lines.append(
        f"training     {train_cfg.get('optimizer')} lr {train_cfg.get('lr')}, batch {train_cfg.get('batch_size')} "
        f"x seq {train_cfg.get('seq_len')}"
    )
    rows = _metrics(Path(run_dir) / METRICS)
    train_rows = [r for r in rows if "train_loss" in r]
    val_rows = [r for r in rows if "val_bpc" in r]
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
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
