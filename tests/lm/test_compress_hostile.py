"""compress / decompress against damaged and crafted files and hostile paths: one `error:` line, quickly,
with no output written and an existing output left as it was; outputs get the user's umask permissions."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.config import ModelConfig
from rnnlab.data.tokenizers import CharTokenizer
from rnnlab.errors import RnnlabError
from rnnlab.lm.compress import (
    HEADER_SIZE,
    TOTAL,
    RangeDecoder,
    RangeEncoder,
    compress,
    decompress,
    max_tokens,
    read_header,
    uniform_table,
)
from rnnlab.lm.model import RNNLM, LanguageModel

pytestmark = pytest.mark.timeout(120)

CHARS = "abcdefgh \n"
TEXT = b"abc def\nhag fed cab\nbad cafe\n" * 6


def random_model(seed: int = 0) -> LanguageModel:
    """An untrained character model: enough to drive the coder, built in milliseconds."""
    tokenizer = CharTokenizer(CHARS)
    torch.manual_seed(seed)
    module = RNNLM(ModelConfig(vocab_size=tokenizer.vocab_size, cell="gru", hidden=16, embed=8, layers=1))
    return LanguageModel(module.eval(), tokenizer)


def with_header_crc(blob: bytes) -> bytes:
    """A static file whose header checksum is recomputed after an edit: what a crafted file looks like."""
    end = HEADER_SIZE - 4
    return blob[:end] + struct.pack("<I", zlib.crc32(blob[:end])) + blob[HEADER_SIZE:]


def set_lengths(blob: bytes, tokens: int, size: int) -> bytes:
    edited = bytearray(blob)
    struct.pack_into("<QQ", edited, 4 + 1 + 1 + 16, tokens, size)
    return with_header_crc(bytes(edited))


def test_max_tokens_is_a_tight_bound() -> None:
    """The bound holds for a stream of symbols that each have the largest frequency a table can give (the
    slowest a payload can grow), and with a large vocabulary, where it grows fast enough to see, it is tight."""
    n = 20_000
    for V in (2, 256, 2**20):
        encoder = RangeEncoder()
        encoder.encode(0, TOTAL // V)  # the first token: uniform
        for _ in range(n - 1):
            encoder.encode(0, TOTAL - (V - 1))
        payload = encoder.finish()
        likeliest = np.concatenate([[0], np.arange(TOTAL - (V - 1), TOTAL + 1)])
        decoder = RangeDecoder(payload)
        assert decoder.decode(uniform_table(V)) == 0
        assert [decoder.decode(likeliest) for _ in range(n - 1)] == [0] * (n - 1) and decoder.finished()
        assert n <= max_tokens(len(payload), V)
    assert max_tokens(len(payload), V) < 1.02 * n
    assert max_tokens(7, V) == 0 and max_tokens(100, 1) == 0  # fewer bytes than the first read; nothing to code


def test_absurd_lengths_are_refused_before_decoding() -> None:
    lm = random_model()
    blob = compress(lm, TEXT)
    header = read_header(blob)
    for tokens, size, message in (
        (2**62, 2**62, "holds at most"),
        (2**64 - 1, 2**64 - 1, "holds at most"),
        (header.tokens + 1, header.bytes - 1, "tokens"),  # more tokens than bytes
        (0, header.bytes, "corrupt"),
    ):
        with pytest.raises(RnnlabError, match=message):
            decompress(lm, set_lengths(blob, tokens, size))
    assert decompress(lm, blob) == TEXT


def test_payload_length_field_and_dynamic_settings_are_checked() -> None:
    lm = random_model()
    blob = bytearray(compress(lm, TEXT))
    struct.pack_into("<Q", blob, 4 + 1 + 1 + 16 + 8 + 8 + 4, 2**62)  # the payload length field
    with pytest.raises(RnnlabError, match="truncated"):
        read_header(with_header_crc(bytes(blob)))
    old = struct.pack("<4sBB16sQQIQ", b"RNNZ", 2, 1, bytes(16), 1, 1, 0, 0) + struct.pack("<ddddI", 0, 0, 0, 0, 0)
    with pytest.raises(RnnlabError, match="dynamic settings"):
        read_header(old + struct.pack("<I", zlib.crc32(old)))


def mutations(blob: bytes, seed: int) -> Iterator[bytes]:
    """Truncations, flipped bytes (anywhere, or in the header with its checksum redone), appended bytes."""
    rng = np.random.default_rng(seed)
    for cut in sorted({0, 1, 4, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 1, len(blob) // 2, len(blob) - 1}):
        yield blob[:cut]
    for _ in range(60):
        damaged = bytearray(blob)
        for position in rng.integers(0, len(blob), rng.integers(1, 4)):
            damaged[position] ^= int(rng.integers(1, 256))
        yield bytes(damaged)
    for _ in range(60):
        damaged = bytearray(blob)
        damaged[int(rng.integers(4, HEADER_SIZE - 4))] ^= int(rng.integers(1, 256))
        yield with_header_crc(bytes(damaged))
    yield blob + b"\0"
    yield rng.integers(0, 256, 70, dtype=np.uint8).tobytes()
    yield b"RNNZ" + rng.integers(0, 256, 66, dtype=np.uint8).tobytes()


def test_fuzzed_files_error_or_decode_never_hang() -> None:
    """Each damaged file is refused with an RnnlabError or decodes to the original (the CRC32 of the original
    is checked); the input is short, so even a wrong decoding that ran to the end of the payload is quick."""
    lm = random_model()
    blob = compress(lm, TEXT)
    outcomes = [outcome(lm, damaged) for damaged in mutations(blob, seed=0)]
    assert set(outcomes) <= {"decoded", "error"} and outcomes.count("error") > 100


def outcome(lm: LanguageModel, blob: bytes) -> str:
    """'decoded' (to the original), 'error' (a one-line RnnlabError), or what went wrong instead."""
    try:
        data = decompress(lm, blob)
    except RnnlabError as exc:
        return "error" if "\n" not in str(exc) else f"a multi-line error: {exc}"
    return "decoded" if data == TEXT else f"wrong data: {data!r}"


# --------------------------------------------------------------------------------------------------------
# Through the CLI
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def files(trained_run: Path, tmp_path: Path) -> dict[str, Path]:
    """A text, its compressed file, and a precious existing output that failed commands must not touch."""
    text = tmp_path / "in.txt"
    text.write_text("def f(x):\n    return x\n" * 10)
    packed = tmp_path / "in.rnnz"
    packed.write_bytes(compress(LanguageModel.load(trained_run), text.read_bytes()))
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    return {"text": text, "packed": packed, "precious": precious}


def assert_one_error(result: tuple[int, str, str], *fragments: str) -> None:
    code, out, err = result
    assert code == 2 and not out and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_outputs_that_cannot_be_written_fail_first(trained_run: Path, files: dict[str, Path], tmp_path, cli) -> None:
    text, packed = files["text"], files["packed"]
    assert_one_error(cli("compress", trained_run, text, tmp_path / "missing" / "x.rnnz"), "folder does not exist")
    assert_one_error(cli("compress", trained_run, text, text / "x.rnnz"), "folder does not exist")
    assert_one_error(cli("decompress", trained_run, packed, tmp_path), f"cannot write {tmp_path}: it is a directory")
    assert_one_error(cli("decompress", trained_run, packed, "/dev/null"), "not a regular file")
    assert not (tmp_path / "missing").exists() and no_temporaries(tmp_path)


def test_inputs_that_cannot_be_read(trained_run: Path, files: dict[str, Path], tmp_path, cli) -> None:
    out = files["precious"]
    assert_one_error(cli("compress", trained_run, tmp_path / "nope.txt", out), "cannot read", "nope.txt")
    assert_one_error(cli("compress", trained_run, tmp_path, out), "is not a regular file (a directory)")
    os.mkfifo(tmp_path / "pipe")  # opening it for reading would wait for a writer
    assert_one_error(cli("decompress", trained_run, tmp_path / "pipe", out), "not a regular file (a named pipe)")
    (tmp_path / "fuzz.rnnz").write_bytes(np.random.default_rng(1).integers(0, 256, 70, dtype=np.uint8).tobytes())
    assert_one_error(cli("decompress", trained_run, tmp_path / "fuzz.rnnz", out), "not an rnnlab compressed file")
    assert out.read_text() == "keep me"


def test_unreadable_input(trained_run: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, cli) -> None:
    """chmod 000 does not stop root, so the denial is simulated where the file is opened."""
    real_open, text = os.open, files["text"]

    def fake_open(name, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(name) == text:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    assert_one_error(cli("compress", trained_run, text, files["precious"]), f"cannot read {text}: Permission denied")
    assert files["precious"].read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files and folders (see the patched tests)")
def test_read_only_targets(trained_run: Path, files: dict[str, Path], tmp_path: Path, cli) -> None:
    text, precious = files["text"], files["precious"]
    locked = tmp_path / "locked"
    locked.mkdir()
    precious.chmod(0o444)
    locked.chmod(0o555)
    try:
        assert_one_error(cli("compress", trained_run, text, precious), "the file is read-only")
        assert_one_error(cli("compress", trained_run, text, locked / "x.rnnz"), "folder is not writable")
        text.chmod(0)
        assert_one_error(cli("compress", trained_run, text, tmp_path / "x.rnnz"), str(text), "not readable")
    finally:
        locked.chmod(0o755)
        precious.chmod(0o644)
        text.chmod(0o644)
    assert precious.read_text() == "keep me" and not list(locked.iterdir())


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    trained_run: Path, files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """Disk full while writing (simulated at the fsync): one line, the existing output intact, no temp file."""

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    precious = files["precious"]
    assert_one_error(cli("decompress", trained_run, files["packed"], precious), "No space left on device")
    assert precious.read_text() == "keep me" and no_temporaries(tmp_path)


def test_a_corrupt_file_leaves_the_old_output(trained_run: Path, files: dict[str, Path], tmp_path: Path, cli) -> None:
    packed, precious = files["packed"], files["precious"]
    damaged = bytearray(packed.read_bytes())
    damaged[-2] ^= 0x40
    packed.write_bytes(bytes(damaged))
    assert_one_error(cli("decompress", trained_run, packed, precious), "corrupt")
    assert precious.read_text() == "keep me" and no_temporaries(tmp_path)
    packed.write_bytes(set_lengths(bytes(damaged), 2**62, 2**62))
    assert_one_error(cli("decompress", trained_run, packed, precious), "holds at most")
    assert precious.read_text() == "keep me"


def test_a_link_as_output_updates_its_target(trained_run: Path, files: dict[str, Path], tmp_path: Path, cli) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to(files["precious"])
    assert cli("decompress", trained_run, files["packed"], link)[0] == 0
    assert link.is_symlink() and files["precious"].read_bytes() == files["text"].read_bytes()


@pytest.fixture
def umask() -> Iterator[None]:
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.mark.usefixtures("umask")
def test_outputs_have_the_umask_permissions(trained_run: Path, files: dict[str, Path], tmp_path: Path, cli) -> None:
    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        os.umask(mask)
        packed, unpacked = tmp_path / f"{mask:o}.rnnz", tmp_path / f"{mask:o}.txt"
        assert cli("compress", trained_run, files["text"], packed)[0] == 0
        assert cli("decompress", trained_run, packed, unpacked)[0] == 0
        assert unpacked.read_bytes() == files["text"].read_bytes()
        assert (packed.stat().st_mode & 0o777, unpacked.stat().st_mode & 0o777) == (mode, mode)


@pytest.mark.usefixtures("umask")
def test_esn_predict_output(tmp_path: Path, cli) -> None:
    """`esn predict --output`: an unwritable path fails before the work; the CSV gets the umask's permissions."""
    series = tmp_path / "series.csv"
    series.write_text("a\n" + "".join(f"{np.sin(0.2 * t):.6f}\n" for t in range(300)))
    run = tmp_path / "esn"
    assert cli("esn", "train", series, "--out", run, "--hidden", "20", "--washout", "10")[0] == 0
    assert_one_error(cli("esn", "predict", run, series, "--output", tmp_path / "no" / "p.csv"), "folder")
    assert_one_error(cli("esn", "generate", run, "--steps", "3", "--output", tmp_path), "it is a directory")
    out = tmp_path / "p.csv"
    assert cli("esn", "predict", run, series, "--output", out)[0] == 0
    assert out.read_text().startswith("a\n") and out.stat().st_mode & 0o777 == 0o644
