"""Toy tasks for encoder-decoder models: reverse or sort a digit string, transliterate a made-up word
from Latin to Cyrillic letters (digraphs like "sh" -> "ш" make the lengths differ), spell a number's digits
out in words (any length, so training on short numbers and testing on long ones measures length
generalisation), and, for one-to-many generation from a single class vector, write out the multiples of a
digit."""

from __future__ import annotations

import random

Pairs = list[tuple[list[str], list[str]]]

DIGITS = [str(d) for d in range(10)]
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TRANSLIT = {"sh": "ш", "ch": "ч", "zh": "ж", "ya": "я", "yu": "ю", "kh": "х", "ts": "ц"}
TRANSLIT.update(dict(zip("abvgdezikl", "абвгдезикл", strict=True)))
TRANSLIT.update(dict(zip("mnoprstufy", "мнопрстуфы", strict=True)))
_SYLLABLES = ("sh", "ch", "zh", "kh", "ts", *"bvgdzklmnprstf")
_VOWELS = ("a", "e", "i", "o", "u", "y", "ya", "yu")


def reverse(n: int, length: int = 10, seed: int = 0) -> Pairs:
    """Random digit strings of `length` and the same digits backwards."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        src = [rng.choice(DIGITS) for _ in range(length)]
        pairs.append((src, src[::-1]))
    return pairs


def sort(n: int, length: int = 10, seed: int = 0) -> Pairs:
    """Random digit strings of `length` and the same digits in ascending order."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        src = [rng.choice(DIGITS) for _ in range(length)]
        pairs.append((src, sorted(src)))
    return pairs


def spell(n: int, length: int = 10, seed: int = 0, min_length: int = 1) -> Pairs:
    """Digit strings of `min_length` to `length` digits (uniformly many of each length; no leading zero) and
    their digits in words: "1203" -> one two zero three."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        size = rng.randint(min_length, length)
        src = [rng.choice(DIGITS[1:])] + [rng.choice(DIGITS) for _ in range(size - 1)]
        pairs.append((src, [DIGIT_WORDS[int(d)] for d in src]))
    return pairs


def transliterate_word(word: str) -> str:
    """Latin -> Cyrillic, longest match first (two-letter rules before one-letter ones)."""
    out, i = [], 0
    while i < len(word):
        two = word[i : i + 2]
        if two in TRANSLIT:
            out.append(TRANSLIT[two])
            i += 2
        else:
            out.append(TRANSLIT[word[i]])
            i += 1
    return "".join(out)


def transliteration(n: int, seed: int = 0) -> Pairs:
    """Made-up words of 2-4 consonant+vowel syllables, as letters, and their transliteration."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        word = "".join(rng.choice(_SYLLABLES) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 4)))
        pairs.append((list(word), list(transliterate_word(word))))
    return pairs


def multiples(n: int, count: int = 5, seed: int = 0) -> Pairs:
    """One-to-many: a class (digit k, as one token) and the digits of k, 2k, ... count·k separated by spaces."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        k = rng.randint(1, 9)
        pairs.append(([str(k)], list(" ".join(str(k * i) for i in range(1, count + 1)))))
    return pairs


TASKS = {"reverse": reverse, "sort": sort, "translit": transliteration, "spell": spell, "multiples": multiples}
