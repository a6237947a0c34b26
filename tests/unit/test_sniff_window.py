"""SniffWindow: the same sample whatever the chunking, bounded whatever the tag's size, and
rebuilt from stored bytes exactly as a resumed upload does."""

from __future__ import annotations

import random

import magic
import pytest

from tests.support import PDF_HEAD, id3v2_tag
from tornado_files.sniff_window import SniffWindow, id3v2_tag_end

KIB = 1024
WINDOW = 64 * KIB


def chunked(content: bytes, seed: int) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(content):
        size = rng.choice((1, 9, 10, 11, 4 * KIB, 70 * KIB))
        pieces.append((at, content[at:at + size]))
        at += size
    return pieces


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("content", [
    id3v2_tag(200 * KIB), id3v2_tag(10), PDF_HEAD + bytes(100 * KIB), b"ID3", b"short",
    id3v2_tag(300, id3v2_tag(150 * KIB))],
    ids=["large-tag", "small-tag", "no-tag", "three-bytes", "short", "stacked-tags"])
def test_any_chunking_gives_the_same_sample(content, seed):
    whole = SniffWindow(WINDOW)
    whole.take(0, content)
    window = SniffWindow(WINDOW)
    for offset, chunk in chunked(content, seed):
        window.take(offset, chunk)
    assert window.sample() == whole.sample()
    assert len(window.sample()) <= WINDOW + 10


def test_a_tagged_mp3_sample_is_what_libmagic_says_of_the_whole_file():
    content = id3v2_tag(500 * KIB)
    window = SniffWindow(WINDOW)
    window.take(0, content)
    assert window.complete()
    assert window.hold_from() == id3v2_tag_end(content[:10]) == content.index(b"\xff\xfb")
    mime = magic.Magic(mime=True)
    assert mime.from_buffer(content[:WINDOW]) == "application/octet-stream"  # the old window
    assert mime.from_buffer(window.sample()) == mime.from_buffer(content) == "audio/mpeg"


def test_a_file_that_ends_inside_its_tag_is_judged_by_its_first_bytes():
    content = id3v2_tag(100 * KIB, b"")
    window = SniffWindow(WINDOW)
    window.take(0, content)
    assert not window.complete()
    assert window.sample() == content[:WINDOW]


def test_a_window_rebuilt_from_stored_bytes_continues_like_the_original():
    content = id3v2_tag(200 * KIB)
    tag_end = id3v2_tag_end(content[:10])
    stored = tag_end + 3 * KIB  # a PATCH ended just after the tag
    rebuilt = SniffWindow(WINDOW)
    rebuilt.take(0, content[:WINDOW])
    assert rebuilt.tag_end == tag_end
    rebuilt.take(tag_end, content[tag_end:stored])
    rebuilt.take(stored, content[stored:])
    original = SniffWindow(WINDOW)
    original.take(0, content)
    assert rebuilt.sample() == original.sample()


@pytest.mark.parametrize("header", [
    b"ID3\x05\x00\x00\x00\x00\x00\x10",  # no such version
    b"ID3\x03\xff\x00\x00\x00\x00\x10",  # revision 0xFF
    b"ID3\x03\x00\x00\x00\x80\x00\x10",  # not synchsafe
    b"ID3\x03\x00\x00\x00\x00\x00",  # too short
])
def test_bytes_that_break_the_header_rules_are_no_tag(header):
    assert id3v2_tag_end(header) == 0


def test_stacked_tags_are_all_skipped():
    """Taggers that add a tag in front of an existing one: file(1) still sees audio/mpeg."""
    content = id3v2_tag(1000, id3v2_tag(200 * KIB))
    window = SniffWindow(WINDOW)
    window.take(0, content)
    assert window.hold_from() == content.index(b"\xff\xfb")
    assert magic.Magic(mime=True).from_buffer(window.sample()) == "audio/mpeg"


def test_a_utf8_character_cut_by_the_window_does_not_make_the_text_latin1():
    text = ("a" * (WINDOW - 1) + "é" + "b" * 100).encode()  # é straddles the window's end
    window = SniffWindow(WINDOW)
    window.take(0, text)
    encoding = magic.Magic(mime_encoding=True)
    assert encoding.from_buffer(text[:WINDOW]) == "iso-8859-1"  # what a plain cut gives
    assert encoding.from_buffer(window.sample()) in ("us-ascii", "utf-8")
