"""Questions about the coloured-shape scenes (rnnlab.tasks.shapes), with their true answers, for visual
question answering. Six forms, drawn equally often; every answer is one word:

    what colour is the circle?                       red | ... | nothing (no circle in the picture)
    what shape is the blue one?                      circle | square | triangle | nothing
    is there a red triangle?                         yes | no (half of each)
    where is the red triangle?                       above | below | left | right (of the other shape)
    what shape is above the blue square?             a shape, or nothing (half of these ask the true relation)
    what colour is the shape left of the blue square?  a colour, or nothing

`answer(scene, question)` parses any question in these forms, so a question typed by a user has a true
answer too; the generator and the oracle are the same code.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from rnnlab.errors import RnnlabError
from rnnlab.tasks.shapes import COLOURS, INVERSE, RELATIONS, SHAPES, Scene

FORMS = ("colour", "shape", "exists", "where", "shape-rel", "colour-rel")
_C, _S, _R = "|".join(COLOURS), "|".join(SHAPES), "|".join(RELATIONS)
_PATTERNS = {
    "colour": re.compile(rf"what colou?r is the ({_S})"),
    "shape": re.compile(rf"what shape is the ({_C}) (?:one|shape)"),
    "exists": re.compile(rf"is there an? ({_C}) ({_S})"),
    "where": re.compile(rf"where is the ({_C}) ({_S})"),
    "shape-rel": re.compile(rf"what shape is ({_R}) the ({_C}) ({_S})"),
    "colour-rel": re.compile(rf"what colou?r is the shape ({_R}) the ({_C}) ({_S})"),
}


def words(question: str) -> list[str]:
    """Lower-cased words, "color" spelt "colour": the question's tokens."""
    return ["colour" if w == "color" else w for w in re.findall(r"[a-z]+", question.lower())]


def form(question: str) -> str | None:
    """Which of FORMS `question` is, or None when it is none of them."""
    text = " ".join(words(question))
    for name, pattern in _PATTERNS.items():
        if pattern.fullmatch(text):
            return name
    return None


def answer(scene: Scene, question: str) -> str:
    """The true one-word answer to `question` about `scene`; RnnlabError for a question in no known form."""
    text = " ".join(words(question))
    objects = [scene.first, scene.second]
    # where each object is relative to the other one
    where = {scene.first: scene.relation, scene.second: INVERSE[scene.relation]}
    for name, pattern in _PATTERNS.items():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        groups = match.groups()
        if name == "colour":
            return next((c for c, s in objects if s == groups[0]), "nothing")
        if name == "shape":
            return next((s for c, s in objects if c == groups[0]), "nothing")
        if name == "exists":
            return "yes" if groups in objects else "no"
        if name == "where":
            return where[groups].split()[0] if groups in objects else "nothing"
        relation, reference = groups[0], groups[1:]
        if reference not in objects:
            return "nothing"
        other = objects[1 - objects.index(reference)]
        if where[other] != relation:
            return "nothing"
        return other[1] if name == "shape-rel" else other[0]
    raise RnnlabError(f"not a question about the shapes: {question!r} (forms: {'; '.join(EXAMPLES)})")


EXAMPLES = (
    "what colour is the circle?",
    "what shape is the blue one?",
    "is there a red triangle?",
    "where is the red triangle?",
    "what shape is above the blue square?",
    "what colour is the shape left of the blue square?",
)


def ask_about(scene: Scene, rng: random.Random, forms: tuple[str, ...] = FORMS) -> str:
    """One random question about `scene`, its form drawn uniformly from `forms`."""
    objects = [scene.first, scene.second]
    kind = rng.choice(forms)
    if kind == "colour":
        return f"what colour is the {rng.choice(SHAPES)}?"
    if kind == "shape":
        return f"what shape is the {rng.choice(list(COLOURS))} one?"
    if kind in ("exists", "where"):
        if kind == "where" or rng.random() < 0.5:
            colour, shape = rng.choice(objects)
        else:
            colour, shape = rng.choice([(c, s) for c in COLOURS for s in SHAPES if (c, s) not in objects])
        return f"is there a {colour} {shape}?" if kind == "exists" else f"where is the {colour} {shape}?"
    pick = rng.randrange(2)
    reference = objects[pick]
    true = scene.relation if pick == 1 else INVERSE[scene.relation]  # where the other shape is, from `reference`
    relation = true if rng.random() < 0.5 else rng.choice([r for r in RELATIONS if r != true])
    what = "what shape is" if kind == "shape-rel" else "what colour is the shape"
    return f"{what} {relation} the {' '.join(reference)}?"


def make_questions(
    scenes: list[Scene], per_scene: int, seed: int = 0, forms: tuple[str, ...] = FORMS
) -> list[tuple[int, str, str]]:
    """`per_scene` random (scene index, question, true answer) triples for every scene, of the given forms."""
    rng = random.Random(seed)
    out = []
    for i, scene in enumerate(scenes):
        for _ in range(per_scene):
            question = ask_about(scene, rng, forms)
            out.append((i, question, answer(scene, question)))
    return out


def majority_baselines(train: list[tuple[int, str, str]], test: list[tuple[int, str, str]]) -> tuple[float, float]:
    """Accuracy on `test` of two image-blind answerers: the most frequent answer in `train`, and the most
    frequent answer in `train` of the question's form (about what reading the question alone can reach,
    since within a form the answers are symmetric in colours and shapes)."""
    overall = Counter(a for _, _, a in train).most_common(1)[0][0]
    by_form: dict[str | None, Counter] = {}
    for _, question, a in train:
        by_form.setdefault(form(question), Counter())[a] += 1
    best = {name: counts.most_common(1)[0][0] for name, counts in by_form.items()}
    majority = sum(a == overall for _, _, a in test) / len(test)
    per_form = sum(a == best.get(form(q), overall) for _, q, a in test) / len(test)
    return majority, per_form
