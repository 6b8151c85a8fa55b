"""`rnnlab info`: a readable summary of a run directory of any kind."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import torch

from rnnlab.config import model_config_from_dict
from rnnlab.lm.model import RNNLM
from rnnlab.rundir import KINDS, LANGUAGE_MODELS, METRICS, WEIGHTS, read_run, tensor_shapes

DESCRIBERS = {  # kind -> the module whose describe(run_dir, config) writes that kind's lines
    "seq2seq": "rnnlab.seq.seq2seq",
    "ctc": "rnnlab.seq.ctc",
    "ngram": "rnnlab.baselines.ngram",
    "hmm": "rnnlab.baselines.hmm",
    "window": "rnnlab.baselines.window",
    "lds": "rnnlab.baselines.lds",
    "ar": "rnnlab.baselines.ar",
}


def describe(run_dir: Path) -> str:
    """Kind, model, size, data and training history of a run, as text, from what the run recorded."""
    run_dir = Path(run_dir)
    config = read_run(run_dir)
    kind = config["kind"]
    if kind in LANGUAGE_MODELS:
        body = _language_model(run_dir, config)
    elif kind == "esn":
        body = _esn(run_dir, config)
    elif kind in DESCRIBERS or config.get("inputs") == "vectors":
        body = importlib.import_module(DESCRIBERS.get(kind, "rnnlab.seq.vectors")).describe(run_dir, config)
    else:
        body = _sequence(run_dir, config)
    weights = run_dir / WEIGHTS
    return "\n".join(
        [
            f"run          {run_dir}",
            f"kind         {kind}: {KINDS[kind].holds} (use `{KINDS[kind].command}`)",
            f"rnnlab       {config.get('rnnlab_version', '?')}",
            *body,
            *_history(run_dir / METRICS),
            f"weights      {weights.name} ({weights.stat().st_size:,} bytes)"
            if weights.exists()
            else "weights      none yet",
        ]
    )


def _language_model(run_dir: Path, config: dict[str, Any]) -> list[str]:
    model_cfg = model_config_from_dict(config["model"], f"{run_dir / 'config.json'}")
    train_cfg = config.get("train") if isinstance(config.get("train"), dict) else {}
    with torch.device("meta"):  # counts parameters without allocating them
        params = RNNLM(model_cfg).num_parameters()
    lines = [
        f"model        {model_cfg.layers} x {model_cfg.cell} {model_cfg.hidden}, embed {model_cfg.embed or 'one-hot'}, "
        f"dropout {model_cfg.dropout}",
        f"parameters   {params:,}",
        f"tokenizer    {train_cfg.get('tokenizer', '?')}, vocabulary {model_cfg.vocab_size}",
        f"inputs       {' '.join(train_cfg.get('inputs') or ['<default corpus: Python standard library>'])}",
    ]
    meta_path = run_dir / "tokens" / "meta.json"
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
    return lines


def _sequence(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """classify, tag, seq2seq, timeseries, caption, vqa: the recurrent shape (SeqConfig) and what each recorded."""
    m, kind = config["model"], config["kind"]
    stack = f"{m.get('layers', '?')} x {m.get('cell', '?')} {m.get('hidden', '?')}"
    embed = f"embed {m.get('embed', '?')}"
    task = config.get("task") or "user data"
    if kind == "classify":
        model = f"embedding -> {stack} -> {_count(config.get('labels'))} classes, {embed}"
        data = f"vocabulary {_count(config.get('vocab'))} words; labels {_names(config.get('labels'))}"
    elif kind == "tag":
        model = f"embedding -> {stack} -> one of {_count(config.get('tags'))} tags per token, {embed}"
        data = f"vocabulary {_count(config.get('vocab'))} tokens; tags {_names(config.get('tags'))}"
    elif kind == "seq2seq":
        source = "class embedding" if config.get("one_to_many") else f"encoder {stack}"
        model = f"{source} -> decoder {stack}, {embed}"
        data = (
            f"task {task}; source vocabulary {_count(config.get('src_vocab'))}, target vocabulary "
            f"{_count(config.get('tgt_vocab'))}; outputs up to {config.get('max_len', '?')} tokens"
        )
    elif kind == "timeseries":
        model = f"{stack} over one value per step -> the next value"
        data = (
            f"window {config.get('window', '?')} values; standardised with mean {_number(config.get('mean'))}, "
            f"std {_number(config.get('std'))}"
        )
    elif kind == "caption":
        model = f"CNN image encoder -> decoder {stack}, {embed}"
        data = (
            f"images {task}; vocabulary {_count(config.get('tgt_vocab'))} words; captions up to "
            f"{config.get('max_len', '?')} words"
        )
    else:  # vqa
        model = f"CNN image encoder + question reader {stack} -> {_count(config.get('answers'))} answers, {embed}"
        data = f"images {task}; question vocabulary {_count(config.get('vocab'))} words"
    weights = run_dir / WEIGHTS
    params = f"{sum(math.prod(s) for s in tensor_shapes(weights).values()):,}" if weights.exists() else "?"
    return [
        f"model        {model}, dropout {m.get('dropout', '?')}",
        f"parameters   {params}",
        f"data         {data}",
        f"training     Adam lr {m.get('lr', '?')}, batch {m.get('batch_size', '?')}, "
        f"{m.get('steps', '?')} steps at most, seed {m.get('seed', '?')}",
    ]


def _esn(run_dir: Path, config: dict[str, Any]) -> list[str]:
    """An echo state network: the reservoir's settings, its fixed and trained sizes, and the series it fit."""
    m = config["model"]
    feedback = ", output feedback" if m.get("feedback") else ""
    lines = [
        f"model        {m.get('layers', '?')} x reservoir {m.get('hidden_size', '?')} (sparsity {m.get('sparsity')}, "
        f"spectral radius {m.get('spectral_radius')}, leak rate {m.get('leak_rate')}{feedback}), "
        f"{m.get('input_size', '?')} inputs -> {m.get('output_size', '?')} outputs",
    ]
    weights = run_dir / WEIGHTS
    if weights.exists():
        sizes = {name: math.prod(shape) for name, shape in tensor_shapes(weights).items()}
        readout = sizes.get("W_out", 0)
        fixed = sum(n for name, n in sizes.items() if name.startswith("reservoir."))
        lines.append(f"parameters   {readout:,} trained (the readout), {fixed:,} fixed (the random reservoir)")
    else:
        lines.append("parameters   ?")
    data = config.get("data")
    if isinstance(data, dict):
        score = data.get("test_nrmse")
        lines.append(
            f"data         columns {_names(data.get('columns'))}; {data.get('train_steps', '?')} training rows, "
            f"{data.get('test_steps', '?')} held out"
            + (f", one-step NRMSE {_number(score)}" if isinstance(score, (int, float)) else "")
        )
    else:
        lines.append(
            f"data         task {config.get('task', '?')} (not a CSV series: `rnnlab esn predict` cannot use it)"
        )
    lines.append(
        f"training     ridge regression, ridge {m.get('ridge')}, washout {m.get('washout')}, seed {m.get('seed')}"
    )
    return lines


def _count(items: Any) -> str:
    return str(len(items)) if isinstance(items, list) else "?"


def _names(items: Any, most: int = 8) -> str:
    if not isinstance(items, list):
        return "?"
    shown = ", ".join(str(item) for item in items[:most])
    return shown + (f" ... ({len(items)} in all)" if len(items) > most else "")


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) else "?"


def _history(path: Path) -> list[str]:
    """The training and validation lines from metrics.jsonl (language models; none for runs without one)."""
    rows = _metrics(path)
    train_keys, val_keys = ("step", "elapsed", "train_bpc", "tokens_per_s"), ("step", "val_bpc")
    train_rows = [r for r in rows if all(isinstance(r.get(k), (int, float)) for k in train_keys)]
    val_rows = [r for r in rows if all(isinstance(r.get(k), (int, float)) for k in val_keys)]
    lines = []
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
    return lines


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
