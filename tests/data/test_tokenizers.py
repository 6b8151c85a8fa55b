import numpy as np
import pytest

from rnnlab.data.tokenizers import ByteTokenizer, CharTokenizer, tokenizer_from_dict
from rnnlab.errors import RnnlabError


def test_char_round_trip_and_ids_in_codepoint_order():
    text = "héllo, wörld! 🙂\n\ttabs"
    tok = CharTokenizer.fit([text])
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.vocab_size == len(set(text))
    assert [tok.chars[i] for i in ids[:3]] == ["h", "é", "l"]
    assert tok.chars == sorted(set(text))


def test_char_json_round_trip():
    tok = CharTokenizer.fit(["abc\n"], unk=True)
    again = tokenizer_from_dict(tok.to_dict())
    assert again.decode(again.encode("cab?")) == "cab\ufffd"


def test_unknown_characters_are_listed_in_the_error():
    tok = CharTokenizer.fit(["abc"])
    with pytest.raises(RnnlabError, match=r"2 character\(s\).*'x' 'y'.*--unknown unk"):
        tok.encode("abxyx")


def test_unknown_characters_map_to_unk_when_asked():
    tok = CharTokenizer.fit(["abc"], unk=True)
    ids = tok.encode("azc")
    assert ids.tolist() == [0, 3, 2]
    assert tok.vocab_size == 4


def test_byte_tokenizer_accepts_anything_and_round_trips():
    tok = ByteTokenizer()
    data = bytes(range(256))
    assert tok.encode_bytes(data).tolist() == list(range(256))
    text = "naïve ☃ text"
    assert tok.decode(tok.encode(text)) == text


def test_byte_streaming_decoder_waits_for_complete_characters():
    tok = ByteTokenizer()
    decode = tok.decoder()
    pieces = [decode(int(i)) for i in tok.encode("a☃b")]
    assert pieces == ["a", "", "", "☃", "b"]


def test_encode_empty_text():
    assert CharTokenizer.fit(["ab"]).encode("").dtype == np.int64
    assert len(ByteTokenizer().encode("")) == 0
