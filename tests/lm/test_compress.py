"""Model-driven arithmetic coding: exact round trips, size equal to the model's log loss, clear errors."""

from __future__ import annotations

import fnmatch
import glob
import inspect
import math
import shlex
import shutil
import string
import struct
import textwrap
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.config import ModelConfig
from rnnlab.data.tokenizers import CharTokenizer, WordTokenizer
from rnnlab.errors import RnnlabError
from rnnlab.lm.compress import (
    DYNAMIC_HEADER_SIZE,
    HEADER_SIZE,
    MIX_FLAG,
    TOTAL,
    RangeDecoder,
    RangeEncoder,
    compress,
    decompress,
    quantise,
    read_header,
)
from rnnlab.lm.dynamic import DynamicConfig
from rnnlab.lm.model import RNNLM, LanguageModel
from rnnlab.lm.ngram import NgramConfig
from rnnlab.lm.stepper import CellStepper, make_stepper

# Real text: Python's own source. The models train on the first part; HELD_OUT is never trained on.
SOURCE = "".join(inspect.getsource(module) for module in (textwrap, string, shlex, fnmatch, glob))
HELD_OUT = SOURCE[-4000:]
OPTIONS = {"preset": "tiny", "hidden": 48, "embed": 16, "batch_size": 8, "seq_len": 32, "progress": False}
DYNAMIC = DynamicConfig(lr=1e-3, decay=1e-3, segment=20)


def train_run(root: Path, tokenizer: str) -> Path:
    corpus = root / "corpus.py"
    corpus.write_text(SOURCE[:-4000])
    out = root / tokenizer
    rnnlab.train([str(corpus)], out=out, max_steps=30, eval_every=10, lr=1e-2, tokenizer=tokenizer, **OPTIONS)
    return out


@pytest.fixture(scope="module")
def char_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_run(tmp_path_factory.mktemp("compress"), "char")


@pytest.fixture(scope="module")
def byte_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_run(tmp_path_factory.mktemp("compress"), "byte")


def random_model(chars: str, seed: int, unk: bool = False, cell: str = "gru", **options: Any) -> LanguageModel:
    """An untrained character model (random weights): enough to drive the coder, built in milliseconds."""
    tokenizer = CharTokenizer(chars, unk=unk)
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, cell=cell, hidden=16, embed=8, layers=1, **options)
    module = RNNLM(config)
    return LanguageModel(module.eval(), tokenizer)


def model_bits(lm: LanguageModel, data: bytes, dynamic: DynamicConfig | None = None) -> float:
    """The model's total code length of `data` as `rnnlab eval` computes it (a sequence forward, not steps):
    the scored tokens, static or dynamic, + log2 V for the first token."""
    score = lm.score(data, dynamic=dynamic)
    return score.nats_per_token * score.tokens / math.log(2) + math.log2(lm.module.config.vocab_size)


def test_range_coder_round_trip_including_carries() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        V = int(rng.integers(2, 300))
        tables = [quantise((rng.standard_normal(V) * rng.uniform(0, 20)).astype(np.float32)) for _ in range(500)]
        # Mostly the top symbols (low grows toward the top of the range: long 0xFF runs, then carries).
        symbols = [V - 1 if rng.random() < 0.7 else int(rng.integers(V)) for _ in tables]
        encoder = RangeEncoder()
        for table, s in zip(tables, symbols, strict=True):
            encoder.encode(int(table[s]), int(table[s + 1] - table[s]))
        data = encoder.finish()
        decoder = RangeDecoder(data)
        assert [decoder.decode(table) for table in tables] == symbols
        assert decoder.finished()
        ideal = sum(-math.log2((t[s + 1] - t[s]) / TOTAL) for t, s in zip(tables, symbols, strict=True))
        assert ideal <= 8 * len(data) <= ideal + 8 * 9


def test_quantise_gives_every_token_a_frequency_and_a_fixed_total() -> None:
    logits = np.array([0.0, -1e30, 50.0, 3.0, -np.inf], dtype=np.float32)
    cum = quantise(logits)
    freq = np.diff(cum)
    assert cum[0] == 0 and cum[-1] == TOTAL
    assert freq.min() >= 1 and int(np.argmax(freq)) == 2
    np.testing.assert_array_equal(quantise(logits.copy()), cum)


