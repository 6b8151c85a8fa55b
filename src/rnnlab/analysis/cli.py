"""`rnnlab probe ...`: look inside a trained model (interpretable cells, surprisal, gradient flow, memorisation,
dynamics).

Each command parses its arguments and calls rnnlab.analysis; nothing more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import torch
import typer

from rnnlab.cli.app import app
from rnnlab.cli.options import old_spellings
from rnnlab.data.corpus import read_text
from rnnlab.errors import RnnlabError
from rnnlab.lm.model import LanguageModel
from rnnlab.nn import registry

probe_app = typer.Typer(
    help="Look inside a trained model: cells, surprisal, gradients, novelty, dynamics.", no_args_is_help=True
)
app.add_typer(probe_app, name="probe")

Opt = typer.Option
RunDir = Annotated[Path, typer.Argument(help="Run directory.")]


def _read_input(path: Path) -> str:
    if not path.is_file():
        raise RnnlabError(f"{path} is not a file")
    return read_text(path)


@probe_app.command("cells")
@old_spellings(report="--out")
def cells(
    run_dir: RunDir,
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="Text to run the model over.")],
    report: Annotated[Path, Opt(help="HTML report to write.")] = Path("report.html"),
    json_out: Annotated[Path | None, Opt("--json", help="Also write the correlations as JSON.")] = None,
    feature: Annotated[list[str] | None, Opt(help="Extra feature NAME=REGEX: 1 inside matches (repeatable).")] = None,
    max_chars: Annotated[int, Opt(help="Probe at most this many characters.")] = 3000,
    top: Annotated[int, Opt(help="Units listed per feature.")] = 5,
) -> None:
    """Record every unit over INPUT and rank units by |Pearson r| with per-character features."""
    from rnnlab.analysis.cells import rank_all, record
    from rnnlab.analysis.features import compute_features, parse_feature_specs
    from rnnlab.analysis.render import cells_html

    if max_chars < 2 or top < 1:
        raise RnnlabError("--max-chars must be >= 2 and --top >= 1")
    extra = parse_feature_specs(feature or [])
    lm = LanguageModel.load(run_dir)
    recording = record(lm, _read_input(input_file), max_chars)
    ranking = rank_all(recording, compute_features(recording.text, extra), top)
    report.write_text(cells_html(recording, ranking, title=f"Cells of {run_dir.name} on {input_file.name}"))
    for name, scores in ranking.items():
        best = f"{scores[0].layer}[{scores[0].unit}] r={scores[0].r:+.3f}" if scores else "(constant)"
        print(f"{name:<18} {best}")
    if json_out is not None:
        data = {name: [vars(s) for s in scores] for name, scores in ranking.items()}
        json_out.write_text(json.dumps({"chars": len(recording.text), "features": data}, indent=2) + "\n")
    print(f"report written to {report}")


@probe_app.command("surprisal")
@old_spellings(report="--out")
def surprisal(
    run_dir: RunDir,
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="Text to score.")],
    report: Annotated[Path, Opt(help="HTML report to write.")] = Path("surprisal.html"),
    max_chars: Annotated[int, Opt(help="Score at most this many characters.")] = 5000,
    top_k: Annotated[int, Opt(help="Predictions shown on hover.")] = 5,
) -> None:
    """Colour INPUT by the model's surprisal in bits per character; hover shows the top-k predictions."""
    from rnnlab.analysis.render import surprisal_html
    from rnnlab.analysis.surprisal import surprisal as compute

    if max_chars < 1 or top_k < 1:
        raise RnnlabError("--max-chars and --top-k must be >= 1")
    chars = compute(LanguageModel.load(run_dir), _read_input(input_file), top_k, max_chars)
    report.write_text(surprisal_html(chars, title=f"Surprisal of {run_dir.name} on {input_file.name}"))
    print(f"report written to {report}")


@probe_app.command("gradients")
@old_spellings(plot="--out")
def gradients(
    run_dir: RunDir,
    plot: Annotated[Path, Opt(help="PNG to write.")] = Path("grads.png"),
    untrained: Annotated[bool, Opt(help="Probe freshly initialised models of --cell (DIR's sizes) instead.")] = False,
    cell: Annotated[str, Opt(help="Cells for --untrained, comma-separated.")] = "rnn-tanh,lstm,gru",
    steps: Annotated[int, Opt(help="T: steps of training text to backpropagate through.")] = 100,
    rho: Annotated[str, Opt(help="Spectral radii of W_hh for the rnn-tanh sweep.")] = "0.5,0.9,1.0,1.1,1.5,2.0",
    seed: Annotated[int, Opt(help="Seed of the untrained models.")] = 0,
) -> None:
    """‖∂L_T/∂h_t‖ going back from T on training text, saturated gates, and a W_hh spectral-radius sweep."""
    from rnnlab.analysis.gradients import gradient_table, probe_gradients
    from rnnlab.analysis.gradients import untrained as fresh
    from rnnlab.analysis.render import gradients_png
    from rnnlab.data.prepare import TokenStore

    if steps < 1:
        raise RnnlabError("--steps must be >= 1")
    rhos = _floats(rho, "--rho")
    lm = LanguageModel.load(run_dir)
    train = TokenStore.open(run_dir).train.tokens
    if len(train) < steps + 1:
        raise RnnlabError(f"{run_dir} has only {len(train)} training tokens; use --steps below that")
    tokens = torch.as_tensor(train[: steps + 1].astype("int64"))
    if untrained:
        names = [c.strip() for c in cell.split(",") if c.strip()]
        valid = [spec.name for spec in registry.cells() if spec.per_unit]  # the probe follows each layer's h
        if not names or any(c not in valid for c in names):
            raise RnnlabError(f"--cell takes a comma-separated list of {', '.join(valid)}; got {cell!r}")
        models = {f"{c} (untrained)": fresh(lm.module.config, c, seed) for c in names}
    else:
        models = {f"{lm.module.config.cell} (trained)": lm.module}
    probe = probe_gradients(models, tokens, rhos)
    print(gradient_table(probe))
    gradients_png(probe, plot)
    print(f"plot written to {plot}")


