"""Per-character features of a text, the targets that hidden units are correlated with.

Each feature maps a text of T characters to a float array (T,): 1/0 indicators or counts. The code
features (strings, comments, brackets, `if` conditions) come from one small lexer that knows C and
Python comments and quoted strings, so a `(` inside a string does not change the bracket depth.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from rnnlab.errors import RnnlabError

Feature = Callable[[str], np.ndarray]


def _lex(text: str) -> dict[str, np.ndarray]:
    """One pass over `text`: string/comment membership, bracket and brace depth, `if`-condition membership.

    Strings (' or ") end at their closing quote or at a newline; comments are `#` or `//` to the end of
    the line and `/* ... */`. A character is "in" a string or comment from its opening to its closing
    delimiter inclusive. Depths count the brackets opened before and including this character.
    """
    T = len(text)
    string, comment = np.zeros(T), np.zeros(T)
    bracket, brace, cond = np.zeros(T), np.zeros(T), np.zeros(T)
    mode = "code"  # code | line | block | ' | "
    depth_b = depth_c = 0
    if_paren: int | None = None  # bracket depth at which a C-style `if (` condition closes
    if_colon: int | None = None  # bracket depth of a Python-style `if ... :` condition
    pending_if = False
    i = 0
    while i < T:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < T else ""
        if mode == "code":
            if ch in "'\"":
                mode = ch
                string[i] = 1
            elif ch == "#" or (ch == "/" and nxt == "/"):
                mode = "line"
                comment[i] = 1
            elif ch == "/" and nxt == "*":
                mode = "block"
                comment[i] = comment[i + 1] = 1
                i += 1
            elif ch in "([":
                depth_b += 1
                if pending_if and ch == "(":
                    if_paren, pending_if = depth_b - 1, False
            elif ch in ")]":
                depth_b = max(depth_b - 1, 0)
            elif ch == "{":
                depth_c += 1
            elif ch == "}":
                depth_c = max(depth_c - 1, 0)
            elif text.startswith("if", i) and _word_at(text, i, 2):
                pending_if = True
                i += 1
            elif pending_if and not ch.isspace():
                if_colon, pending_if = depth_b, False
        elif mode == "line":
            comment[i] = ch != "\n"
            if ch == "\n":
                mode = "code"
        elif mode == "block":
            comment[i] = 1
            if ch == "*" and nxt == "/":
                comment[i + 1] = 1
                i += 1
                mode = "code"
        else:  # inside a ' or " string
            string[i] = ch != "\n"
            if ch == "\\" and nxt not in ("", "\n"):
                string[i + 1] = 1
                i += 1
            elif ch == mode or ch == "\n":
                mode = "code"
        bracket[i], brace[i] = depth_b, depth_c
        if if_paren is not None:
            cond[i] = 1
            if depth_b <= if_paren:
                if_paren = None
        elif if_colon is not None:
            if (ch == ":" and depth_b <= if_colon and mode == "code") or ch == "\n":
                if_colon = None
            else:
                cond[i] = 1
        i += 1
    return {"in_string": string, "in_comment": comment, "bracket_depth": bracket, "brace_depth": brace, "in_if": cond}


def _word_at(text: str, i: int, n: int) -> bool:
    """True when text[i:i+n] is a whole word (not part of an identifier)."""
    before = text[i - 1] if i > 0 else " "
    after = text[i + n] if i + n < len(text) else " "
    return not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_")


def in_double_quotes(text: str) -> np.ndarray:
    """1 from an opening `"` to its closing `"` inclusive, toggled by every `"` (prose dialogue, too)."""
    out, inside = np.zeros(len(text)), False
    for i, ch in enumerate(text):
        if ch == '"':
            out[i] = 1
            inside = not inside
        else:
            out[i] = inside
    return out


def position_in_line(text: str) -> np.ndarray:
    """Characters since the last newline (0 for the first character of a line and for the newline itself)."""
    out, col = np.zeros(len(text)), 0
    for i, ch in enumerate(text):
        out[i] = col
        col = 0 if ch == "\n" else col + 1
    return out


def chars_to_eol(text: str) -> np.ndarray:
    """Characters after this one before the next newline (0 on a line's last character and on the newline)."""
    out, after = np.zeros(len(text)), 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] == "\n":
            after = 0
        else:
            out[i] = after
            after += 1
    return out


def indentation(text: str) -> np.ndarray:
    """Width of the current line's leading whitespace in columns (a tab advances to the next multiple of 8)."""
    out = np.zeros(len(text))
    start = 0
    for line in text.split("\n"):
        width = 0
        for ch in line:
            if ch == " ":
                width += 1
            elif ch == "\t":
                width = (width // 8 + 1) * 8
            else:
                break
        out[start : start + len(line) + 1] = width
        start += len(line) + 1
    return out[: len(text)]


def _lexed(name: str) -> Feature:
    def feature(text: str) -> np.ndarray:
        return _lex(text)[name]

    feature.__name__ = name
    return feature


BUILTIN: dict[str, Feature] = {
    "in_double_quotes": in_double_quotes,
    "in_comment": _lexed("in_comment"),
    "in_string": _lexed("in_string"),
    "bracket_depth": _lexed("bracket_depth"),
    "brace_depth": _lexed("brace_depth"),
    "position_in_line": position_in_line,
    "chars_to_eol": chars_to_eol,
    "indentation": indentation,
    "in_if_condition": _lexed("in_if"),
}


def regex_feature(pattern: str) -> Feature:
    """A feature that is 1 on the characters inside matches of `pattern`, 0 elsewhere."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise RnnlabError(f"invalid regular expression {pattern!r}: {exc}") from None

    def feature(text: str) -> np.ndarray:
        out = np.zeros(len(text))
        for match in compiled.finditer(text):
            out[match.start() : match.end()] = 1
        return out

    return feature


def parse_feature_specs(specs: list[str]) -> dict[str, Feature]:
    """`["name=REGEX", ...]` (the CLI's --feature) -> {name: feature}; names must be new and non-empty."""
    out: dict[str, Feature] = {}
    for spec in specs:
        name, sep, pattern = spec.partition("=")
        name = name.strip()
        if not sep or not name or not pattern:
            raise RnnlabError(f"--feature must look like NAME=REGEX, got {spec!r}")
        if name in BUILTIN or name in out:
            raise RnnlabError(f"--feature name {name!r} is already used")
        out[name] = regex_feature(pattern)
    return out


def compute_features(text: str, extra: dict[str, Feature] | None = None) -> dict[str, np.ndarray]:
    """Every built-in feature (plus `extra`) of `text`, each an array (len(text),)."""
    lexed = _lex(text)  # one lexer pass serves every lexer-based feature (their functions are named after its keys)
    values = {name: lexed[fn.__name__] if fn.__name__ in lexed else fn(text) for name, fn in BUILTIN.items()}
    values.update({name: fn(text) for name, fn in (extra or {}).items()})
    return values
