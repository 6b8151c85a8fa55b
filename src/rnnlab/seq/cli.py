"""`rnnlab classify|tag|seq2seq|timeseries|caption|vqa ...`: the sequence architectures (many-to-one,
many-to-many, encoder-decoder, regression, image captioning, visual question answering), each trained on a
built-in demo task or, where it makes sense, the user's file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from rnnlab.cli.app import app
from rnnlab.cli.options import PanelCommand, config_options, input_argument, old_spellings, old_verb
from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig
from rnnlab.ui import console

if TYPE_CHECKING:
    from rnnlab.seq.ctc import LineReader

Opt = typer.Option
classify_app = typer.Typer(help="Many-to-one: classify whole sequences.", no_args_is_help=True)
tag_app = typer.Typer(help="Many-to-many: one tag per token.", no_args_is_help=True)
seq2seq_app = typer.Typer(help="Encoder-decoder and one-to-many generation.", no_args_is_help=True)
timeseries_app = typer.Typer(help="Predict the next values of a numeric series.", no_args_is_help=True)
app.add_typer(classify_app, name="classify")
app.add_typer(tag_app, name="tag")
app.add_typer(seq2seq_app, name="seq2seq")
app.add_typer(timeseries_app, name="timeseries")

Out = Annotated[Path, Opt(help="Run directory to write.")]
Examples = Annotated[int, Opt(help="Demo task: training examples to generate.")]
Beam = Annotated[int, Opt(help="Beam width (1: greedy).")]
Column = Annotated[str | None, Opt(help="Column name or 0-based index (default: the last).")]
SERIES_HELP = "CSV with a numeric column; default: the demo series."
R = TypeVar("R")


def _shared(
    old: dict[str, str] | None = None, exclude: tuple[str, ...] = (), **defaults: Any
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator for a training command: the options every sequence model shares (SeqConfig's fields, with this
    command's `defaults` shown in its help; the command builds `SeqConfig(**options)`), and `--steps` and the
    `old` flags (parameter -> old flag) kept as hidden deprecated spellings."""

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        configured = config_options(SeqConfig, presets={}, defaults=defaults, exclude=exclude)(command)
        return old_spellings(steps="--steps", **(old or {}))(configured)

    return decorate


def _log(step: int, loss: float) -> None:
    console.print(f"step {step:5d}  loss {loss:.4f}")


def _split(items: list, fraction: float = 0.1) -> tuple[list, list]:
    """User data: hold out the last `fraction` (at least one item) for the reported score."""
    if len(items) < 10:
        raise RnnlabError(f"need at least 10 examples to train and hold some out, got {len(items)}")
    cut = len(items) - max(1, int(len(items) * fraction))
    return items[:cut], items[cut:]


VECTORS_HELP = "or vector sequences: NPZ/NPY, or CSV with an id column (write an example: `rnnlab task video`)"
Output = Annotated[Path | None, Opt(help="Write the predictions to this CSV instead of printing them.")]


def _examples(
    data: Path | None, task: str | None, tasks: dict[str, Callable], read: Callable, count: int, seed: int
) -> tuple[Any, Any]:
    """(train, held out) for a train command: INPUT (a vector-sequence file, or a file `read` reads), else the
    built-in `task` (the first of `tasks` by default), `count` examples and 1000 more held out."""
    from rnnlab.seq.vectors import is_vector_file, read_vector_sequences

    if data is not None and task is not None:
        raise RnnlabError("give INPUT or --task, not both")
    if task is not None and task not in tasks:
        raise RnnlabError(f"unknown task {task!r}; choose one of: {', '.join(tasks)}")
    if data is None:
        make = tasks[task or next(iter(tasks))]
        return make(count, seed), make(1000, seed + 1)
    if not is_vector_file(data):
        return _split(read(data))
    sequences = read_vector_sequences(data)
    train, test = _split(list(range(len(sequences))))
    return sequences.select(train), sequences.select(test)


def _vector_file(inputs: list[str], run_dir: Path) -> Any:
    """The one vector-sequence file a run trained on vectors predicts for."""
    from rnnlab.seq.vectors import read_vector_sequences

    if len(inputs) != 1:
        raise RnnlabError(f"{run_dir} was trained on vector sequences: give one .npz, .npy or .csv file of them")
    return read_vector_sequences(Path(inputs[0]))


