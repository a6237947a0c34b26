"""One Azure block blob written block by block, and one read by ranged downloads.

Writing: a ``PartPipeline`` cuts the bytes into blocks staged (Put Block) on the pool, at most
two in flight (back-pressure). Nothing is visible before
the block list is committed (Put Block List). Azure has no call that drops uncommitted blocks
(it discards them itself after 7 days), so ``abort`` commits an empty block list — which
discards every uncommitted block of the blob — and deletes the empty blob: nothing stays
stored or billed.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobBlock

from tornado_files.errors import BackendUnavailable, BlobNotFound
from tornado_files.models import StoredBlob
from tornado_files.storage.azure_settings import MAX_BLOCKS, block_size_for
from tornado_files.storage.parts import PartPipeline

if TYPE_CHECKING:
    from tornado_files.storage.azure import AzureBlobStore

log = logging.getLogger(__name__)


def block_id(number: int) -> str:
    """Azure wants every block id of a blob the same length: base64 of six digits."""
    return base64.b64encode(f"{number:06d}".encode()).decode()


class AzureBlobWriter:
    """Implements ``BlobWriter`` as staged blocks committed by one block list."""

    def __init__(self, store: AzureBlobStore, key: str) -> None:
        self.key = key
        self._store = store
        self._blob = store.calls.container.get_blob_client(store.object_key(key))
        self._blocks: PartPipeline[str] = PartPipeline(
            lambda number: block_size_for(store.part_size, number), self._stage,
            max_parts=MAX_BLOCKS, too_large="The blob is larger than Azure can store")
        self._done = False  # committed or aborted

    async def write(self, chunk: bytes) -> None:
        await self._blocks.write(chunk)

    async def _stage(self, number: int, data: bytes) -> str:
        ident = block_id(number)
        blob = self._blob
        await self._store.calls.must(
            "stage block", lambda: blob.stage_block(ident, data, length=len(data)))
        return ident

    async def end(self) -> None:
        await self._blocks.finish()  # the last block may be short; an empty blob has none

    async def commit(self) -> StoredBlob:
        if self._done:
            raise RuntimeError("the writer is finished")
        await self.end()
        blob, ids = self._blob, [BlobBlock(block_id=i) for i in self._blocks.landed]
        await self._store.calls.must("commit", lambda: blob.commit_block_list(ids))
        self._done = True
        return StoredBlob(self.key, self._blocks.size)

    async def abort(self) -> None:
        if self._done:
            return
        # A block still staging would land after the discard: wait for them first.
        await self._blocks.drain()
        self._done = True
        if not self._blocks.sent:
            return
        # With the store down this raises BackendUnavailable: the upload keeps the key's
        # journal entry, and the sweeper discards the (invisible, uncommitted) blocks once the
        # store is back — Azure itself drops them after 7 days.
        await self._store.discard_uncommitted(self._blob)


def _next_chunk(pieces: Iterator[bytes]) -> bytes | None:
    """The next chunk of a download (b"" at its end); None when the blob is gone. The SDK
    asks for each chunk after the first with If-Match on the first's ETag: a deleted blob
    answers 404 or, as Azurite does, 412 — both mean the same here (keys are never reused)."""
    try:
        return next(pieces, b"")
    except (ResourceNotFoundError, ResourceModifiedError):
        return None


class AzureBlobReader:
    """Implements ``BlobReader``: each ``iter_range`` is one ranged download of exactly
    ``[start, end)``, read in 1 MiB pieces (the client's GET size, azure_client.py) on the
    pool. The SDK makes it several GETs (``max_single_get_size``, then ``max_chunk_get_size``
    each) and holds each GET's body whole before handing it over, so one GET for a whole
    range would hold the range in memory: a DELETE meanwhile ends the download short
    (``BlobNotFound``, logged here)."""

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
            piece = await calls.run("read", lambda: _next_chunk(pieces))
            if piece is None:
                # The SDK fetches a range chunk by chunk, and there is no next chunk of a blob
                # deleted meanwhile: an ordinary race (docs/object-storage.md), not a fault.
                # The response ends short; the client sees it by Content-Length.
                log.warning("Azure blob %s deleted while read: the download ends %d bytes "
                            "short", blob.blob_name, left)
                raise BlobNotFound()
            if not piece:
                log.error("Azure blob %s ended %d bytes early", blob.blob_name, left)
                raise BackendUnavailable()
            left -= len(piece)
            yield piece

    async def close(self) -> None:
        return None
