"""A byte stream cut into numbered parts, at most two of them uploading at once.

The object stores (S3 multipart parts, Azure blocks, GCS resumable chunks) all write an object
the same way: bytes gather in a buffer until a part is full; the part is sent on the store's
pool while the next one fills; with ``in_flight`` parts sending, ``write`` waits for the oldest
(back-pressure, API.md §11: at most one part buffered plus two in flight per upload, so a slow
store slows the client instead of growing the server's memory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from tornado_files.errors import BackendUnavailable

T = TypeVar("T")
IN_FLIGHT = 2  # parts sending at once per upload (API.md §11)


class PartPipeline(Generic[T]):
    """Cuts written bytes into parts ``1, 2, …`` and sends them through ``send``.

    ``size_for(number)`` gives part ``number``'s size in bytes (the last part may be shorter);
    ``send(number, data)`` stores one part and returns what the commit needs of it (an ETag,
    a block id), kept in ``landed`` in part order. More than ``max_parts`` parts raises
    ``BackendUnavailable(too_large)``; a failed ``send`` raises from ``write`` or ``finish``.
    """

    def __init__(self, size_for: Callable[[int], int],
                 send: Callable[[int, bytes], Awaitable[T]], *, max_parts: int,
                 too_large: str, in_flight: int = IN_FLIGHT) -> None:
        self.landed: list[T] = []
        self.size = 0  # bytes written, in bytes
        self.sent = False  # a part may be stored (so an abort has something to remove)
        self._size_for = size_for
        self._send_part = send
        self._max_parts = max_parts
        self._too_large = too_large
        self._in_flight = in_flight
        self._buffer = bytearray()
        self._flying: list[asyncio.Task[T]] = []
        self._ended = False

    @property
    def buffered(self) -> int:
        """Bytes held while the next part fills (always under that part's size)."""
        return len(self._buffer)

    @property
    def in_flight(self) -> int:
        """Parts sending now (at most ``in_flight`` as given, between calls)."""
        return len(self._flying)

    def _next_number(self) -> int:
        return len(self.landed) + len(self._flying) + 1

    async def write(self, chunk: bytes) -> None:
        """Buffer ``chunk``; send every part it fills (waiting while two are in flight)."""
        if self._ended:
            raise RuntimeError("write after end")
        self._buffer += chunk
        self.size += len(chunk)
        while len(self._buffer) >= (size := self._size_for(self._next_number())):
            part = bytes(self._buffer[:size])
            del self._buffer[:size]
            await self._send(part)

    async def _send(self, data: bytes) -> None:
        number = self._next_number()
        if number > self._max_parts:
            raise BackendUnavailable(self._too_large)
        self.sent = True
        self._flying.append(asyncio.ensure_future(self._send_part(number, data)))
        while len(self._flying) >= self._in_flight:
            await self._land_oldest()

    async def _land_oldest(self) -> None:
        task = self._flying[0]
        try:
            landed = await task
        finally:
            self._flying.remove(task)
        self.landed.append(landed)

    async def finish(self) -> None:
        """Send what is buffered as the last (possibly short) part and wait for every part.

        An empty stream sends no part. Calling it again once done does nothing."""
        if self._ended and not self._flying and not self._buffer:
            return
        self._ended = True
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer = bytearray()
            await self._send(data)
        while self._flying:
            await self._land_oldest()

    async def drain(self) -> None:
        """Drop the buffer and wait for the parts in flight, ignoring their errors: an abort
        must come after them, or a part landing late would be stored again."""
        self._ended = True
        self._buffer = bytearray()
        flying, self._flying = self._flying, []
        await asyncio.gather(*flying, return_exceptions=True)