def _not_vectors(inputs: list[str], run_dir: Path) -> None:
    """Refuse a vector-sequence file given to a run trained on text, rather than reading its name as text."""
    from rnnlab.seq.vectors import is_vector_file

    if len(inputs) == 1 and Path(inputs[0]).is_file() and is_vector_file(Path(inputs[0])):
        raise RnnlabError(f"{run_dir} was trained on text, not on vector sequences like {inputs[0]}")


def _write_rows(rows: list[tuple[str, ...]], header: tuple[str, ...], output: Path | None) -> None:
    """Print tab-separated rows, or write them under `header` to the CSV `output`."""
    import csv
    import io

    from rnnlab.rundir import write_output

    if output is None:
        for row in rows:
            print("\t".join(row))
        return
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])
    write_output(output, text.getvalue().encode("utf-8"))
    console.print(f"wrote {len(rows)} rows to {output}")


@classify_app.command("train", cls=PanelCommand)
@_shared({"data": "--data"}, hidden=64, embed=32, steps=400)
def classify_train(
    data: Annotated[Path | None, input_argument(f"CSV (text,label columns) or JSONL, {VECTORS_HELP}.")] = None,
    *,
    out: Out,
    task: Annotated[
        str | None, Opt(help="Without INPUT: sentiment (texts) | video (moving-shape clips).  [default: sentiment]")
    ] = None,
    examples: Examples = 4000,
    options: dict[str, Any],
) -> None:
    """Train a sequence classifier on texts or vector sequences; prints held-out accuracy beside the majority-class
    rate."""
    from rnnlab.seq.classify import Classifier, demo, majority_rate, read_labelled
    from rnnlab.tasks.video import moving_shapes

    config = SeqConfig(**options)
    tasks = {"sentiment": demo, "video": moving_shapes}
    train, test = _examples(data, task, tasks, read_labelled, examples, config.seed)
    model = Classifier.train(train, config, log=_log)
    model.save(out)
    chance = majority_rate(test)
    console.print(f"held-out accuracy {model.accuracy(test):.3f} (majority class {chance:.3f}); saved in {out}")


@classify_app.command("predict")
def classify_predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab classify train`.")],
    texts: Annotated[
        list[str], typer.Argument(help="Texts to classify, or for a run trained on vectors one NPZ/NPY/CSV file.")
    ],
    output: Output = None,
) -> None:
    """Print the predicted label, its probability and the text (or sequence id) for each text or sequence; with
    labels in a vector file, also the accuracy."""
    from rnnlab.rundir import check_output
    from rnnlab.seq.classify import Classifier

    if output is not None:
        check_output(output)
    model = Classifier.load(run_dir)
    if model.features:
        sequences = _vector_file(texts, run_dir)
        inputs, names, header = sequences, sequences.names(), ("label", "probability", "id")
    else:
        _not_vectors(texts, run_dir)
        inputs, names, header, sequences = texts, texts, ("label", "probability", "text"), None
    probs = model.probabilities(inputs)
    best = probs.argmax(-1).tolist()
    rows = [(model.labels[b], f"{float(p[b]):.3f}", name) for b, p, name in zip(best, probs, names, strict=True)]
    _write_rows(rows, header, output)
    if sequences is not None and sequences.labels is not None:
        right = sum(model.labels[b] == label for b, label in zip(best, sequences.labels, strict=True))
        console.print(f"accuracy {right / len(best):.3f} on the {len(best)} labelled sequences")


@tag_app.command("train", cls=PanelCommand)
@_shared({"data": "--data"}, hidden=32, embed=8, steps=300)
def tag_train(
    data: Annotated[Path | None, input_argument(f'JSONL {{"tokens": [...], "tags": [...]}}, {VECTORS_HELP}.')] = None,
    *,
    out: Out,
    task: Annotated[
        str | None,
        Opt(help="Without INPUT: repeated-ones (bits) | video (moving-shape clips).  [default: repeated-ones]"),
    ] = None,
    examples: Examples = 4000,
    options: dict[str, Any],
) -> None:
    """Train a per-step tagger on tokens or vector sequences; prints held-out accuracy per token (or frame) beside
    the majority-tag rate."""
    from rnnlab.seq.tagger import Tagger, demo, majority_rate, read_tagged
    from rnnlab.tasks.video import moving_shapes

    config = SeqConfig(**options)
    tasks = {"repeated-ones": demo, "video": moving_shapes}
    train, test = _examples(data, task, tasks, read_tagged, examples, config.seed)
    model = Tagger.train(train, config, log=_log)
    model.save(out)
    console.print(
        f"held-out token accuracy {model.accuracy(test):.3f} (majority tag {majority_rate(test):.3f}); saved in {out}"
    )


@tag_app.command("predict")
def tag_predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab tag train`.")],
    tokens: Annotated[
        list[str], typer.Argument(help="The tokens of one sequence, or for a run trained on vectors one NPZ/NPY/CSV.")
    ],
    output: Output = None,
) -> None:
    """Print each token with its tag, or for a vector file each sequence's id and its tags (one per frame; with
    --output one row per frame); with tags in the file, also the accuracy."""
    from rnnlab.rundir import check_output
    from rnnlab.seq.tagger import Tagger

    if output is not None:
        check_output(output)
    model = Tagger.load(run_dir)
    if not model.features:
        _not_vectors(tokens, run_dir)
        rows = list(zip(tokens, model.predict([tokens])[0], strict=True))
        _write_rows(rows, ("token", "tag"), output)
        return
    sequences = _vector_file(tokens, run_dir)
    predicted = dict(zip(sequences.names(), model.predict(sequences), strict=True))
    if output is None:
        _write_rows([(name, " ".join(tags)) for name, tags in predicted.items()], ("id", "tags"), None)
    else:
        frames = [(name, str(k), tag) for name, tags in predicted.items() for k, tag in enumerate(tags)]
        _write_rows(frames, ("id", "frame", "tag"), output)
    if sequences.tags is not None:
        given = zip(predicted.values(), sequences.tags, strict=True)
        pairs = [(p, t) for ps, ts in given for p, t in zip(ps, ts, strict=True)]
        console.print(f"accuracy {sum(p == t for p, t in pairs) / len(pairs):.3f} on the {len(pairs)} tagged frames")