def test_round_trip_random_strings_from_the_vocabulary(char_run: Path) -> None:
    lm = LanguageModel.load(char_run)
    chars = lm.tokenizer.decode(range(lm.tokenizer.vocab_size))
    rng = np.random.default_rng(1)
    for n in (1, 2, 17, 300):
        text = "".join(rng.choice(list(chars), size=n)).encode()
        blob = compress(lm, text)
        assert decompress(lm, blob) == text
        assert read_header(blob).tokens == n


def test_empty_input_is_just_a_header(char_run: Path, byte_run: Path) -> None:
    for run in (char_run, byte_run):
        lm = LanguageModel.load(run)
        blob = compress(lm, b"")
        assert len(blob) == HEADER_SIZE
        assert decompress(lm, blob) == b""


def test_real_text_size_matches_the_models_log_loss(char_run: Path, byte_run: Path) -> None:
    """Compressed bits = the model's total bits (eval's log-probs) within 1%, plus the coder's flush."""
    text = HELD_OUT[:2000].encode()
    for run in (char_run, byte_run):
        lm = LanguageModel.load(run)
        blob = compress(lm, text)
        assert decompress(lm, blob) == text
        payload_bits = 8 * (len(blob) - HEADER_SIZE)
        ideal = model_bits(lm, text)
        assert abs(payload_bits - ideal) <= 0.01 * ideal + 64, (payload_bits, ideal)
    assert 8 * len(blob) < 0.7 * 8 * len(text)  # the trained byte model does compress its kind of text


def test_dynamic_round_trip_and_size_match_dynamic_eval(char_run: Path, byte_run: Path) -> None:
    """--dynamic: the settings travel in the header (decompress takes none), the size is eval --dynamic's
    total bits within 1% plus the flush, and the loaded model is not changed by adapting."""
    text = HELD_OUT[:2000].encode()
    for run in (char_run, byte_run):
        lm = LanguageModel.load(run)
        weights = {k: v.clone() for k, v in lm.module.state_dict().items()}
        blob = compress(lm, text, dynamic=DYNAMIC)
        header = read_header(blob)
        assert header.dynamic == DYNAMIC and header.size == DYNAMIC_HEADER_SIZE
        assert decompress(lm, blob) == text
        payload_bits = 8 * (len(blob) - header.size)
        ideal = model_bits(lm, text, DYNAMIC)
        assert abs(payload_bits - ideal) <= 0.01 * ideal + 64, (payload_bits, ideal)
        assert abs(ideal - model_bits(lm, text)) > 0.01 * ideal  # and that differs from the static size
        assert all(torch.equal(v, lm.module.state_dict()[k]) for k, v in weights.items())


def test_dynamic_coding_adapts_to_repetitive_text(char_run: Path) -> None:
    lm = LanguageModel.load(char_run)
    text = ("eat a tuna diet " * 60).encode()  # far from the training text, and repetitive
    static = compress(lm, text)
    adapted = compress(lm, text, dynamic=DynamicConfig(lr=3e-3, decay=0.0, segment=20))
    assert len(adapted) < 0.8 * len(static)
    assert decompress(lm, adapted) == text


def test_round_trip_through_the_general_stepper() -> None:
    """A cell without a fused PyTorch module takes the one-step module forward, static and dynamic."""
    lm = random_model("abcdefgh \n", seed=3, cell="gru-cho")
    text = b"abc def\nhag fed cab\n" * 8
    for dynamic in (None, DynamicConfig(lr=1e-2, segment=7)):
        assert decompress(lm, compress(lm, text, dynamic=dynamic)) == text


