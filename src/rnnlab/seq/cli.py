"""`rnnlab classify|tag|seq2seq|timeseries|caption|vqa ...`: the sequence architectures (many-to-one,
many-to-many, encoder-decoder, regression, image captioning, visual question answering), each trained on a
built-in demo task or, where it makes sense, the user's file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from rnnlab.cli.app import app
from rnnlab.cli.options import PanelCommand, config_options, input_argument, old_spellings, old_verb
from rnnlab.errors import RnnlabError
from rnnlab.seq.sequence import SeqConfig
from rnnlab.ui import console

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


@classify_app.command("train", cls=PanelCommand)
@_shared({"data": "--data"}, hidden=64, embed=32, steps=400)
def classify_train(
    data: Annotated[
        Path | None, input_argument("CSV (text,label columns) or JSONL; default: the sentiment demo.")
    ] = None,
    *,
    out: Out,
    examples: Examples = 4000,
    options: dict[str, Any],
) -> None:
    """Train a sequence classifier; prints held-out accuracy beside the majority-class rate."""
    from rnnlab.seq.classify import Classifier, demo, read_labelled

    config = SeqConfig(**options)
    seed = config.seed
    train, test = _split(read_labelled(data)) if data else (demo(examples, seed), demo(1000, seed + 1))
    model = Classifier.train(train, config, log=_log)
    model.save(out)
    labels = [label for _, label in test]
    chance = max(labels.count(label) for label in set(labels)) / len(labels)
    console.print(f"held-out accuracy {model.accuracy(test):.3f} (majority class {chance:.3f}); saved in {out}")


@classify_app.command("predict")
def classify_predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab classify train`.")],
    texts: Annotated[list[str], typer.Argument(help="Texts to classify.")],
) -> None:
    """Print the predicted label and its probability for each text."""
    from rnnlab.seq.classify import Classifier

    model = Classifier.load(run_dir)
    for text, probs in zip(texts, model.probabilities(texts), strict=True):
        best = int(probs.argmax())
        print(f"{model.labels[best]}\t{float(probs[best]):.3f}\t{text}")


@tag_app.command("train", cls=PanelCommand)
@_shared({"data": "--data"}, hidden=32, embed=8, steps=300)
def tag_train(
    data: Annotated[
        Path | None, input_argument('JSONL {"tokens": [...], "tags": [...]}; default: repeated ones.')
    ] = None,
    *,
    out: Out,
    examples: Examples = 4000,
    options: dict[str, Any],
) -> None:
    """Train a per-token tagger; prints held-out token accuracy beside the majority-tag rate."""
    from rnnlab.seq.tagger import Tagger, demo, majority_rate, read_tagged

    config = SeqConfig(**options)
    seed = config.seed
    train, test = _split(read_tagged(data)) if data else (demo(examples, seed), demo(1000, seed + 1))
    model = Tagger.train(train, config, log=_log)
    model.save(out)
    console.print(
        f"held-out token accuracy {model.accuracy(test):.3f} (majority tag {majority_rate(test):.3f}); saved in {out}"
    )


@tag_app.command("predict")
def tag_predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab tag train`.")],
    tokens: Annotated[list[str], typer.Argument(help="The tokens of one sequence.")],
) -> None:
    """Print each token with its tag."""
    from rnnlab.seq.tagger import Tagger

    for token, tag in zip(tokens, Tagger.load(run_dir).predict([tokens])[0], strict=True):
        print(f"{token}\t{tag}")


@seq2seq_app.command("train", cls=PanelCommand)
@_shared(cell="lstm", hidden=128, embed=32, steps=2000, batch_size=64)
def seq2seq_train(
    *,
    out: Out,
    task: Annotated[str, Opt(help="reverse | sort | translit | multiples (one-to-many).")] = "reverse",
    length: Annotated[int, Opt(help="reverse, sort: sequence length.")] = 10,
    examples: Examples = 20000,
    options: dict[str, Any],
) -> None:
    """Train an encoder-decoder on a built-in task; prints held-out exact match (greedy decoding)."""
    from rnnlab.seq.seq2seq import Seq2Seq
    from rnnlab.tasks import seq2seq_toys

    if task not in seq2seq_toys.TASKS:
        raise RnnlabError(f"unknown task {task!r}; choose one of: {', '.join(seq2seq_toys.TASKS)}")
    if length < 1:
        raise RnnlabError(f"--length must be >= 1, got {length}")
    make = seq2seq_toys.TASKS[task]
    config = SeqConfig(**options)
    seed = config.seed
    sized = {"length": length} if task in ("reverse", "sort") else {}
    train, test = make(examples, seed=seed, **sized), make(1000, seed=seed + 1, **sized)
    model = Seq2Seq.train(train, config, one_to_many=task == "multiples", log=_log)
    model.save(out, task)
    console.print(f"held-out exact match {model.exact_match(test):.3f} (greedy); saved in {out}")


@seq2seq_app.command("predict")
@old_verb(seq2seq_app, "seq2seq decode", "seq2seq predict")
def seq2seq_predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of `rnnlab seq2seq train`.")],
    inputs: Annotated[list[str], typer.Argument(help='Sources: "3 1 4" (tokens) or "shapka" (characters).')],
    beam: Beam = 1,
) -> None:
    """Decode each source; prints the output and its log-probability."""
    from rnnlab.seq.seq2seq import Seq2Seq

    model = Seq2Seq.load(run_dir)
    for text in inputs:
        spaced = " " in text.strip()
        source = text.split() if spaced else list(text)
        tokens, logp = model.beam(source, beam) if beam > 1 else model.greedy([source])[0]
        print(f"{(' ' if spaced else '').join(tokens)}\t{logp:.4f}")


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
