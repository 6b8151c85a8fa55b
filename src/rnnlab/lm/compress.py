"""Lossless compression with a trained language model: arithmetic (range) coding of its predictions.

A model that predicts the next token with probability p spends -log2 p bits on it; an arithmetic coder
turns exactly that into bits on disk (within a few bytes per file). The compressed size is therefore the
model's own total log loss, the same number `rnnlab eval` reports, made tangible.

For each token, in order:
    logits  = model.step(previous token)                one step, float32, on CPU (models/stepper.py)
    freq    = quantise(logits)                           integers, every freq >= 1, sum == TOTAL
    coder.encode(cum[token], freq[token])                narrows the interval by freq / TOTAL
The first token has no context and is coded with a uniform table over the V tokens.

The decoder runs the very same steps, reading each token out of the interval instead of writing it,
then feeding it back into the model. Decoding is correct only if both sides compute *bit-identical*
frequency tables, so both go through `_Predictor.tables` (one code path, one token at a time, the same
stepper class) and the quantisation uses float arithmetic only element-wise (one exp per entry); its
normalisation is an exact integer sum and division.

With `dynamic` (dynamic evaluation, see rnnlab.lm.dynamic) a copy of the model adapts to the text as it is
coded: after each segment of T tokens, both sides take the same gradient step (`rnnlab.lm.dynamic.rms_step`)
on the same segment from the same state, so their weights stay bit-identical too. The settings are in
the header: decompression needs no options. Speed is dominated by that forward/backward pass per segment.

With `mix` (rnnlab.lm.ngram) the network's distribution is mixed with an n-gram model of the run's training
split and of the text coded so far, the mixture of `rnnlab eval --mix` computed over the whole vocabulary for
each token (`OnlineMixer`); the table is quantised from the mixed probabilities. Both sides feed the mixer the
same tokens, so its counts and weights stay identical. The header holds the mixer's settings and a SHA-256
prefix of the training tokens, so a file meets the same n-gram memory when it is decoded or fails clearly.

Determinism conditions: compress and decompress on CPU (load the model with device="cpu"), with the same
rnnlab, PyTorch and NumPy versions, on the same kind of CPU (kernels may round differently on other
instruction sets), single-threaded in PyTorch (`torch.set_num_threads(1)` is set for the duration of a
call, so the products and the backward pass of dynamic coding have one fixed summation order; NumPy's
matrix products gave the same bits with 1 and 2 BLAS threads here). If the tables differ anyway,
the CRC32 of the original detects it: decompression fails with a clear error, never silently returns
wrong data.

File format (version 6; files of versions 2 to 5 without the mixer are read too), little-endian:
    magic "RNNZ" | version u8 | flags u8 | model id 16 bytes | tokens u64 | bytes u64 | crc32 of the
    original u32 | payload length u64 | [flags & 1, dynamic: lr f64 | decay f64 | beta f64 | eps f64 |
    segment u32] | [flags & 2, mix: discount f64 | lr f64 | block u32 | orders count u8 | orders 16 x u8 |
    second stage u8 | its step f64 | its map rate f64 | n-gram memory id 16 bytes | local orders count u8 |
    local orders 16 x u8 | local window u32 | match model's minimum length u8] | crc32 of the header so far
    u32 | payload
Version 6's mixer has the word contexts (rnnlab.lm.words, from the model's tokenizer) and a learned final
blend; a mixed file of an older version is refused with a clear error.
The model id is a SHA-256 prefix of the weights (names, dtypes, shapes, values), the model config and
the tokenizer, i.e. of the exact function that produced the tables. Version 1 files (a slower predictor
whose tables differ) are refused with a clear error. The header's lengths must agree with each other and
its token count must fit the payload (`max_tokens`), so a damaged or crafted file fails at once instead of
decoding for a very long time.

Inputs: byte-tokenizer models compress any file. Character models compress UTF-8 text whose characters
are all in their vocabulary; other characters are an error that lists them (no escape mechanism: a
character model has no probability for them, and mapping them to `<unk>` would lose them).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import struct
import zlib
from collections.abc import Callable, Generator
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab.errors import RnnlabError
from rnnlab.lm import words
from rnnlab.lm.dynamic import DynamicConfig, rms_step
from rnnlab.lm.model import RNNLM, LanguageModel
from rnnlab.lm.ngram import NgramConfig, OnlineMixer, memory_id
from rnnlab.lm.stepper import make_stepper
from rnnlab.nn.recurrent import State
from rnnlab.threads import one_thread

MAGIC = b"RNNZ"
VERSION = 6
READABLE = (2, 3, 4, 5, 6)  # older files without --mix decode the same (versions 3 to 6 changed only the mixer)
DYNAMIC_FLAG = 1
MIX_FLAG = 2
_HEADER = struct.Struct("<4sBB16sQQIQ")  # magic, version, flags, model id, tokens, bytes, crc32, payload length
_DYNAMIC = struct.Struct("<ddddI")  # lr, decay, beta, eps, segment
# discount, lr, block, number of orders, orders, second stage (0/1), its step, its map rate, n-gram memory id,
# number of local orders, local orders, local window, the match model's minimum length
_MIX = struct.Struct("<ddIB16sBdd16sB16sIB")
_HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size + _HEADER_CRC.size  # without dynamic or mixer settings
DYNAMIC_HEADER_SIZE = HEADER_SIZE + _DYNAMIC.size

# Frequencies sum to TOTAL = 2^TOTAL_BITS. With a 64-bit range kept >= 2^56, r = range >> 24 >= 2^32, so
# integer truncation costs < 2^-32 of the range per symbol, and the >= 1 floor costs <= V / 2^24 of the mass.
TOTAL_BITS = 24
TOTAL = 1 << TOTAL_BITS

Progress = Callable[[int], None]  # called with the number of tokens coded so far


# ---------------------------------------------------------------------------------------------------------
# Range coder (the LZMA construction, widened to 64 bits)
#
# The coder keeps an interval [low, low + range) of the real line, scaled so that `range` has 64 bits
# of precision. Coding a symbol with cumulative frequency c and frequency f out of TOTAL:
#     r = range >> TOTAL_BITS;  low += r * c;  range = r * f
# When range < 2^56 (its top byte is zero), one byte of `low` is settled: shift it out, range <<= 8.
# `low` may overflow 64 bits (a carry); the carry belongs to bytes already "settled", so the most recent
# byte is held back in `cache`, and a run of 0xFF bytes after it is only counted (`pending`): a carry
# turns cache into cache + 1 and the 0xFF run into 0x00s. Without a carry they are written as they are.
# Invariant: 2^56 <= range <= 2^64 - 1 between symbols; 0 <= low < 2^64 after each shift.
# ---------------------------------------------------------------------------------------------------------

_BITS = 64
_MASK = (1 << _BITS) - 1
_TOP = 1 << (_BITS - 8)  # renormalise when range drops below this
_SHIFT = _BITS - 8  # position of the top byte of low


class RangeEncoder:
    """Writes symbols given as (cumulative frequency, frequency) out of TOTAL."""

    def __init__(self) -> None:
        self.low = 0
        self.range = _MASK
        self.cache = 0  # the last byte shifted out, not yet written (a carry may still change it)
        self.pending = 1  # cache + the 0xFF bytes behind it, all waiting for a possible carry
        self.out = bytearray()

    def encode(self, cum: int, freq: int) -> None:
        r = self.range >> TOTAL_BITS
        self.low += r * cum
        self.range = r * freq
        while self.range < _TOP:
            self.range <<= 8
            self._shift_low()

    def _shift_low(self) -> None:
        if self.low < (0xFF << _SHIFT) or self.low > _MASK:  # top byte is final: no later carry can reach it
            carry = self.low >> _BITS
            self.out.append((self.cache + carry) & 0xFF)
            self.out.extend([(0xFF + carry) & 0xFF] * (self.pending - 1))
            self.pending = 0
            self.cache = (self.low >> _SHIFT) & 0xFF
        self.pending += 1  # top byte is 0xFF: a carry could still ripple through it; hold it back
        self.low = (self.low << 8) & _MASK

    def finish(self) -> bytes:
        """Flush all of `low` (8 bytes after the cache); the first byte is always 0 and is dropped."""
        for _ in range(_BITS // 8 + 1):
            self._shift_low()
        return bytes(self.out[1:])


class RangeDecoder:
    """Reads back what RangeEncoder wrote, given the same frequency tables."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.range = _MASK
        self.code = 0  # (value - low), always < range for a valid stream
        for _ in range(_BITS // 8):
            self.code = (self.code << 8) | self._byte()

    def _byte(self) -> int:
        """The next byte; past the end a valid stream never reads, so running out means corruption."""
        if self.pos >= len(self.data):
            raise RnnlabError("compressed data is corrupt (the payload ended too early)")
        self.pos += 1
        return self.data[self.pos - 1]

    def finished(self) -> bool:
        """True when the stream ends exactly here: the encoder's flush wrote its final `low`, so after the
        last symbol every byte has been read and code = value - low = 0. Any damaged tail byte breaks this."""
        return self.pos == len(self.data) and self.code == 0

    def decode(self, cum: np.ndarray) -> int:
        """The symbol s with cum[s] <= target < cum[s + 1]; `cum` has V + 1 entries from 0 to TOTAL."""
        r = self.range >> TOTAL_BITS
        target = self.code // r
        if target >= TOTAL:  # the encoder never lands in [r * TOTAL, range)
            raise RnnlabError("compressed data is corrupt (a symbol lies outside the coded range)")
        s = int(np.searchsorted(cum, target, side="right")) - 1
        lo = int(cum[s])
        self.code -= r * lo
        self.range = r * (int(cum[s + 1]) - lo)
        while self.range < _TOP:
            self.range <<= 8
            self.code = ((self.code << 8) | self._byte()) & _MASK
        return s


# ---------------------------------------------------------------------------------------------------------
# Model -> integer frequency tables
# ---------------------------------------------------------------------------------------------------------

_SCALE = float(1 << 32)  # exp(z - max z) in (0, 1] as an integer of up to 32 bits


def quantise(logits: np.ndarray) -> np.ndarray:
    """Cumulative integer frequencies (V + 1 entries, 0 ... TOTAL) from float logits, deterministically.

        u = floor(2^32 · exp(z − max z))                   (element-wise float64; the max entry is 2^32)
        f = floor(u · (TOTAL − V) / Σu) + 1                (exact integers: every token >= 1, Σf <= TOTAL)
        cum = 0, f0, f0 + f1, ..., TOTAL                   (the rounding remainder goes to the last token)

    Only element-wise float operations and exact integer sums, so equal logits give equal tables.
    """
    z = logits.astype(np.float64)
    top = z.max()
    if not math.isfinite(top):  # NaN propagates to the max; +inf, or -inf everywhere, are no distribution
        raise RnnlabError("the model produced non-finite logits; it cannot drive the coder")
    z -= top
    np.exp(z, out=z)
    return _cumulative(z)


def quantise_probs(p: np.ndarray) -> np.ndarray:
    """As `quantise`, from probabilities (float64, not necessarily normalised): u = floor(2^32 · p / max p)."""
    top = p.max()
    if not (math.isfinite(top) and top > 0):
        raise RnnlabError("the mixer produced no distribution (non-finite or zero probabilities)")
    return _cumulative(p / top)


def _cumulative(z: np.ndarray) -> np.ndarray:
    """The cumulative table from relative weights z in [0, 1] whose largest is 1 (see `quantise`); z is reused."""
    z *= _SCALE
    freq = z.astype(np.int64)
    V, mass = len(freq), int(freq.sum())
    freq *= TOTAL - V  # < 2^56: no overflow
    freq //= mass
    freq += 1
    cum = np.empty(V + 1, dtype=np.int64)
    cum[0] = 0
    freq.cumsum(out=cum[1:])
    cum[V] = TOTAL
    return cum


def uniform_table(V: int) -> np.ndarray:
    """Cumulative frequencies of the uniform distribution over V tokens (each gets TOTAL // V or one more)."""
    return (np.arange(V + 1, dtype=np.int64) * TOTAL) // V


class _Adapter:
    """Dynamic evaluation's update, applied to `module`'s own weights after each coded segment."""

    def __init__(self, module: RNNLM, config: DynamicConfig) -> None:
        self.module, self.config = module, config
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.trained = [p.detach().clone() for p in self.params]
        self.mean_square = [torch.zeros_like(p) for p in self.params]

    def update(self, segment: list[int], state: State | None) -> None:
        """One `rms_step` on the mean log loss of segment[1:] given segment[:-1], from `state`."""
        with torch.inference_mode(False), torch.enable_grad():
            if state is not None:  # a normal tensor copy (the coding loop runs in inference mode)
                state = tuple(s.clone() for s in state) if isinstance(state, tuple) else state.clone()
            ids = torch.tensor([segment])
            logits, _, _ = self.module(ids[:, :-1], state)
            loss = F.cross_entropy(logits[0], ids[0, 1:])
            self.module.zero_grad(set_to_none=True)
            loss.backward()
            rms_step(self.params, self.trained, self.mean_square, self.config)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """The network's distribution in float64, for the mixer."""
    z = logits.astype(np.float64)
    z -= z.max()
    np.exp(z, out=z)
    z /= z.sum()
    return z


class _Predictor:
    """The one code path both sides use: the frequency table of each token given the tokens before it."""

    def __init__(self, lm: LanguageModel, dynamic: DynamicConfig | None, mix: NgramConfig | None = None) -> None:
        if lm.device.type != "cpu" or lm.module.head.weight.dtype != torch.float32:
            raise RnnlabError("compression needs the model in float32 on CPU (load it with device='cpu')")
        module = lm.module.eval()
        self.adapter = None
        if dynamic is not None:
            dynamic.validate()
            module = copy.deepcopy(module)  # adapted as it codes; the loaded model is not changed
            self.adapter = _Adapter(module, dynamic)
        self.stepper = make_stepper(module)
        self.V = module.config.vocab_size
        if self.V < 2:  # every token would be certain: nothing to code, and no bound on a file's length
            raise RnnlabError("compression needs a vocabulary of at least 2 tokens")
        word_tokens = words.word_mask(lm.tokenizer) if mix is not None else None
        self.mixer = None if mix is None else OnlineMixer(lm.training_tokens(), self.V, mix, word_tokens)

    def tables(self) -> Generator[np.ndarray, int, None]:
        """Yields token 0's table (uniform: it has no context), then, each time the caller sends the token it
        has just coded, the next token's table. Run it under `torch.inference_mode()`, single-threaded.

        Dynamic: a segment is T inputs (segment[:-1]) and their T targets; once the last target is known, the
        update uses them and the state the segment started from, exactly as `rnnlab.lm.dynamic.dynamic_nats`."""
        token = yield uniform_table(self.V)
        segment, start = [token], None
        if self.mixer is not None:
            self.mixer.feed(token)
        while True:
            logits = self.stepper.step(token)
            if self.mixer is None:
                token = yield quantise(logits)
            else:
                token = yield quantise_probs(self.mixer.predict(_softmax(logits)))
                self.mixer.update(token)
            if self.adapter is not None:
                segment.append(token)
                if len(segment) > self.adapter.config.segment:
                    self.adapter.update(segment, start)
                    self.stepper.refresh()
                    start, segment = self.stepper.module_state(), [token]


# ---------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------


def model_id(lm: LanguageModel) -> bytes:
    """16 bytes identifying the model function: weights (names, dtypes, shapes, values), config, tokenizer."""
    h = hashlib.sha256()
    config = {
        k: v for k, v in dataclasses.asdict(lm.module.config).items() if k != "dropout"
    }  # dropout is off when coding
    h.update(json.dumps(config, sort_keys=True).encode())
    h.update(json.dumps(lm.tokenizer.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(lm.module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()[:16]


def tokenize(lm: LanguageModel, data: bytes) -> np.ndarray:
    """Token ids that decode back to exactly `data`, or a clear error if the model cannot represent it."""
    tokenizer = lm.tokenizer
    if tokenizer.kind == "byte":
        return tokenizer.encode_bytes(data)  # type: ignore[attr-defined]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RnnlabError(
            f"input is not UTF-8 text (byte {exc.start}); a character model compresses text only "
            "(train with --tokenizer byte to compress any file)"
        ) from None
    ids = tokenizer.encode(text)  # characters outside the vocabulary: an error listing them
    decoded = tokenizer.decode(ids)
    if decoded == text:
        return ids
    # A vocabulary with <unk> maps unseen pieces to it, which would lose them.
    if len(decoded) == len(text):  # characters, one for one
        missing = sorted({a for a, b in zip(text, decoded, strict=True) if a != b})
        shown = " ".join(repr(c) for c in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise RnnlabError(f"{len(missing)} character(s) not in the model's vocabulary: {shown}")
    at = next((i for i, (a, b) in enumerate(zip(text, decoded, strict=False)) if a != b), min(len(text), len(decoded)))
    raise RnnlabError(
        f"the text has pieces not in the model's {tokenizer.kind} vocabulary (they would decode as <unk>), the "
        f"first at character {at}: {text[at : at + 30]!r}; compress with a byte or character model"
    )


def _untokenize(lm: LanguageModel, ids: list[int]) -> bytes:
    if lm.tokenizer.kind == "byte":
        return bytes(ids)
    return lm.tokenizer.decode(ids).encode("utf-8")


def compress(
    lm: LanguageModel,
    data: bytes,
    progress: Progress | None = None,
    dynamic: DynamicConfig | None = None,
    mix: NgramConfig | None = None,
) -> bytes:
    """Compress `data` with `lm`'s next-token predictions (adapting as it goes with `dynamic`, mixed with the
    n-gram model of its run's training text with `mix`); `decompress` with the same run inverts it."""
    if mix is not None:
        _check_orders(mix)
    ids = tokenize(lm, data).tolist()
    payload = b""
    if ids:
        predictor, coder = _Predictor(lm, dynamic, mix), RangeEncoder()
        with one_thread(), torch.inference_mode():
            tables = predictor.tables()
            table = next(tables)
            for i, token in enumerate(ids):
                if i:
                    table = tables.send(ids[i - 1])
                cum = int(table[token])
                coder.encode(cum, int(table[token + 1]) - cum)
                if progress is not None and i % 1024 == 1023:
                    progress(i + 1)
        payload = coder.finish()
    if progress is not None:
        progress(len(ids))
    flags = (DYNAMIC_FLAG if dynamic is not None else 0) | (MIX_FLAG if mix is not None else 0)
    header = _HEADER.pack(MAGIC, VERSION, flags, model_id(lm), len(ids), len(data), zlib.crc32(data), len(payload))
    if dynamic is not None:
        header += _DYNAMIC.pack(dynamic.lr, dynamic.decay, dynamic.beta, dynamic.eps, dynamic.segment)
    if mix is not None:
        memory = memory_id(lm.training_tokens(), lm.tokenizer.vocab_size)
        header += _MIX.pack(
            mix.discount,
            mix.lr,
            mix.block,
            len(mix.orders),
            bytes(mix.orders).ljust(16, b"\0"),
            mix.second_stage,
            mix.bit_lr,
            mix.map_rate,
            memory,
            len(mix.local_orders),
            bytes(mix.local_orders).ljust(16, b"\0"),
            mix.local_window,
            mix.match_len,
        )
    return header + _HEADER_CRC.pack(zlib.crc32(header)) + payload


def _check_orders(mix: NgramConfig) -> None:
    """The orders a header can hold: at most 16 of each kind, each below 256."""
    mix.validate()
    for orders in (mix.orders, mix.local_orders):
        if len(orders) > 16 or max(orders, default=0) > 255:
            raise RnnlabError(f"a compressed file holds at most 16 n-gram orders below 256, got {orders}")


def max_tokens(payload: int, vocab_size: int) -> int:
    """The most tokens a payload of this many bytes can code for a model with this vocabulary, so that a
    damaged or crafted header cannot make decompression run (almost) for ever.

    Every frequency is >= 1, so a token after the first has frequency <= TOTAL - (V - 1) and narrows the
    range by at least b = -log2(1 - (V - 1) / TOTAL) bits. The decoder reads 8 bytes, then one byte per 8
    bits of narrowing, and its range ends >= 2^56: coding n tokens reads at least 8 + ((n - 1)·b - 8) / 8
    bytes, so n <= 1 + (8·payload - 56) / b. The first token (no context) costs log2 V >= 0 bits.
    A one-token vocabulary codes nothing (`compress` refuses it), so its bound is 0.
    """
    if payload < 8 or vocab_size < 2:  # 8: the decoder's first read
        return 0
    bits = -math.log1p(-(vocab_size - 1) / TOTAL) / math.log(2)
    return 1 + math.floor((8 * payload - 56) / bits * (1 + 1e-9))


class Header(NamedTuple):
    """The fields of a compressed file's header."""

    model_id: bytes
    tokens: int
    bytes: int
    crc32: int
    payload: int
    dynamic: DynamicConfig | None  # the settings it was coded with, or None: static
    mix: NgramConfig | None  # the mixer's settings, or None: the network alone
    memory: bytes  # with mix: the n-gram memory's id (`rnnlab.lm.ngram.memory_id`); otherwise empty
    size: int  # of the header itself


def read_header(blob: bytes) -> Header:
    """Parse and validate the header of a compressed file: magic, header checksum, version, dynamic settings
    and lengths that agree with each other. A damaged or crafted file is a one-line RnnlabError."""
    if len(blob) < HEADER_SIZE or blob[:4] != MAGIC:
        raise RnnlabError("not an rnnlab compressed file (bad magic bytes or shorter than the header)")
    _, version, flags, mid, tokens, size, data_crc, payload = _HEADER.unpack_from(blob)
    dynamic, mix, memory = None, None, b""
    if version in READABLE and version < VERSION and flags & MIX_FLAG:  # its mixer settings are laid out otherwise
        raise RnnlabError(
            f"compressed file uses format version {version}'s mixer (--mix), which this rnnlab no longer has; "
            f"decompress it with the rnnlab that wrote it"
        )
    end = _HEADER.size + (_DYNAMIC.size if flags & DYNAMIC_FLAG else 0) + (_MIX.size if flags & MIX_FLAG else 0)
    if len(blob) < end + _HEADER_CRC.size:
        raise RnnlabError("compressed file is truncated (inside its header)")
    (crc,) = _HEADER_CRC.unpack_from(blob, end)
    if zlib.crc32(blob[:end]) != crc:
        raise RnnlabError("compressed file is corrupt (header checksum mismatch)")
    if version not in READABLE or flags & ~(DYNAMIC_FLAG | MIX_FLAG):
        raise RnnlabError(
            f"unsupported compressed format version {version} (flags {flags}); this rnnlab reads {VERSION}"
        )
    if flags & DYNAMIC_FLAG:
        lr, decay, beta, eps, segment = _DYNAMIC.unpack_from(blob, _HEADER.size)
        dynamic = DynamicConfig(lr=lr, decay=decay, segment=segment, beta=beta, eps=eps)
        try:
            dynamic.validate()
        except RnnlabError as exc:
            raise RnnlabError(f"compressed file is corrupt (its dynamic settings: {exc})") from None
    if flags & MIX_FLAG:
        at = _HEADER.size + (_DYNAMIC.size if flags & DYNAMIC_FLAG else 0)
        discount, lr, block, count, orders, second, bit_lr, map_rate, memory, local, local_orders, window, match = (
            _MIX.unpack_from(blob, at)
        )
        mix = NgramConfig(
            tuple(orders[:count]),
            discount,
            lr,
            block,
            bool(second),
            bit_lr,
            map_rate,
            tuple(local_orders[:local]),
            window,
            match,
        )
        try:
            _check_orders(mix)
        except RnnlabError as exc:
            raise RnnlabError(f"compressed file is corrupt (its mixer settings: {exc})") from None
    start = end + _HEADER_CRC.size
    found = len(blob) - start
    if found != payload:
        what = "truncated" if found < payload else "has trailing data"
        raise RnnlabError(f"compressed file is {what} (payload {found} bytes, header says {payload})")
    # Every token decodes to at least one byte, and only an empty input has an empty payload.
    if tokens > size or (tokens == 0) != (size == 0) or (tokens == 0) != (payload == 0):
        raise RnnlabError(f"compressed file is corrupt (header says {tokens} tokens, {size} bytes, payload {payload})")
    return Header(mid, tokens, size, data_crc, payload, dynamic, mix, memory, start)


def check_model(header: Header, lm: LanguageModel) -> None:
    """That `lm` is the model the file was compressed with, and that its payload can hold the header's
    token count (`max_tokens`), so decoding a crafted file ends quickly."""
    if header.model_id != model_id(lm):
        raise RnnlabError(
            f"file was compressed with a different model (id {header.model_id.hex()}, "
            f"this model is {model_id(lm).hex()})"
        )
    if header.mix is not None and header.memory != memory_id(lm.training_tokens(), lm.tokenizer.vocab_size):
        raise RnnlabError(
            "file was compressed with --mix over a different training text (its n-gram memory, "
            f"id {header.memory.hex()}); decompress it with the run it was compressed with"
        )
    most = max_tokens(header.payload, lm.module.config.vocab_size)
    if header.tokens > most:
        raise RnnlabError(
            f"compressed file is corrupt (header says {header.tokens} tokens; "
            f"its {header.payload}-byte payload holds at most {most} for this model)"
        )


def decompress(lm: LanguageModel, blob: bytes, progress: Progress | None = None) -> bytes:
    """Invert `compress`: check the header and the model, decode (with the header's dynamic settings), and
    verify length and CRC32."""
    header = read_header(blob)
    check_model(header, lm)
    n = header.tokens
    ids: list[int] = []
    if n:
        predictor, coder = _Predictor(lm, header.dynamic, header.mix), RangeDecoder(blob[header.size :])
        with one_thread(), torch.inference_mode():
            tables = predictor.tables()
            table = next(tables)
            for i in range(n):
                if i:
                    table = tables.send(ids[-1])
                ids.append(coder.decode(table))
                if progress is not None and i % 1024 == 1023:
                    progress(i + 1)
        if not coder.finished():
            raise RnnlabError("compressed data is corrupt (its last bytes do not end the code)")
    if progress is not None:
        progress(n)
    data = _untokenize(lm, ids)
    if len(data) != header.bytes or zlib.crc32(data) != header.crc32:
        raise RnnlabError(
            "decompressed data fails its checksum: the file is corrupt, or was compressed on a different "
            "CPU type or PyTorch/NumPy version (model tables must be bit-identical)"
        )
    return data
