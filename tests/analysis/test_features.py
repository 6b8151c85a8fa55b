"""Each feature extractor on hand-written snippets (expected values written out character by character)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.analysis.features import (
    chars_to_eol,
    compute_features,
    in_double_quotes,
    indentation,
    parse_feature_specs,
    position_in_line,
    regex_feature,
)
from rnnlab.errors import RnnlabError


def bits(values: np.ndarray) -> str:
    return "".join(str(int(v)) for v in values)


def test_double_quotes_toggle_on_every_quote() -> None:
    assert bits(in_double_quotes('a "bc" d "e')) == "00111100011"


def test_position_in_line_and_chars_to_eol() -> None:
    text = "ab\ncde\n"
    assert bits(position_in_line(text)) == "0120123"
    assert bits(chars_to_eol(text)) == "1002100"


def test_indentation_counts_columns_with_tabs_to_eight() -> None:
    assert list(indentation("x\n  y\n\tz")) == [0, 0, 2, 2, 2, 2, 8, 8]


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ('x = "a(#" # c(', "in_string", "00001111100000"),
        ('x = "a(#" # c(', "in_comment", "00000000001111"),
        ('x = "a(#" # c(', "bracket_depth", "00000000000000"),
        ("a /* b */ c", "in_comment", "00111111100"),
        ("f(a[1]) // x\ny", "bracket_depth", "01122100000000"),
        ("f(a[1]) // x\ny", "in_comment", "00000000111100"),
        ("{a{b}}c", "brace_depth", "1122100"),
        ("s = 'it\\'s' + 1", "in_string", "000011111110000"),
        ("if (a(b)) x;", "in_if_condition", "000111111000"),
        ("if a[0]: b\n", "in_if_condition", "00011110000"),
        ("elif x: y", "in_if_condition", "000000000"),
    ],
)
def test_lexed_features(text: str, name: str, expected: str) -> None:
    assert bits(compute_features(text)[name]) == expected


def test_regex_feature_marks_matches() -> None:
    assert bits(regex_feature(r"\d+")("ab12c3")) == "001101"
    extra = parse_feature_specs(["digits=[0-9]"])
    assert bits(compute_features("a1", extra)["digits"]) == "01"


@pytest.mark.parametrize("spec", ["nodelimiter", "=x", "name=", "bad=(", "indentation=x"])
def test_bad_feature_specs_are_user_errors(spec: str) -> None:
    with pytest.raises(RnnlabError):
        parse_feature_specs([spec])
