"""One Azure block blob written block by block, and one read by ranged downloads.

Writing: bytes gather until a block is full; the block is staged (Put Block) on the pool while
the next fills; with two blocks in flight ``write`` waits for the older one (back-pressure: at
most ``part_size`` buffered plus two blocks in flight per upload). Nothing is visible before
the block list is committed (Put Block List). Azure has no call that drops uncommitted blocks
(it discards them itself after 7 days), so ``abort`` commits an empty block list — which
discards every uncommitted block of the blob — and deletes the empty blob: nothing stays
stored or billed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from azure.storage.blob import BlobBlock

from tornado_files.errors import BackendUnavailable
from tornado_files.models import StoredBlob
from tornado_files.storage.azure_settings import MAX_BLOCKS, block_size_for

if TYPE_CHECKING:
    from tornado_files.storage.azure import AzureBlobStore

log = logging.getLogger(__name__)
IN_FLIGHT = 2  # blocks staging at once per upload (API.md §11)
READ_CHUNK = 1024 * 1024  # bytes handed to the client at a time


def block_id(number: int) -> str:
    """Azure wants every block id of a blob the same length: base64 of six digits."""
    return base64.b64encode(f"{number:06d}".encode()).decode()


class AzureBlobWriter:
    """Implements ``BlobWriter`` as staged blocks committed by one block list."""

    def __init__(self, store: AzureBlobStore, key: str) -> None:
        self.key = key
        self._store = store
        self._blob = store.calls.container.get_blob_client(store.object_key(key))
        self._buffer = bytearray()
        self._ids: list[str] = []
        self._flying: list[asyncio.Task[str]] = []
        self._size = 0
        self._staged = False  # a block may be stored (so abort has something to discard)
        self._ended = False
        self._done = False  # committed or aborted

    def _next_size(self) -> int:
        return block_size_for(self._store.part_size, len(self._ids) + len(self._flying) + 1)

    async def write(self, chunk: bytes) -> None:
        if self._ended:
            raise RuntimeError("write after end")
        self._buffer += chunk
        self._size += len(chunk)
        while len(self._buffer) >= (size := self._next_size()):
            block = bytes(self._buffer[:size])
            del self._buffer[:size]
            await self._send(block)

    async def _send(self, data: bytes) -> None:
        number = len(self._ids) + len(self._flying) + 1
        if number > MAX_BLOCKS:
            raise BackendUnavailable("The blob is larger than Azure can store")
        self._staged = True
        self._flying.append(asyncio.ensure_future(self._stage(number, data)))
        while len(self._flying) >= IN_FLIGHT:
            await self._land_oldest()

    async def _stage(self, number: int, data: bytes) -> str:
        ident = block_id(number)
        blob = self._blob
        await self._store.calls.must(
            "stage block", lambda: blob.stage_block(ident, data, length=len(data)))
        return ident

    async def _land_oldest(self) -> None:
        task = self._flying[0]
        try:
            ident = await task
        finally:
            self._flying.remove(task)
        self._ids.append(ident)

    async def end(self) -> None:
        if self._ended and not self._flying and not self._buffer:
            return
        self._ended = True
        if self._buffer:  # the last block may be short; an empty blob has none
            data = bytes(self._buffer)
            self._buffer = bytearray()
            await self._send(data)
        while self._flying:
            await self._land_oldest()

    async def commit(self) -> StoredBlob:
        if self._done:
            raise RuntimeError("the writer is finished")
        await self.end()
        blob, ids = self._blob, [BlobBlock(block_id=i) for i in self._ids]
        await self._store.calls.must("commit", lambda: blob.commit_block_list(ids))
        self._done = True
        return StoredBlob(self.key, self._size)

    async def abort(self) -> None:
        if self._done:
            return
        self._ended = True
        self._buffer = bytearray()
        # A block still staging would land after the discard: wait for them first.
        flying, self._flying = self._flying, []
        await asyncio.gather(*flying, return_exceptions=True)
        self._done = True
        if not self._staged:
            return
        try:
            await self._store.discard_uncommitted(self._blob)
        except BackendUnavailable:
            # The store is down: its blocks are uncommitted (invisible), the sweeper discards
            # them once the store is back, and Azure itself after 7 days.
            log.warning("Azure blocks of %s left uncommitted (store unavailable)", self.key)


class AzureBlobReader:
    """Implements ``BlobReader``: each ``iter_range`` is one ranged download of exactly
    ``[start, end)``, read in ``READ_CHUNK`` pieces on the pool."""

    def __init__(self, store: AzureBlobStore, blob_name: str, size: int) -> None:
        self.size = size
        self._store = store
        self._blob = store.calls.container.get_blob_client(blob_name)

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        if start >= end:
            return
        calls, blob = self._store.calls, self._blob
        stream = await calls.must("download", lambda: blob.download_blob(
            offset=start, length=end - start, max_concurrency=1))
        pieces = stream.chunks()
        left = end - start
        while left > 0:
            piece = await calls.run("read", lambda: next(pieces, b""))
            if not piece:
                log.error("Azure blob %s ended %d bytes early", blob.blob_name, left)
                raise BackendUnavailable()
            left -= len(piece)
            yield piece

    async def close(self) -> None:
        return None