@seq2seq_app.command("train", cls=PanelCommand)
@_shared({"data": "--data"}, cell="lstm", hidden=128, embed=32, steps=2000, batch_size=64)
def seq2seq_train(
    data: Annotated[
        Path | None,
        input_argument("source<TAB>target lines, or vector sequences with targets (.npz/.npy/.csv); default: --task."),
    ] = None,
    *,
    out: Out,
    task: Annotated[str, Opt(help="reverse | sort | translit | spell | multiples (one-to-many) | video (clips).")] = (
        "reverse"
    ),
    length: Annotated[int, Opt(help="reverse, sort: sequence length; spell: the longest number.")] = 10,
    examples: Examples = 20000,
    tokens: Annotated[str, Opt(help="INPUT: char | word | bpe tokens on both sides.")] = "char",
    source_tokens: Annotated[str | None, Opt(help="INPUT: the source side's tokens (default: --tokens).")] = None,
    target_tokens: Annotated[str | None, Opt(help="INPUT: the target side's tokens (default: --tokens).")] = None,
    vocab_size: Annotated[int, Opt(help="bpe: vocabulary to learn on each side.")] = 1000,
    attention: Annotated[str, Opt(help="none | additive (Bahdanau) | dot (Luong).")] = "none",
    bidirectional: Annotated[bool, Opt(help="Encoder reads the source both ways (H/2 units each).")] = False,
    beam: Beam = 1,
    plot_attention: Annotated[Path | None, Opt(help="Draw a held-out example's attention weights as this PNG.")] = None,
    example: Annotated[int, Opt(help="Which held-out example --plot-attention draws (0-based).")] = 0,
    options: dict[str, Any],
) -> None:
    """Train an encoder-decoder on your pairs or a built-in task; prints held-out exact match, BLEU-4 and
    token accuracy beside the most common target's exact match."""
    from rnnlab.seq.seq2seq import Seq2Seq, builtin_data, file_data

    config = SeqConfig(**options)
    _check_decoding(beam, attention, plot_attention)
    if data is not None:
        chosen = (source_tokens or tokens, target_tokens or tokens)
        dataset = file_data(data, _split, chosen, vocab_size)
    else:
        dataset = builtin_data(task, examples, length, config.seed)
    if plot_attention is not None and not 0 <= example < len(dataset.test):
        raise RnnlabError(f"--example must be in 0..{len(dataset.test) - 1}, got {example}")
    model = Seq2Seq.train(
        dataset.train,
        config,
        one_to_many=dataset.one_to_many,
        log=_log,
        attention=attention,
        bidirectional=bidirectional,
        sides=dataset.sides,
    )
    model.save(out, dataset.task)
    _report(model, dataset.test, beam, plot_attention, example, dataset.train)
    console.print(f"saved in {out}")