def test_round_trip_through_the_cells_own_numpy_step() -> None:
    """The mLSTM block steps with its own NumPy step (CellStepper), static and dynamic; the static file is the
    length the sequence forward gives the text (to float32 rounding and the coder's few bytes)."""
    lm = random_model("abcdefgh \n", seed=4, cell="mlstm")
    assert isinstance(make_stepper(lm.module), CellStepper)
    text = b"abc def\nhag fed cab\n" * 8
    static = compress(lm, text)
    assert decompress(lm, static) == text
    ideal = model_bits(lm, text)
    assert abs(8 * (len(static) - HEADER_SIZE) - ideal) <= 0.01 * ideal + 64
    assert decompress(lm, compress(lm, text, dynamic=DynamicConfig(lr=1e-2, segment=7))) == text


def test_round_trip_with_local_attention_heads() -> None:
    """The mLSTM block with a window (nn/local.py) steps with its NumPy step; its file is the length the chunked
    sequence forward gives the text, so stepping and chunking see the same window."""
    lm = random_model("abcdefgh \n", seed=5, cell="mlstm-local", window=5)
    assert isinstance(make_stepper(lm.module), CellStepper)
    text = b"abc def\nhag fed cab\n" * 8
    static = compress(lm, text)
    assert decompress(lm, static) == text
    ideal = model_bits(lm, text)
    assert abs(8 * (len(static) - HEADER_SIZE) - ideal) <= 0.01 * ideal + 64
    assert decompress(lm, compress(lm, text, dynamic=DynamicConfig(lr=1e-2, segment=7))) == text


def test_byte_model_compresses_any_bytes(byte_run: Path) -> None:
    lm = LanguageModel.load(byte_run)
    data = np.random.default_rng(2).integers(0, 256, 500, dtype=np.uint8).tobytes() + b"\xff\xfe\x00"
    assert decompress(lm, compress(lm, data)) == data


def test_corrupted_or_truncated_files_are_clear_errors(byte_run: Path) -> None:
    lm = LanguageModel.load(byte_run)
    blob = compress(lm, HELD_OUT[:600].encode())
    for position in (HEADER_SIZE, HEADER_SIZE + 40, len(blob) // 2, len(blob) - 1):  # payload bytes
        damaged = bytearray(blob)
        damaged[position] ^= 0x55
        with pytest.raises(RnnlabError, match=r"corrupt|checksum"):
            decompress(lm, bytes(damaged))
    damaged = bytearray(blob)
    damaged[20] ^= 1  # inside the model id: the header checksum catches it
    with pytest.raises(RnnlabError, match="header checksum"):
        decompress(lm, bytes(damaged))
    with pytest.raises(RnnlabError, match="truncated"):
        decompress(lm, blob[:-10])
    with pytest.raises(RnnlabError, match="not an rnnlab compressed file"):
        decompress(lm, blob[: HEADER_SIZE - 1])
    with pytest.raises(RnnlabError, match="not an rnnlab compressed file"):
        decompress(lm, b"PK\x03\x04" + blob[4:])


def test_damaged_dynamic_files_and_old_versions_are_clear_errors() -> None:
    lm = random_model("abcdefgh \n", seed=0)
    blob = compress(lm, b"abc def\nhag" * 20, dynamic=DYNAMIC)
    for position, message in ((60, "header checksum"), (5, "header checksum"), (len(blob) - 2, "corrupt|checksum")):
        damaged = bytearray(blob)  # a dynamic setting, the flags, the payload
        damaged[position] ^= 0x10
        with pytest.raises(RnnlabError, match=message):
            decompress(lm, bytes(damaged))
    with pytest.raises(RnnlabError, match="truncated"):
        decompress(lm, blob[: HEADER_SIZE + 4])
    old = struct.pack("<4sBB16sQQIQ", b"RNNZ", 1, 0, bytes(16), 0, 0, 0, 0)  # a version 1 header
    with pytest.raises(RnnlabError, match="unsupported compressed format version 1"):
        decompress(lm, old + struct.pack("<I", zlib.crc32(old)))
    # Version 2 to 5 files decode unless they were mixed (versions 3 to 6 changed the mixer).
    static = compress(lm, b"abc def\nhag" * 20)
    version_2 = static[:4] + b"\x02" + static[5 : HEADER_SIZE - 4]
    version_2 += struct.pack("<I", zlib.crc32(version_2)) + static[HEADER_SIZE:]
    assert decompress(lm, version_2) == b"abc def\nhag" * 20
    layouts = {2: "<ddIB16sBdd16s", 3: "<ddIB16sBdd16s", 4: "<ddIB16sBdd16sB16sI", 5: "<ddIB16sBdd16sB16sIB"}
    for version, settings in layouts.items():
        mixed = struct.pack("<4sBB16sQQIQ", b"RNNZ", version, MIX_FLAG, bytes(16), 1, 1, 0, 8)
        mixed += bytes(struct.calcsize(settings))
        with pytest.raises(RnnlabError, match=f"version {version}'s mixer"):
            decompress(lm, mixed + struct.pack("<I", zlib.crc32(mixed)) + bytes(8))


def test_a_different_model_is_refused() -> None:
    chars = "abcdefgh \n"
    blob = compress(random_model(chars, seed=0), b"abc def\nhag")
    assert decompress(random_model(chars, seed=0), blob) == b"abc def\nhag"
    with pytest.raises(RnnlabError, match="different model"):
        decompress(random_model(chars, seed=1), blob)  # same architecture and vocabulary, other weights


def test_characters_outside_the_vocabulary_are_listed() -> None:
    with pytest.raises(RnnlabError, match=r"'z'"):
        compress(random_model("abc", seed=0), b"abcz")
    with pytest.raises(RnnlabError, match=r"'z'"):  # <unk> in the vocabulary would lose 'z': still an error
        compress(random_model("abc", seed=0, unk=True), b"abcz")
    with pytest.raises(RnnlabError, match="not UTF-8"):
        compress(random_model("abc", seed=0), b"ab\xff")


def test_words_outside_a_word_vocabulary_are_a_clear_error() -> None:
    """A word model maps unseen words to <unk> (one token for several characters): named, never a crash."""
    tokenizer = WordTokenizer(["the", "cat", " "])
    module = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size, hidden=8, embed=4, layers=1))
    lm = LanguageModel(module.eval(), tokenizer)
    assert decompress(lm, compress(lm, b"the cat the")) == b"the cat the"
    with pytest.raises(RnnlabError, match=r"word vocabulary .* character 8: 'dog the'"):
        compress(lm, b"the cat dog the")


