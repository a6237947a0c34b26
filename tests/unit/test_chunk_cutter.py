"""GridFS chunk cutting: every split of the stream gives the same chunks (the parser bridge's
habit of splitting at every point), each full but the last."""

from __future__ import annotations

import os

import pytest

from tornado_files.storage.gridfs import ChunkCutter


def cut(pieces: list[bytes], size: int, tail: bytes = b"") -> list[bytes]:
    cutter = ChunkCutter(size, tail)
    chunks = [c for piece in pieces for c in cutter.feed(piece)]
    return [*chunks, bytes(cutter.partial)] if cutter.partial else chunks


@pytest.mark.parametrize("size", [1, 7, 64])
def test_every_split_into_three_pieces_gives_full_chunks_in_order(size):
    data = os.urandom(2 * 64 + 3)  # two full chunks of the largest size, and a tail
    expected = [data[i:i + size] for i in range(0, len(data), size)]
    for a in range(len(data) + 1):  # every split into three pieces, empty ones included
        for b in range(a, len(data) + 1):
            assert cut([data[:a], data[a:b], data[b:]], size) == expected, (a, b)


def test_a_stored_tail_is_completed_first():
    assert cut([b"defgh", b"ijk"], 4, tail=b"abc") == [b"abcd", b"efgh", b"ijk"]


def test_chunks_are_bytes_not_views_of_the_caller_buffer():
    source = bytearray(b"abcdefgh")
    chunks = ChunkCutter(4).feed(source)
    source[:] = b"zzzzzzzz"
    assert chunks == [b"abcd", b"efgh"]
    assert all(type(c) is bytes for c in chunks)