@probe_app.command("novelty")
def novelty(
    run_dir: RunDir,
    samples: Annotated[int, Opt(help="Samples to generate.")] = 5,
    length: Annotated[int, Opt(help="Tokens per sample.")] = 500,
    n: Annotated[str, Opt(help="n-gram sizes, comma-separated.")] = "5,10,20",
    temperature: Annotated[float, Opt(help="Sampling temperature.")] = 1.0,
    seed: Annotated[int, Opt(help="Seed of the first sample.")] = 0,
) -> None:
    """Fraction of generated n-grams that appear verbatim in the training text (a memorisation check)."""
    from rnnlab.analysis.novelty import novelty as measure

    ns = tuple(int(v) for v in _floats(n, "--n"))
    result = measure(run_dir, samples, length, ns, temperature, seed)
    print(f"{'n':>4}  {'generated in train':>18}  {'validation in train':>19}")
    for i, size in enumerate(result.n):
        val = f"{result.validation[i]:.3f}" if result.validation is not None else "-"
        print(f"{size:>4}  {result.generated[i]:>18.3f}  {val:>19}")


@probe_app.command("dynamics")
def dynamics(
    run_dir: Annotated[Path | None, typer.Argument(help="Run directory of a language model (or --builtin).")] = None,
    builtin: Annotated[str | None, Opt(help="A hand-built network instead: repeated-ones, parity or addition.")] = None,
    input_token: Annotated[
        str | None, Opt(help="Constant input of the fixed points (default: the most frequent token; '\\n' newline).")
    ] = None,
    plot: Annotated[Path, Opt(help="PNG to write.")] = Path("dynamics.png"),
    report: Annotated[Path, Opt(help="HTML report to write (the PNG inside).")] = Path("dynamics.html"),
    language: Annotated[str, Opt(help="Languages to train a tiny GRU on and read its machine from ('' none).")] = (
        "parity,no-aaa"
    ),
    rho: Annotated[str, Opt(help="Spectral radii of W_hh for the rnn-tanh sweep.")] = "0.5,0.8,0.9,1,1.1,1.2,1.5,2,3",
    steps: Annotated[int, Opt(help="T: steps of driving input (training text, or random symbols).")] = 300,
    starts: Annotated[int, Opt(help="Initial states of the fixed-point search.")] = 64,
    max_steps: Annotated[int, Opt(help="Training steps of each language's network.")] = 400,
    seed: Annotated[int, Opt(help="Seed of the sampling, the random networks and the training.")] = 0,
) -> None:
    """Fixed points and their stability, Lyapunov exponents (and a W_hh spectral-radius sweep), and the state
    machines networks implement: a PNG and an HTML report."""
    from rnnlab.analysis import dynamics as dyn
    from rnnlab.analysis.automata import LANGUAGES
    from rnnlab.analysis.render import dynamics_html, dynamics_png

    if (run_dir is None) == (builtin is None):
        raise RnnlabError("give a run directory or --builtin (one of them)")
    if builtin is not None and builtin not in dyn.BUILTINS:
        raise RnnlabError(f"unknown --builtin {builtin!r}; choose from {', '.join(dyn.BUILTINS)}")
    languages = [name.strip() for name in language.split(",") if name.strip()]
    if any(name not in LANGUAGES for name in languages):
        raise RnnlabError(f"--language takes a comma-separated list of {', '.join(LANGUAGES)}; got {language!r}")
    if steps <= dyn.TRANSIENT or starts < 1 or max_steps < 1:
        raise RnnlabError(f"--steps must be > {dyn.TRANSIENT}, --starts and --max-steps >= 1")
    rhos = _floats(rho, "--rho")
    if builtin is not None:
        result = dyn.probe_builtin(builtin, input_token, rhos, steps, starts, seed)
    else:
        result = dyn.probe_language_model(LanguageModel.load(run_dir), input_token, rhos, steps, starts, seed)
    result.machines.extend(dyn.trained_machine(name, max_steps, seed) for name in languages)
    print(dyn.summary(result))
    png = dynamics_png(result)
    plot.write_bytes(png)
    report.write_text(dynamics_html(result, png, title=f"Dynamics of {builtin or run_dir.name}"))
    print(f"plot written to {plot}\nreport written to {report}")


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise RnnlabError(f"{flag} takes comma-separated numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise RnnlabError(f"{flag} takes comma-separated positive numbers, got {text!r}")
    return values
