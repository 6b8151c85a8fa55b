"""The model card: a run directory's README.md, as the Hugging Face Hub shows one (YAML front matter, then text).

Written at the end of every training session (and by `LanguageModel.save_pretrained`), from config.json and
metrics.jsonl: the model, the data it was trained on, the command that re-runs it, the best validation score and
the rnnlab version, and how to use the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rnnlab._version import __version__
from rnnlab.rundir import METRICS, atomic_write_bytes, read_run

CARD = "README.md"


def best_validation(run_dir: Path) -> float | None:
    """The lowest validation bits per character in metrics.jsonl, or None (no validation, or no metrics)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return None
    scores = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a card is a summary: a damaged line is left out, not fatal
        if isinstance(row, dict) and isinstance(row.get("val_bpc"), (int, float)):
            scores.append(float(row["val_bpc"]))
    return min(scores) if scores else None


def model_card(run_dir: Path) -> str:
    """README.md's text for the language-model run in `run_dir`."""
    data = read_run(run_dir, ("lm", "reference"))
    model, train = data.get("model", {}), data.get("train", {})
    inputs = train.get("inputs") or ["<default corpus: Python standard library>"]
    best = best_validation(run_dir)
    cell = model.get("cell", "?")
    front: dict[str, Any] = {
        "library_name": "rnnlab",
        "tags": ["rnnlab", "recurrent-neural-network", "language-model", cell],
        "rnnlab_version": data.get("rnnlab_version", __version__),
        "model": {k: model.get(k) for k in ("cell", "layers", "hidden", "embed", "vocab_size")},
        "tokenizer": train.get("tokenizer", "char"),
        "training_data": inputs,
        "command": f"rnnlab train --config {Path(run_dir).resolve().name}/config.json --out NEW_RUN",
    }
    if best is not None:
        front["metrics"] = [{"name": "validation bits per character", "value": round(best, 4)}]
    yaml = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in front.items())
    name = Path(run_dir).resolve().name
    score = f"{best:.4f} bits per character on its validation split" if best is not None else "no validation split"
    return f"""---
{yaml}
---

# {name}

A recurrent language model trained with [rnnlab](https://pypi.org/project/rnnlab/) {front["rnnlab_version"]}: {
        model.get("layers")
    } x {cell} {model.get("hidden")}, a vocabulary of {model.get("vocab_size")} \
{front["tokenizer"]} tokens, trained on {", ".join(inputs)}; {score}.

## Use

```bash
rnnlab sample {name} --prime "The " --length 300 --temperature 0.8
rnnlab eval {name} held_out.txt
```

```python
import rnnlab

lm = rnnlab.LanguageModel.from_pretrained("{name}")
print(lm.generate(prime="The ", length=300, temperature=0.8, seed=1))
```

## Train it again

`{front["command"]}` (config.json holds every setting; add `--max-time` or `--max-steps` to change the budget).
"""


def write_card(run_dir: Path) -> None:
    """Write (or refresh) `run_dir/README.md`."""
    atomic_write_bytes(Path(run_dir) / CARD, model_card(run_dir).encode("utf-8"))
