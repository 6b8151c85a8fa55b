import numpy as np
import pytest

from rnnlab.data.stream import BatchStream, TokenWriter, open_tokens, token_dtype
from rnnlab.errors import RnnlabError


def test_streams_are_contiguous_and_chunks_continue_each_other():
    tokens = np.arange(2 * 21)  # N=2 streams of S=21 tokens, T=5 -> 4 chunks per epoch
    stream = BatchStream(tokens, batch_size=2, seq_len=5)
    assert stream.chunks_per_epoch == 4
    x0, y0 = stream.batch(0)
    x1, _ = stream.batch(1)
    assert x0.tolist() == [[0, 1, 2, 3, 4], [21, 22, 23, 24, 25]]
    assert y0.tolist() == [[1, 2, 3, 4, 5], [22, 23, 24, 25, 26]]
    assert x1[:, 0].tolist() == [5, 26]  # row i of chunk k+1 starts where row i of chunk k stopped
    for k in range(stream.chunks_per_epoch):
        x, y = stream.batch(k)
        assert (y[:, :-1] == x[:, 1:]).all()
    with pytest.raises(IndexError):
        stream.batch(4)


def test_too_short_input_is_a_clear_error():
    with pytest.raises(RnnlabError, match=r"too short.*--batch-size 4 x --seq-len 10"):
        BatchStream(np.arange(40), batch_size=4, seq_len=10)


def test_token_store_round_trip_through_memmap(tmp_path):
    dtype = token_dtype(300)
    assert dtype == np.uint16
    writer = TokenWriter(tmp_path / "t.bin", dtype)
    writer.write(np.array([1, 299, 7]))
    writer.write(np.array([4]))
    writer.close()
    mapped = open_tokens(tmp_path / "t.bin", dtype)
    assert isinstance(mapped, np.memmap)
    assert mapped.tolist() == [1, 299, 7, 4]
    assert token_dtype(256) == np.uint8 and token_dtype(70000) == np.uint32
