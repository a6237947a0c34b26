"""Partial blobs (tus) on GCS, as numbered segment objects under ``<prefix>.partial/<key>/``.

A resumable session cannot be read, nor continued by another host without its URI, so a
partial is kept as plain objects instead: segments ``000001``, ``000002`` … of at most
``part_size`` bytes. GCS has no minimum size for the sources of a compose, so a short segment
(the end of a PATCH) is never rewritten: the next PATCH starts a new one. ``finalize``
composes the object server-side — at most 32 sources per compose request
(cloud.google.com/storage/docs/composite-objects), so more segments are composed in a tree
of intermediates ``c<level>-<n>`` in the same folder — then deletes the folder. Any process
on any host continues a partial: everything about it is in the bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from functools import partial
from typing import TYPE_CHECKING, Any

from tornado_files.errors import BackendUnavailable, BlobNotFound, InternalError
from tornado_files.models import StoredBlob
from tornado_files.storage.gcs_client import RETRY, TIMEOUT
from tornado_files.storage.objects import SegmentReader
from tornado_files.storage.parts import IN_FLIGHT, PartPipeline

if TYPE_CHECKING:
    from tornado_files.storage.gcs import GcsBlobStore

log = logging.getLogger(__name__)
PARTIALS = ".partial/"
MAX_SEGMENTS = 999_999  # six digits
COMPOSE_MAX = 32  # sources per compose request (GCS)
_SEGMENT = re.compile(r"^[0-9]{6}$")


class Segments:
    """The segment objects of partials in one store."""

    def __init__(self, store: GcsBlobStore) -> None:
        self.store = store
        self.calls = store.calls

    def folder(self, key: str) -> str:
        return f"{self.store.prefix}{PARTIALS}{key}/"

    def name(self, key: str, index: int) -> str:
        return f"{self.folder(key)}{index:06d}"

    async def everything(self, key: str) -> list[Any]:
        """Every object in ``key``'s folder (segments and compose intermediates)."""
        calls, folder = self.calls, self.folder(key)
        return await calls.must("list segments", lambda: list(calls.client.list_blobs(
            calls.bucket, prefix=folder, retry=RETRY, timeout=TIMEOUT)))

    async def listing(self, key: str) -> tuple[list[Any], list[Any]]:
        """``key``'s segments in order (gapless, else logged and ``BackendUnavailable``) and
        the folder's other objects (intermediates a crashed ``finalize`` left)."""
        folder = self.folder(key)
        found = await self.everything(key)
        segments = sorted((b for b in found if _SEGMENT.match(b.name[len(folder):])),
                          key=lambda b: b.name)
        others = [b for b in found if not _SEGMENT.match(b.name[len(folder):])]
        for number, blob in enumerate(segments, 1):
            if blob.name != self.name(key, number):
                log.error("partial %s lacks segment %d", key, number)
                raise BackendUnavailable()
        return segments, others

    async def put(self, key: str, index: int, data: bytes) -> int:
        if index > MAX_SEGMENTS:
            raise BackendUnavailable("The upload has more segments than this store keeps")
        blob = self.calls.bucket.blob(self.name(key, index))
        await self.calls.must("put segment", lambda: blob.upload_from_string(
            data, content_type="application/octet-stream", retry=RETRY, timeout=TIMEOUT))
        return len(data)

    async def read(self, name: str, start: int, end: int) -> bytes:
        blob = self.calls.bucket.blob(name)
        return await self.calls.must("read segment", lambda: blob.download_as_bytes(
            start=start, end=end - 1, raw_download=True, checksum=None, retry=RETRY,
            timeout=TIMEOUT))

    async def drop(self, blobs: list[Any]) -> None:
        """Delete objects, the last first: a crash midway leaves a shorter, gapless run."""
        for blob in reversed(blobs):
            await self.calls.run("delete segment", partial(
                blob.delete, retry=RETRY, timeout=TIMEOUT), missing_ok=True)

    # -- PartialBlobStore -----------------------------------------------------------------
    async def resume(self, key: str, offset: int) -> GcsPartialWriter:
        segments, others = await self.listing(key)
        await self.drop(others)
        if offset == 0:
            await self.drop(segments)
            return GcsPartialWriter(self, key, 1, 0)
        start = 0
        for index, blob in enumerate(segments, 1):
            size = int(blob.size)
            if start + size >= offset:
                await self.drop(segments[index:])
                keep = offset - start  # > 0: segments are never empty
                if keep < size:  # cut before returning: the bytes past offset are gone
                    head = await self.read(blob.name, 0, keep)
                    if len(head) != keep:
                        raise BlobNotFound()
                    await self.put(key, index, head)
                return GcsPartialWriter(self, key, index + 1, offset)
            start += size
        raise BlobNotFound()  # fewer bytes stored than the offset says

    async def open_reader(self, key: str, length: int) -> SegmentReader:
        segments, _ = await self.listing(key)
        return SegmentReader(self.read, [(b.name, int(b.size)) for b in segments], length)

    async def head(self, name: str) -> Any:
        """The object ``name`` with its metadata, or None."""
        bucket = self.calls.bucket
        return await self.calls.run("head", lambda: bucket.get_blob(
            name, retry=RETRY, timeout=TIMEOUT))

    async def finalize(self, key: str, length: int) -> StoredBlob:
        name = self.store.object_key(key)
        head = await self.head(name)
        if head is None:
            segments, _ = await self.listing(key)
            stored = sum(int(b.size) for b in segments)
            if not segments and length:
                raise BlobNotFound()
            if stored != length:
                raise InternalError(f"the partial blob holds {stored} bytes, not {length}")
            # A racing finalizer may finish first and take the segments: BlobNotFound here.
            with contextlib.suppress(BlobNotFound):
                await self._assemble(key, name, [b.name for b in segments])
            head = await self.head(name)
            if head is None:
                raise BlobNotFound()
        if int(head.size) != length:
            raise InternalError(f"the blob holds {head.size} bytes, not {length}")
        await self.drop(await self.everything(key))
        return StoredBlob(key, length)

    async def _compose(self, target: str, sources: list[str]) -> None:
        bucket = self.calls.bucket
        blob = bucket.blob(target)
        blob.content_type = "application/octet-stream"
        await self.calls.must("compose", lambda: blob.compose(
            [bucket.blob(s) for s in sources], retry=RETRY, timeout=TIMEOUT))

    async def _assemble(self, key: str, name: str, sources: list[str]) -> None:
        """Compose ``sources`` into ``name`` a tree level at a time (32 per request)."""
        if not sources:
            blob = self.calls.bucket.blob(name)
            await self.calls.must("put", lambda: blob.upload_from_string(
                b"", content_type="application/octet-stream", retry=RETRY, timeout=TIMEOUT))
            return
        level = 0
        while len(sources) > COMPOSE_MAX:
            level += 1
            groups = [sources[i:i + COMPOSE_MAX] for i in range(0, len(sources), COMPOSE_MAX)]
            targets = [f"{self.folder(key)}c{level}-{n:06d}" for n in range(len(groups))]
            for first in range(0, len(groups), IN_FLIGHT):
                await asyncio.gather(*(self._compose(t, g) for t, g in
                                       zip(targets[first:first + IN_FLIGHT],
                                           groups[first:first + IN_FLIGHT], strict=True)))
            sources = targets
        await self._compose(name, sources)


class GcsPartialWriter:
    """Implements ``PartialWriter``: full segments go out as they fill (two at most in
    flight); ``settle`` writes the short rest as a segment of its own, never rewritten."""

    def __init__(self, segments: Segments, key: str, index: int, durable: int) -> None:
        self._segments = segments
        self._key = key
        self._next = index  # the number of the next segment
        self._durable = durable
        self._pipe = self._new_pipe()

    def _new_pipe(self) -> PartPipeline[int]:
        first, segments, key = self._next, self._segments, self._key
        return PartPipeline(lambda number: segments.store.part_size,
                            lambda number, data: segments.put(key, first + number - 1, data),
                            max_parts=MAX_SEGMENTS,
                            too_large="The upload has more segments than this store keeps")

    async def write(self, chunk: bytes) -> None:
        await self._pipe.write(chunk)

    async def settle(self) -> int:
        await self._pipe.finish()
        self._durable += self._pipe.size
        self._next += len(self._pipe.landed)
        self._pipe = self._new_pipe()
        return self._durable

    async def close(self) -> None:
        await self._pipe.drain()