@seq2seq_app.command("eval")
def seq2seq_eval(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab seq2seq train`.")],
    data: Annotated[Path, input_argument("source<TAB>target lines (or vector sequences with targets).")],
    beam: Beam = 1,
    plot_attention: Annotated[Path | None, Opt(help="Draw one example's attention weights as this PNG.")] = None,
    example: Annotated[int, Opt(help="Which example --plot-attention draws (0-based).")] = 0,
) -> None:
    """Print exact match, BLEU-4 and token accuracy of the run's outputs on INPUT's pairs."""
    from rnnlab.seq.seq2seq import Seq2Seq, evaluation_pairs

    model = Seq2Seq.load(run_dir)
    _check_decoding(beam, model.module.attention_kind, plot_attention)
    pairs = evaluation_pairs(model, data)
    if plot_attention is not None and not 0 <= example < len(pairs):
        raise RnnlabError(f"--example must be in 0..{len(pairs) - 1}, got {example}")
    _report(model, pairs, beam, plot_attention, example)


def _check_decoding(beam: int, attention: str, plot: Path | None) -> None:
    """Refuse, before any work, a beam width or an attention plot that cannot be."""
    from rnnlab.rundir import check_output

    if beam < 1:
        raise RnnlabError(f"--beam must be >= 1, got {beam}")
    if plot is not None:
        if attention == "none":
            raise RnnlabError("--plot-attention needs a model with attention (--attention additive or dot)")
        check_output(plot)


def _report(model: Any, pairs: list, beam: int, plot: Path | None, example: int, train: list | None = None) -> None:
    """Print the scores of `model` on `pairs` (beside the most common training target's, given `train`) and
    draw the attention of pairs[example] when asked."""
    import math

    from rnnlab.seq.seq2seq import most_common_baseline

    s = model.evaluate(pairs, beam)
    how = "greedy" if beam == 1 else f"beam {beam}"
    if train:
        b = most_common_baseline(train, pairs)
        baseline = f"; most common target: exact {b.exact:.3f}, token accuracy {b.token_accuracy:.3f}"
    else:
        baseline = ""
    bleu = "n/a (no output of 4 tokens)" if math.isnan(s.bleu) else f"{s.bleu:.3f}"
    scope = "held-out " if train else ""
    console.print(
        f"{scope}exact match {s.exact:.3f}  BLEU-4 {bleu}  token accuracy {s.token_accuracy:.3f} "
        f"({how}; {s.count} pairs{baseline})"
    )
    if plot is not None:
        source, target = pairs[example]
        output = model.translate([source], beam, strict=False)[0][0]
        model.plot_attention(source, output, plot, f"target: {model.sides[1].join(target)}")
        console.print(f"attention weights of example {example} in {plot}")


@seq2seq_app.command("predict")
@old_verb(seq2seq_app, "seq2seq decode", "seq2seq predict")
def seq2seq_predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab seq2seq train`.")],
    inputs: Annotated[
        list[str] | None, typer.Argument(help='Sources: "3 1 4" (tokens) or "shapka" (characters).')
    ] = None,
    input_file: Annotated[
        Path | None,
        Opt("--sources", help="Read sources from this file, one per line (a vector file for vector runs); - is stdin."),
    ] = None,
    beam: Beam = 1,
    plot_attention: Annotated[Path | None, Opt(help="Draw the first source's attention weights as this PNG.")] = None,
) -> None:
    """Decode each source (the arguments, --sources' lines, or else standard input's); prints the output and its
    log-probability (and, for a run trained on vectors, the sequence's id)."""
    import sys

    from rnnlab.seq.seq2seq import Seq2Seq, read_sources

    model = Seq2Seq.load(run_dir)
    _check_decoding(beam, model.module.attention_kind, plot_attention)
    if inputs and input_file is not None:
        raise RnnlabError("give sources as arguments or with --sources, not both")
    if not inputs and not model.module.features and (input_file is None or str(input_file) == "-"):
        if sys.stdin.isatty():
            raise RnnlabError("give sources as arguments, with --sources FILE, or on standard input")
        inputs, input_file = sys.stdin.read().splitlines(), None
    names, sources = read_sources(model, inputs, input_file)
    results = model.translate(sources, beam)
    for name, (tokens, logp) in zip(names, results, strict=True):
        if model.module.features:
            print(f"{model.sides[1].join(tokens)}\t{logp:.4f}\t{name}")
        else:
            print(f"{model.sides[1].join(tokens, ' ' in name.strip())}\t{logp:.4f}")
    if plot_attention is not None:
        model.plot_attention(sources[0], results[0][0], plot_attention)


