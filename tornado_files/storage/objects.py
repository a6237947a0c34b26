"""What the object stores (S3, GCS, Azure) share besides parts and the marker: the shape of
their keys, and the reader of a tus upload kept as segment objects (S3 and GCS).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from tornado_files.errors import BackendUnavailable, BlobNotFound

log = logging.getLogger(__name__)
OUR_KEY = re.compile(r"^[0-9a-f]{32}$")  # a blob key: 32 lower-case hex digits
READ_CHUNK = 1024 * 1024  # bytes fetched from a segment, and handed on, at a time


def our_key(key: str) -> str:
    """``key`` when it is a blob key this server makes; anything else is ``BlobNotFound`` (a
    client's id never becomes another object's name)."""
    if not OUR_KEY.match(key):
        raise BlobNotFound()
    return key


class SegmentReader:
    """Implements ``BlobReader`` over segments ``[(name, size), …]`` listed at open, read by
    ``read(name, start, end)`` (bytes ``[start, end)`` of one segment). A segment shorter
    than listed, or gone, or a range past the stored bytes, is logged and
    ``BackendUnavailable``."""

    def __init__(self, read: Callable[[str, int, int], Awaitable[bytes]],
                 items: list[tuple[str, int]], size: int) -> None:
        self.size = size
        self._read = read
        self._items = items

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        base = 0
        for name, size in self._items:
            low, high = max(start, base), min(end, base + size)
            for piece in range(low, high, READ_CHUNK):
                stop = min(piece + READ_CHUNK, high)
                try:
                    data = await self._read(name, piece - base, stop - base)
                except BlobNotFound:
                    data = b""
                if len(data) != stop - piece:
                    log.error("segment %s holds fewer bytes than listed", name)
                    raise BackendUnavailable()
                yield data
            base += size
        if end > base and end > start:
            log.error("a partial holds %d bytes, %d were asked for", base, end)
            raise BackendUnavailable()

    async def close(self) -> None:
        return None
