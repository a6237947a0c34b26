"""Partial blobs (tus) on Azure: one block blob ``<prefix>.partial/<key>`` whose committed block
list grows, PATCH after PATCH.

Its committed length is the upload's durable offset, and everything about it is in the
container, so any process on any host continues it. A PATCH stages its bytes as blocks of
``block_size_for`` (at most two in flight) and ``settle`` commits the old list plus the new
blocks (Put Block List), which also discards the uncommitted blocks of a PATCH that died. A short
last block is read back by the next ``resume`` (at most one block) and staged again as it grows —
as tusd's s3store keeps its "incomplete part" — so every block but the last is full and many tiny
PATCHes never pile up towards Azure's 50,000-block limit.

``finalize`` is one server-side Copy Blob (learn.microsoft.com, "Copy Blob": within one storage
account it may finish at once, else it is polled) from the partial to ``<prefix><key>``; no byte
passes through this server. A block list cannot name another blob's blocks, and Put Block From
URL would need a SAS for its source, so Copy Blob is the one call that fits. The copy asks for
a missing destination (If-None-Match: *) and an unchanged source (its ETag): two racing
finalizers make one copy, and a partial that changed under the check is never published.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobClient

from tornado_files.errors import BackendUnavailable, BlobNotFound, InternalError
from tornado_files.models import StoredBlob
from tornado_files.storage.azure_io import AzureBlobReader
from tornado_files.storage.azure_settings import MAX_BLOCKS, block_size_for
from tornado_files.storage.parts import IN_FLIGHT

if TYPE_CHECKING:
    from tornado_files.storage.azure import AzureBlobStore

log = logging.getLogger(__name__)
PARTIALS = ".partial/"
COPY_WAIT = 600.0  # seconds a pending copy is polled before the completion is retried later
TOO_LARGE = "The upload is larger than Azure can store"


def fresh_block_id() -> str:
    """A new block id, never reused (every id of a blob has the same length: 44 characters)."""
    return base64.b64encode(uuid.uuid4().hex.encode()).decode()


class PartialBlobs:
    """The partial blobs of one store (``AzureBlobStore`` delegates its capability here)."""

    def __init__(self, store: AzureBlobStore) -> None:
        self.store = store
        self.calls = store.calls

    def name(self, key: str) -> str:
        return f"{self.store.prefix}{PARTIALS}{key}"

    def blob(self, key: str) -> BlobClient:
        return self.calls.container.get_blob_client(self.name(key))

    def size_of(self, number: int) -> int:
        return block_size_for(self.store.part_size, number)

    async def committed(self, key: str) -> list[BlobBlock] | None:
        """The committed blocks in order; None when there is no partial blob."""
        blob = self.blob(key)
        found = await self.calls.run("block list", lambda: blob.get_block_list("committed"),
                                     missing_ok=True)
        return None if found is None else list(found[0])

    async def stage(self, key: str, data: bytes) -> str:
        ident, blob = fresh_block_id(), self.blob(key)
        await self.calls.must("stage block",
                              lambda: blob.stage_block(ident, data, length=len(data)))
        return ident

    async def commit(self, key: str, ids: list[str]) -> None:
        """The blob's content becomes ``ids`` (committed or staged blocks); every other staged
        block of the blob is discarded (Put Block List)."""
        blob, blocks = self.blob(key), [BlobBlock(block_id=i) for i in ids]
        await self.calls.must("commit", lambda: blob.commit_block_list(blocks))

    async def read(self, key: str, start: int, end: int) -> bytes:
        blob = self.blob(key)
        data = await self.calls.must("read back", lambda: blob.download_blob(
            offset=start, length=end - start, max_concurrency=1).readall())
        return bytes(data)

    # -- PartialBlobStore -----------------------------------------------------------------
    async def create(self, key: str) -> None:
        await self.commit(key, [])  # an empty committed blob: its time is the upload's start

    async def resume(self, key: str, offset: int) -> AzurePartialWriter:
        blocks = await self.committed(key)
        if blocks is None:
            if offset:
                raise BlobNotFound()
            await self.create(key)
            blocks = []
        if offset == 0:
            if blocks:
                await self.commit(key, [])
            return AzurePartialWriter(self, key, [], 0, b"")
        start = 0
        for number, block in enumerate(blocks, 1):
            size = int(block.size)
            if start + size < offset:
                start += size
                continue
            kept = [str(b.id) for b in blocks[:number - 1]]
            keep = offset - start
            if keep == size and size >= self.size_of(number):  # a full block ends at offset
                if len(blocks) > number:
                    await self.commit(key, [*kept, str(block.id)])
                return AzurePartialWriter(self, key, [*kept, str(block.id)], offset, b"")
            head = await self.read(key, start, offset) if keep else b""
            if len(head) != keep:
                raise BlobNotFound()
            if keep < size or len(blocks) > number:  # cut now: bytes past offset are gone
                tail = [str(block.id)] if keep == size else [await self.stage(key, head)]
                await self.commit(key, kept + (tail if keep else []))
            return AzurePartialWriter(self, key, kept, start, head)
        raise BlobNotFound()  # fewer bytes stored than the offset says

    async def open_reader(self, key: str, length: int) -> AzureBlobReader:
        await self.calls.must("open partial", self.blob(key).get_blob_properties)
        return AzureBlobReader(self.store, self.name(key), length)

    async def finalize(self, key: str, length: int) -> StoredBlob:
        final = self.calls.container.get_blob_client(self.store.object_key(key))
        props = await self.calls.run("head", final.get_blob_properties, missing_ok=True)
        if props is None:
            await self._publish(key, final, length)
        size = await self._wait_for_copy(final)
        if size != length:
            raise InternalError(f"the blob holds {size} bytes, not {length}")
        await self.discard(key)
        return StoredBlob(key, length)

    async def _publish(self, key: str, final: BlobClient, length: int) -> None:
        """Copy the partial to ``final`` unless a racing finalizer did (then success)."""
        source = self.blob(key)
        props = await self.calls.run("head partial", source.get_blob_properties, missing_ok=True)
        if props is None:
            if length:  # a racing finalizer may have copied it and dropped the partial
                await self.calls.must("head", final.get_blob_properties)
                return
            await self.calls.must("put", lambda: _if_missing(
                lambda: final.upload_blob(b"", overwrite=False)))
            return
        if int(props.size) != length:
            raise InternalError(f"the partial blob holds {props.size} bytes, not {length}")
        etag = props.etag

        def copy() -> None:
            try:
                final.start_copy_from_url(
                    source.url, match_condition=MatchConditions.IfMissing, source_etag=etag,
                    source_match_condition=MatchConditions.IfNotModified)
            except ResourceExistsError:
                return  # a racing finalizer's copy is there
            except ResourceNotFoundError:
                final.get_blob_properties()  # the partial went after its copy: the blob is in

        await self.calls.must("copy", copy)

    async def _wait_for_copy(self, final: BlobClient) -> int:
        """The final blob's size once its copy (if any) is done; a failed copy is removed and
        ``BackendUnavailable``, so the next completion attempt copies again."""
        delay = 0.1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COPY_WAIT
        while True:
            props: Any = await self.calls.must("head", final.get_blob_properties)
            status = props.copy.status if props.copy else None
            if status in (None, "success"):
                return int(props.size)
            if status != "pending":
                log.error("Azure copy to %s ended %s", final.blob_name, status)
                await self.calls.run("delete", final.delete_blob, missing_ok=True)
                raise BackendUnavailable()
            if loop.time() > deadline:
                log.warning("Azure copy to %s still pending", final.blob_name)
                raise BackendUnavailable()
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)

    async def discard(self, key: str) -> None:
        await self.calls.run("discard partial", self.blob(key).delete_blob, missing_ok=True)


def _if_missing(put: Callable[[], object]) -> None:
    """``put()``, where a blob already there (a racing finalizer's) is success."""
    try:
        put()
    except ResourceExistsError:
        return


class AzurePartialWriter:
    """Implements ``PartialWriter``: full blocks are staged as they fill (two at most in
    flight); ``settle`` stages the open, short one too and commits the list — that short block
    is staged again, grown, at the next ``settle``. ``kept``: the committed ids of the full
    blocks before the open one, holding ``closed`` bytes; ``head``: the open block's bytes."""

    def __init__(self, partials: PartialBlobs, key: str, kept: list[str], closed: int,
                 head: bytes) -> None:
        self._partials = partials
        self._key = key
        self._full = list(kept)  # ids of full blocks, staged or committed, in order
        self._closed = closed
        self._buffer = bytearray(head)
        self._flying: list[asyncio.Task[str]] = []
        self._settled = (len(self._full), len(head))  # what the committed list holds

    @property
    def _number(self) -> int:
        """The open block's number (1-based)."""
        return len(self._full) + len(self._flying) + 1

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= (size := self._partials.size_of(self._number)):
            if self._number > MAX_BLOCKS:
                raise BackendUnavailable(TOO_LARGE)
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._flying.append(asyncio.ensure_future(self._partials.stage(self._key, data)))
            self._closed += size
            while len(self._flying) >= IN_FLIGHT:
                await self._land()

    async def _land(self) -> None:
        task = self._flying[0]
        try:
            ident = await task
        finally:
            self._flying.remove(task)
        self._full.append(ident)

    async def settle(self) -> int:
        while self._flying:
            await self._land()
        if self._settled != (len(self._full), len(self._buffer)):
            ids = list(self._full)
            if self._buffer:
                if len(ids) >= MAX_BLOCKS:
                    raise BackendUnavailable(TOO_LARGE)
                ids.append(await self._partials.stage(self._key, bytes(self._buffer)))
            await self._partials.commit(self._key, ids)
            self._settled = (len(self._full), len(self._buffer))
        return self._closed + len(self._buffer)

    async def close(self) -> None:
        flying, self._flying = self._flying, []
        await asyncio.gather(*flying, return_exceptions=True)
        self._buffer = bytearray()