@timeseries_app.command("train", cls=PanelCommand)
@old_verb(timeseries_app, "timeseries fit", "timeseries train", cls=PanelCommand)
@_shared({"data": "--data"}, exclude=("embed",), hidden=32, steps=300)
def timeseries_train(
    data: Annotated[Path | None, input_argument(SERIES_HELP)] = None,
    *,
    out: Out,
    column: Column = None,
    holdout: Annotated[float, Opt(help="Fraction at the end held out for the reported errors.")] = 0.2,
    window: Annotated[int, Opt(help="Training window length T.")] = 50,
    horizon: Annotated[int, Opt(help="Also print this many forecast values past the end.")] = 0,
    options: dict[str, Any],
) -> None:
    """Fit a next-value model; prints one-step-ahead RMSE/MAE beside the naive last-value forecast."""
    from rnnlab.seq.timeseries import Forecaster, demo, read_series

    if not 0 < holdout < 1:
        raise RnnlabError(f"--holdout must be in (0, 1), got {holdout}")
    config = SeqConfig(**options, embed=1)  # one value per step
    series = read_series(data, column) if data else demo(seed=config.seed)
    start = int(len(series) * (1 - holdout))
    model = Forecaster.train(series[:start], config, window, log=_log)
    model.save(out)
    e = model.evaluate(series, start)
    console.print(f"held-out {e.count} values   RMSE {e.model_rmse:.4f} (naive last value {e.naive_rmse:.4f})")
    console.print(f"                     MAE  {e.model_mae:.4f} (naive last value {e.naive_mae:.4f})")
    if horizon > 0:
        print(" ".join(f"{v:.4f}" for v in model.forecast(series, horizon)))