def test_cli_round_trip_and_error(byte_run: Path, tmp_path: Path, cli) -> None:
    original = tmp_path / "in.txt"
    original.write_bytes(HELD_OUT[:800].encode())
    packed, unpacked = tmp_path / "in.rnnz", tmp_path / "out.txt"
    code, _, err = cli("compress", byte_run, original, packed)
    assert code == 0 and "bits per char" in err
    assert cli("decompress", byte_run, packed, unpacked)[0] == 0
    assert unpacked.read_bytes() == original.read_bytes()
    assert cli("compress", byte_run, original, packed, "--dynamic", "--dynamic-segment", "30")[0] == 0
    assert read_header(packed.read_bytes()).dynamic == DynamicConfig(segment=30)
    assert cli("decompress", byte_run, packed, unpacked)[0] == 0  # no flags: the file has the settings
    assert unpacked.read_bytes() == original.read_bytes()
    packed.write_bytes(packed.read_bytes()[:-3])
    code, _, err = cli("decompress", byte_run, packed, unpacked)
    assert code == 2
    assert err.startswith("error: ") and "truncated" in err and len(err.strip().splitlines()) == 1


MIX = NgramConfig(block=16)


def test_mix_round_trip_and_size_match_eval_mix(char_run: Path, byte_run: Path) -> None:
    """--mix and --dynamic --mix: the mixer's settings travel in the header, the file decodes to the same bytes,
    and its size is `eval --mix`'s total bits (the same mixture, computed all at once) within 1% plus the flush."""
    text = HELD_OUT[:1500].encode()
    for run in (char_run, byte_run):
        lm = LanguageModel.load(run)
        static = compress(lm, text)
        for dynamic in (None, DYNAMIC):
            blob = compress(lm, text, dynamic=dynamic, mix=MIX)
            header = read_header(blob)
            assert header.mix == MIX and header.dynamic == dynamic
            assert decompress(lm, blob) == text
            score = lm.score(text, dynamic=dynamic, mix=MIX)
            ideal = score.nats_per_token * score.tokens / math.log(2) + math.log2(lm.module.config.vocab_size)
            payload_bits = 8 * (len(blob) - header.size)
            assert abs(payload_bits - ideal) <= 0.01 * ideal + 64, (payload_bits, ideal)
            assert len(blob) < 0.9 * len(static)  # the n-gram memory of the training text pays


