"""Which bytes of a file libmagic is shown, gathered while the file streams past.

Normally the file's first ``size`` bytes. Audio files often open with an ID3v2 tag whose
cover art is larger than that window (a 200 KiB picture is common), so the first bytes are
only the picture and libmagic answers ``application/octet-stream``. For a file that opens
with an ID3v2 tag the window is the tag's header (its size field zeroed) followed by the
first ``size`` bytes after the tag: what libmagic would conclude from the whole file, without
holding the tag. Tags stacked one after the other (taggers that add one instead of rewriting)
are skipped alike, up to ``MAX_TAGS``. At most ``2 * size`` bytes are kept, whatever the
tags' sizes. A sample cut at ``size`` bytes in the middle of a UTF-8 character loses that
character's first bytes, so that valid UTF-8 text is not taken for ISO-8859.
"""

from __future__ import annotations

ID3V2_HEADER_SIZE = 10
MAX_TAGS = 8
_ID3V2_FOOTER_SIZE = 10
_ID3V2_FOOTER_FLAG = 0x10


def id3v2_tag_end(header: bytes) -> int:
    """The offset where the content starts after a leading ID3v2 tag, or 0 without one.

    ``header`` is the file's first 10 bytes. ID3v2.4.0 structure §3.1: ``ID3``, a major
    version (2 to 4) and a revision below 0xFF, a flags byte, then the tag size in four 7-bit
    ("synchsafe") bytes, counting neither the 10-byte header nor the 10-byte footer that
    flag bit 4 announces (§3.4). Bytes that break these rules are no tag.

    >>> id3v2_tag_end(b"ID3\\x03\\x00\\x00\\x00\\x00\\x01\\x00")
    138
    >>> id3v2_tag_end(b"ID3\\x04\\x00\\x10\\x00\\x00\\x00\\x0a"), id3v2_tag_end(b"%PDF-1.4\\n\\n")
    (30, 0)
    >>> id3v2_tag_end(b"ID3\\x03\\x00\\x00\\x80\\x00\\x00\\x00")  # a size byte over 0x7F
    0
    """
    if len(header) < ID3V2_HEADER_SIZE or header[:3] != b"ID3":
        return 0
    version, revision, flags = header[3], header[4], header[5]
    size_bytes = header[6:10]
    if version not in (2, 3, 4) or revision == 0xFF or any(b & 0x80 for b in size_bytes):
        return 0
    size = 0
    for byte in size_bytes:
        size = (size << 7) | byte
    footer = _ID3V2_FOOTER_SIZE if version == 4 and flags & _ID3V2_FOOTER_FLAG else 0
    return ID3V2_HEADER_SIZE + size + footer


class SniffWindow:
    """Collects one file's sniff sample from its chunks; ``take`` them in order of offset.

    A resumed upload rebuilds its window from what is stored: ``take(0, first bytes)``,
    then, when ``tag_end`` says there is a tag, ``take(tag_end, the bytes after it)``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._first = bytearray()  # the file's first `size` bytes
        self._after = bytearray()  # `size` bytes from `tag_end`, when there is a tag
        self.tag_end: int | None = None  # None until the first 10 bytes (or all) are in
        self._tags = 0

    def take(self, offset: int, chunk: bytes) -> None:
        """Keep what ``chunk`` (the file's bytes from ``offset``) adds to the sample."""
        self._first += _slice(chunk, offset, len(self._first), self.size)
        if self.tag_end is None and len(self._first) >= min(ID3V2_HEADER_SIZE, self.size):
            self.tag_end = id3v2_tag_end(bytes(self._first[:ID3V2_HEADER_SIZE]))
        while self.tag_end:
            self._after += _slice(chunk, offset, self.tag_end + len(self._after),
                                  self.tag_end + self.size)
            if len(self._after) < ID3V2_HEADER_SIZE or self._tags >= MAX_TAGS:
                return
            stacked = id3v2_tag_end(bytes(self._after[:ID3V2_HEADER_SIZE]))
            if not stacked:
                return
            # Another tag follows: the content starts after it.
            self.tag_end += stacked
            self._after = bytearray()
            self._tags += 1

    def hold_from(self) -> int:
        """The offset from which chunks must wait for the type: the tag's bytes (metadata,
        and up to 256 MiB) go on to storage, where an abort removes them like any other."""
        return self.tag_end or 0

    def complete(self) -> bool:
        """Enough is in to sniff; less means the file is shorter, which ``finish`` decides."""
        if self.tag_end is None:
            return False
        return len(self._after if self.tag_end else self._first) >= self.size

    def sample(self) -> bytes:
        """What libmagic is shown (when the file ended inside a tag: its first bytes)."""
        if self.tag_end and self._after:
            header = bytes(self._first[:5]) + bytes(ID3V2_HEADER_SIZE - 5)
            return header + _whole_characters(bytes(self._after), self.size)
        return _whole_characters(bytes(self._first), self.size)


def _whole_characters(sample: bytes, size: int) -> bytes:
    """``sample`` without a UTF-8 character cut at its end, when the window cut it (``size``
    bytes were taken: the file goes on); a shorter sample is the whole file, kept as is.

    >>> _whole_characters(b"ab\\xc3", 3), _whole_characters(b"a\\xe2\\x82", 3)
    (b'ab', b'a')
    >>> _whole_characters(b"a\\xc3\\xa9", 3), _whole_characters(b"ab\\xc3", 4)
    (b'a\\xc3\\xa9', b'ab\\xc3')
    """
    if len(sample) < size:
        return sample
    for back in range(1, min(4, len(sample)) + 1):
        byte = sample[-back]
        if byte & 0xC0 != 0x80:  # a character's first byte (or ASCII)
            needed = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else \
                4 if byte >> 3 == 0b11110 else 1
            return sample[:-back] if needed > back else sample
    return sample


def _slice(chunk: bytes, offset: int, position: int, stop: int) -> bytes:
    """The part of ``chunk`` (at ``offset``) that continues a buffer at ``position``,
    up to ``stop``; empty when the chunk does not reach it or starts after it."""
    if position >= stop or not offset <= position < offset + len(chunk):
        return b""
    return bytes(memoryview(chunk)[position - offset:stop - offset])