@timeseries_app.command("predict")
@old_spellings(data="--data")
def timeseries_predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab timeseries train`.")],
    data: Annotated[Path | None, input_argument(SERIES_HELP)] = None,
    column: Column = None,
    horizon: Annotated[int, Opt(help="How many values to forecast past the end of the series.")] = 10,
) -> None:
    """Print the next --horizon values after the series, each prediction fed back as the next input."""
    from rnnlab.seq.timeseries import Forecaster, demo, read_series

    if horizon < 1:
        raise RnnlabError(f"--horizon must be >= 1, got {horizon}")
    model = Forecaster.load(run_dir)
    series = read_series(data, column) if data else demo()
    if len(series) == 0:
        raise RnnlabError(f"{data} has no values to continue")
    print(" ".join(f"{v:.4f}" for v in model.forecast(series, horizon)))


caption_app = typer.Typer(
    help="Image captioning on coloured shapes (CNN encoder + recurrent decoder).", no_args_is_help=True
)
app.add_typer(caption_app, name="caption")


@caption_app.command("train", cls=PanelCommand)
@_shared({"coco": "--coco"}, hidden=64, embed=16, steps=3000, lr=5e-3)
def caption_train(
    coco: Annotated[Path | None, input_argument("COCO-format caption JSON; default: the built-in shapes.")] = None,
    *,
    out: Out,
    images: Annotated[Path | None, Opt(help="With INPUT: folder of the image files (default: the JSON's).")] = None,
    examples: Examples = 4000,
    options: dict[str, Any],
) -> None:
    """Train a captioner on the built-in shapes or COCO-format data; prints held-out BLEU-1..4 and
    exact-caption accuracy (against every true caption of each image) and writes OUT/samples.png."""
    from rnnlab.seq.caption import Captioner, render_grid

    config = SeqConfig(**options)
    seed = config.seed
    if coco is not None:
        from rnnlab.seq.coco import read_coco

        pictures, references = read_coco(coco, images)
        train_ids, test_ids = _split(list(range(len(pictures))))
        train_images, test_images = pictures[train_ids], pictures[test_ids]
        train_refs, test_refs = [references[i] for i in train_ids], [references[i] for i in test_ids]
    else:
        from rnnlab.tasks.shapes import make_scenes

        train_images, train_scenes = make_scenes(examples, seed)
        test_images, test_scenes = make_scenes(500, seed + 1)
        train_refs = [[s.caption()] for s in train_scenes]  # one drawn caption each, as a dataset would have
        test_refs = [s.captions() for s in test_scenes]
    captions = [c for refs in train_refs for c in refs]
    image_of = [i for i, refs in enumerate(train_refs) for _ in refs]
    model = Captioner.train_captions(train_images, captions, config, log=_log, image_of=image_of)
    model.save(out, "coco" if coco is not None else "shapes")
    scores, exact = model.evaluate(test_images, test_refs)
    bleu = "  ".join(f"BLEU-{n} {s:.3f}" for n, s in enumerate(scores, 1))
    console.print(f"held-out {bleu}  exact caption {exact:.3f} ({len(test_refs)} images)")
    generated = [" ".join(words) for words in model.describe(test_images[:12])]
    truths = [" ".join(refs[0]) for refs in test_refs[:12]]
    png = render_grid(test_images[:12], generated, Path(out) / "samples.png", truths)
    console.print(f"saved in {out}; sample captions in {png}")


@caption_app.command("predict")
@old_verb(caption_app, "caption describe", "caption predict")
@old_spellings(plot="--png")
def caption_predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab caption train`.")],
    image: Annotated[
        list[Path] | None,
        Opt(help="Your own image file to caption (repeatable; any size, resized to 32x32 as in training)."),
    ] = None,
    count: Annotated[int, Opt(help="Without --image: how many new shape images to caption.")] = 8,
    beam: Beam = 1,
    plot: Annotated[Path | None, Opt(help="Also save the images with their captions as this PNG.")] = None,
    seed: Annotated[int, Opt(help="Which new shape images to caption.")] = 12345,
) -> None:
    """Caption your images (--image), or freshly generated shape images with their true captions beside."""
    import numpy as np

    from rnnlab.rundir import check_output
    from rnnlab.seq.caption import Captioner, render_grid
    from rnnlab.seq.coco import load_image
    from rnnlab.tasks.shapes import make_shapes

    if count < 1:
        raise RnnlabError(f"--count must be >= 1, got {count}")
    if beam < 1:
        raise RnnlabError(f"--beam must be >= 1, got {beam}")
    if plot is not None:
        check_output(plot)
    model = Captioner.load(run_dir)
    if image:
        images, truths = np.stack([load_image(path) for path in image]), None
    else:
        images, shapes = make_shapes(count, seed)
        truths = [" ".join(t) for t in shapes]
    generated = [" ".join(words) for words in model.describe(images, beam)]
    for i, text in enumerate(generated):
        print(f"{text}\t{image[i]}" if image else f"{text}\t(true: {truths[i]})")
    if plot is not None:
        render_grid(images, generated, plot, truths)


vqa_app = typer.Typer(
    help="Visual question answering on coloured shapes (CNN image vector + recurrent question reader).",
    no_args_is_help=True,
)
app.add_typer(vqa_app, name="vqa")


@vqa_app.command("train", cls=PanelCommand)
@_shared(hidden=64, embed=16, steps=4000, batch_size=64, lr=5e-3)
def vqa_train(
    *,
    out: Out,
    scenes: Annotated[int, Opt(help="Training images (scenes) to generate.")] = 4000,
    questions: Annotated[int, Opt(help="Questions per training image.")] = 5,
    options: dict[str, Any],
) -> None:
    """Train on questions about the built-in shapes; prints held-out answer accuracy beside image-blind
    baselines and writes OUT/samples.png."""
    from rnnlab.seq.caption import render_grid
    from rnnlab.seq.vqa import VQA
    from rnnlab.tasks.shape_questions import majority_baselines, make_questions
    from rnnlab.tasks.shapes import make_scenes

    if questions < 1:
        raise RnnlabError(f"--questions must be >= 1, got {questions}")
    config = SeqConfig(**options)
    seed = config.seed
    images, train_scenes = make_scenes(scenes, seed)
    train = make_questions(train_scenes, questions, seed)
    model = VQA.train(images, train, config, log=_log)
    model.save(out)
    test_images, test_scenes = make_scenes(500, seed + 1)
    test = make_questions(test_scenes, 4, seed + 1)
    majority, per_form = majority_baselines(train, test)
    console.print(
        f"held-out accuracy {model.accuracy(test_images, test):.3f} ({len(test)} questions about unseen images; "
        f"majority answer {majority:.3f}, majority answer per question form {per_form:.3f})"
    )
    shown = test[::4][:12]
    predicted = model.predict(test_images[[i for i, _, _ in shown]], [q for _, q, _ in shown])
    png = render_grid(
        test_images[[i for i, _, _ in shown]],
        [f"{q} {p}" for (_, q, _), p in zip(shown, predicted, strict=True)],
        Path(out) / "samples.png",
        [a for _, _, a in shown],
    )
    console.print(f"saved in {out}; sample answers in {png}")