def test_a_changed_training_text_or_model_is_refused_by_mix_files(char_run: Path, tmp_path: Path) -> None:
    text = HELD_OUT[:300].encode()
    blob = compress(LanguageModel.load(char_run), text, mix=MIX)
    other = tmp_path / "other"
    shutil.copytree(char_run, other)
    train_bin = other / "tokens" / "train.bin"
    ids = train_bin.read_bytes()
    width = len(ids) // len(LanguageModel.load(char_run).training_tokens())
    backwards = np.frombuffer(ids, dtype=f"<u{width}")[::-1].tobytes()  # the same ids, in the other order
    assert backwards != ids
    train_bin.write_bytes(backwards)
    with pytest.raises(RnnlabError, match="different training text"):
        decompress(LanguageModel.load(other), blob)
    lm = LanguageModel.load(char_run)
    with pytest.raises(RnnlabError, match="tokens/ folder"):  # the same model outside its run: no training text
        decompress(LanguageModel(lm.module, lm.tokenizer), blob)


def test_damaged_mix_settings_are_clear_errors(char_run: Path, cli, tmp_path: Path) -> None:
    lm = LanguageModel.load(char_run)
    blob = compress(lm, HELD_OUT[:200].encode(), mix=MIX)
    at = HEADER_SIZE - 4  # the mixer's settings start where a static header's checksum would
    for settings in (
        NgramConfig(discount=0.0),
        NgramConfig(lr=math.inf),
        NgramConfig(block=0),
        NgramConfig(orders=()),
        NgramConfig(bit_lr=math.nan),
        NgramConfig(map_rate=2.0),
        NgramConfig(local_orders=(0, 2)),
        NgramConfig(local_orders=(2, 2)),
        NgramConfig(local_window=0),
    ):
        memory = read_header(blob).memory
        packed = struct.pack(
            "<ddIB16sBdd16sB16sIB",
            settings.discount,
            settings.lr,
            settings.block,
            len(settings.orders),
            bytes(settings.orders).ljust(16, b"\0"),
            settings.second_stage,
            settings.bit_lr,
            settings.map_rate,
            memory,
            len(settings.local_orders),
            bytes(settings.local_orders).ljust(16, b"\0"),
            settings.local_window,
            settings.match_len,
        )
        header = blob[:at] + packed
        forged = header + struct.pack("<I", zlib.crc32(header)) + blob[read_header(blob).size :]
        with pytest.raises(RnnlabError, match="its mixer settings"):
            decompress(lm, forged)
    original, packed_file = tmp_path / "in.txt", tmp_path / "in.rnnz"
    original.write_text(HELD_OUT[:400])
    code, _, err = cli("compress", char_run, original, packed_file, "--mix", "--mix-discount", "2")
    assert code == 2 and err == "error: --mix-discount must be in (0, 1], got 2.0\n" and not packed_file.exists()
    assert cli("compress", char_run, original, packed_file, "--mix")[0] == 0
    code, _, err = cli("decompress", char_run, packed_file, tmp_path / "out.txt")
    assert code == 0 and (tmp_path / "out.txt").read_text() == original.read_text()


def test_a_model_with_non_finite_output_is_refused_with_or_without_mixing(char_run: Path) -> None:
    """The mixer's second stage must not read NaN probabilities as "no opinion" and code on with a broken model."""
    lm = LanguageModel.load(char_run)
    with torch.no_grad():
        lm.module.head.bias.fill_(math.nan)
    for options in ({}, {"mix": MIX}, {"dynamic": DYNAMIC, "mix": MIX}):
        with pytest.raises(RnnlabError, match="non-finite"):
            compress(lm, HELD_OUT[:200].encode(), **options)