@vqa_app.command("predict")
@old_verb(vqa_app, "vqa ask", "vqa predict")
@old_spellings(plot="--png")
def vqa_predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab vqa train`.")],
    questions: Annotated[list[str], typer.Argument(help='Questions, e.g. "what colour is the circle?".')],
    image: Annotated[Path | None, Opt(help="A 32x32 image file to ask about (default: a new shapes scene).")] = None,
    plot: Annotated[Path | None, Opt(help="Also save the image with the answers as this PNG.")] = None,
    seed: Annotated[int, Opt(help="Which new shapes scene to ask about (without --image).")] = 12345,
) -> None:
    """Answer questions about one image; prints answer, probability, the true answer (for a generated scene
    and a question in one of the built-in forms, else ?) and the question. A question with words the model never
    saw gets "?" and the reason, and the others are still answered."""
    from rnnlab.seq.caption import read_image, render_grid
    from rnnlab.seq.vqa import VQA
    from rnnlab.tasks.shape_questions import answer, form
    from rnnlab.tasks.shapes import make_scenes

    model = VQA.load(run_dir)
    if image is not None:
        pixels, scene = read_image(image), None
    else:
        scenes_images, scenes = make_scenes(1, seed)
        pixels, scene = scenes_images[0], scenes[0]
    reasons = {q: reason for q in questions if (reason := model.unanswerable(q)) is not None}
    if len(reasons) == len(questions):
        raise RnnlabError(reasons[questions[0]])
    readable = [q for q in questions if q not in reasons]
    probs = dict(zip(readable, model.probabilities([pixels] * len(readable), readable), strict=True))
    replies = []
    for question in questions:
        if question in reasons:
            replies.append("?")
            print(f"?\t-\t(cannot answer: {reasons[question]})\t{question}")
            continue
        p = probs[question]
        replies.append(model.answers[int(p.argmax())])
        truth = answer(scene, question) if scene is not None and form(question) else "?"
        print(f"{replies[-1]}\t{float(p.max()):.3f}\t(true: {truth})\t{question}")
    if plot is not None:
        render_grid(pixels[None], ["\n".join(f"{q} {r}" for q, r in zip(questions, replies, strict=True))], plot)


ctc_app = typer.Typer(
    help="CTC line recognition: read text line images column by column, trained on unaligned transcripts.",
    no_args_is_help=True,
)
app.add_typer(ctc_app, name="ctc")
CtcBeam = Annotated[int, Opt(help="Prefix beam search width (1: greedy, the best path).")]
CtcPlot = Annotated[
    Path | None, Opt(help="Also save a PNG of the lines with their decoded text and per-frame best class.")
]


@ctc_app.command("train", cls=PanelCommand)
@_shared(hidden=64, embed=64, steps=1500)
def ctc_train(
    folder: Annotated[
        Path | None, input_argument("Folder of line images + labels.tsv (NAME<TAB>TEXT per line); default: --task.")
    ] = None,
    *,
    out: Out,
    task: Annotated[str | None, Opt(help="Without INPUT: lines (generated printed text lines).")] = None,
    examples: Examples = 3000,
    height: Annotated[int, Opt(help="Image height in pixels; your lines are resized to it.")] = 32,
    window: Annotated[int, Opt(help="Pixel columns per frame.")] = 2,
    bidirectional: Annotated[bool, Opt(help="Read each line in both directions.")] = True,
    options: dict[str, Any],
) -> None:
    """Train a CTC line recogniser; prints held-out character error rate (CER) beside image-blind baselines."""
    from rnnlab.seq.ctc import LineReader, Reading, baselines, read_folder
    from rnnlab.tasks.lines import make_lines

    config, reading = SeqConfig(**options), Reading(height, window, bidirectional)
    config.validate()
    reading.validate()
    if folder is not None and task is not None:
        raise RnnlabError("give INPUT (your folder) or --task, not both")
    if folder is None and (task or "lines") != "lines":
        raise RnnlabError(f"unknown task {task!r}; the built-in task is: lines")
    if folder is not None:
        images, texts, names = read_folder(folder, height)
        (train_images, test_images), (train_texts, test_texts) = _split(images), _split(texts)
    else:
        if examples < 1:
            raise RnnlabError(f"--examples must be >= 1, got {examples}")
        names = None
        train_images, train_texts = make_lines(examples, config.seed, height)
        test_images, test_texts = make_lines(200, config.seed + 1, height)
    model = LineReader.train(train_images, train_texts, config, reading, names=names, log=_log)
    unseen = sorted(set("".join(test_texts)) - set(model.alphabet))
    scored = [i for i, text in enumerate(test_texts) if not set(text) & set(unseen)]
    skipped = f"; {len(test_texts) - len(scored)} held-out lines with unseen characters skipped" if unseen else ""
    test_images, test_texts = [test_images[i] for i in scored], [test_texts[i] for i in scored]
    if not test_texts:
        model.save(out, "lines" if folder is None else "user data")
        console.print(f"no held-out line uses only characters seen in training (CER not measured); saved in {out}")
        return
    error = model.cer(test_images, test_texts)
    held_out = {"cer": round(error, 4), "lines": len(test_texts)}
    model.save(out, "lines" if folder is None else "user data", {"held_out_cer": held_out})
    blind = ", ".join(f"{name} {value:.3f}" for name, value in baselines(train_texts, test_texts).items())
    summary = f"held-out CER {error:.3f} greedy on {len(test_texts)} lines (image-blind: {blind}){skipped}"
    console.print(summary, soft_wrap=True)
    console.print(f"saved in {out}")


def _line_reader(run_dir: Path, beam: int, plot: Path | None) -> LineReader:
    """The options of decode and eval checked (before anything is written), then the run's LineReader."""
    from rnnlab.rundir import check_output
    from rnnlab.seq.ctc import LineReader

    if beam < 1:
        raise RnnlabError(f"--beam must be >= 1, got {beam}")
    if plot is not None:
        check_output(plot)
    return LineReader.load(run_dir)


@ctc_app.command("decode")
def ctc_decode(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab ctc train`.")],
    images: Annotated[list[Path], typer.Argument(help="Line image files (any width; resized to the run's height).")],
    beam: CtcBeam = 1,
    plot: CtcPlot = None,
) -> None:
    """Print the text read from each line image, a TAB, and the file."""
    from rnnlab.seq.ctc import load_line, plot_lines

    model = _line_reader(run_dir, beam, plot)
    pixels = [load_line(path, model.reading.height) for path in images]
    decoded = model.decode(pixels, beam)
    for text, path in zip(decoded, images, strict=True):
        print(f"{text}\t{path}")
    if plot is not None:
        shown = slice(0, 8)
        scores = model.log_probs(pixels[shown])
        plot_lines(pixels[shown], decoded[shown], plot, None, scores, model.alphabet, model.reading.window)


@ctc_app.command("eval")
def ctc_eval(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab ctc train`.")],
    folder: Annotated[Path, input_argument("Folder of line images + labels.tsv (NAME<TAB>TEXT per line).")],
    beam: CtcBeam = 1,
    plot: CtcPlot = None,
) -> None:
    """Print the character error rate on a folder of transcribed lines beside image-blind baselines."""
    from rnnlab.seq.ctc import baselines, cer, plot_lines, read_folder

    model = _line_reader(run_dir, beam, plot)
    images, texts, names = read_folder(folder, model.reading.height)
    for name, text in zip(names, texts, strict=True):
        unknown = sorted(set(text) - set(model.alphabet))
        if unknown:
            raise RnnlabError(
                f"{name}: character(s) {''.join(unknown)!r} are not in the run's alphabet {model.alphabet!r}"
            )
    decoded = model.decode(images, beam)
    blind = ", ".join(f"{name} {value:.3f}" for name, value in baselines(texts, texts).items())
    how = "greedy" if beam == 1 else f"beam {beam}"
    chars = sum(map(len, texts))
    print(f"CER {cer(decoded, texts):.4f} ({how}) on {len(texts)} lines, {chars} characters (image-blind: {blind})")
    if plot is not None:
        shown = slice(0, 6)
        scores = model.log_probs(images[shown])
        plot_lines(images[shown], decoded[shown], plot, texts[shown], scores, model.alphabet, model.reading.window)
