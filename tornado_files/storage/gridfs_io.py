"""The GridFS store's moving parts: the chunk cutter, writers, the one ranged chunk reader and
the one files-document builder.

Writers and readers reach the collections through the store (``store.chunks``,
``store.files``) at each call, never a copy taken earlier.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bson import ObjectId
from pymongo import ASCENDING, InsertOne, ReplaceOne
from pymongo.errors import PyMongoError

from tornado_files.errors import BackendUnavailable, BlobNotFound
from tornado_files.models import StoredBlob, utcnow
from tornado_files.mongo import Document, driver_errors

if TYPE_CHECKING:
    from tornado_files.storage.gridfs import GridFSBlobStore

log = logging.getLogger("tornado_files.storage.gridfs")
OUR_KEY = re.compile(r"^[0-9a-f]{32}$")
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
# Chunks fetched per cursor batch on reads: memory stays at a few chunks per download.
READ_BATCH = 2


def file_id_of(key: str) -> Any:
    """Our keys are 32-hex strings stored as-is; a 24-hex key is a driver's ObjectId (a file
    another GridFS client wrote). Anything else raises ``BlobNotFound``."""
    if OUR_KEY.match(key):
        return key
    if _OBJECT_ID.match(key):
        return ObjectId(key)
    raise BlobNotFound()


def files_document(key: str, length: int, chunk_size: int,
                   upload_date: datetime | None = None) -> Document:
    """The ``fs.files`` document of a complete blob (GridFS spec), for writer commit and
    partial finalize alike. Inserted last: no reader sees a file before all its chunks."""
    return {"_id": key, "length": length, "chunkSize": chunk_size,
            "uploadDate": upload_date or utcnow(), "filename": key, "metadata": {}}


class ChunkCutter:
    """Cuts a byte stream into ``size``-byte GridFS chunks, copying each byte once (slicing a
    bytearray and deleting its head, as before, copied every byte three times or more).
    ``partial`` is what waits for the rest of its chunk."""

    def __init__(self, size: int, tail: bytes = b"") -> None:
        self.size = size
        self.partial = bytearray(tail)

    def feed(self, chunk: bytes) -> list[bytes]:
        """The full chunks that ``chunk`` completes, in order."""
        size, view = self.size, memoryview(chunk)
        full: list[bytes] = []
        if self.partial:
            need = size - len(self.partial)
            self.partial += view[:need]
            view = view[need:]
            if len(self.partial) < size:
                return full
            full.append(bytes(self.partial))
            self.partial = bytearray()
        while len(view) >= size:
            full.append(bytes(view[:size]))
            view = view[size:]
        self.partial += view
        return full


class GridFSBlobWriter:
    def __init__(self, store: GridFSBlobStore, key: str) -> None:
        self.key = key
        self._store = store
        self._cutter = ChunkCutter(store.chunk_size)
        self._pending: list[Document] = []
        self._next_n = 0
        self._size = 0
        self._flushed = False
        self._committed = False
        self._aborted = False
        self._ended = False

    async def write(self, chunk: bytes) -> None:
        if self._committed or self._aborted or self._ended:
            raise RuntimeError("write after end, commit or abort")
        self._size += len(chunk)
        for data in self._cutter.feed(chunk):
            self._cut(data)
        if len(self._pending) >= self._store.flush_chunks:
            await self._flush()

    def _cut(self, data: bytes) -> None:
        # bytes are BSON binary subtype 0, what GridFS stores; Binary(data) would copy them.
        self._pending.append({"_id": ObjectId(), "files_id": self.key, "n": self._next_n,
                              "data": data})
        self._next_n += 1

    async def _flush(self) -> None:
        docs, self._pending = self._pending, []
        if not docs:
            return
        self._flushed = True
        try:
            with driver_errors("write chunks"):
                await self._store.chunks.insert_many(docs, ordered=True)
        except BackendUnavailable:
            await self.abort()
            raise

    async def end(self) -> None:
        """No more bytes: the last short chunk and every pending one go to ``fs.chunks`` now,
        so a request of many parts holds at most one part's pending chunks in memory. The
        files document, which makes the blob visible, waits for ``commit``."""
        if self._ended or self._committed:
            return
        if self._aborted:
            raise RuntimeError("end after abort")
        if self._cutter.partial:
            self._cut(bytes(self._cutter.partial))
            self._cutter.partial = bytearray()
        await self._flush()
        self._ended = True

    async def commit(self) -> StoredBlob:
        if self._committed:
            return StoredBlob(self.key, self._size)
        if self._aborted:
            raise RuntimeError("commit after abort")
        await self.end()
        document = files_document(self.key, self._size, self._store.chunk_size)
        try:
            with driver_errors("write files document"):
                await self._store.files.insert_one(document)
        except BackendUnavailable:
            await self.abort()
            raise
        self._committed = True
        return StoredBlob(self.key, self._size)

    async def abort(self) -> None:
        if self._committed or self._aborted:
            return
        self._aborted = True
        self._cutter.partial = bytearray()
        self._pending = []
        if not self._flushed:
            return
        try:
            await self._store.chunks.delete_many({"files_id": self.key})
        except PyMongoError as exc:
            # MongoDB is gone: the chunks have no files document, so the sweeper removes them.
            log.error("gridfs: chunks of %s left for the sweeper: %s", self.key, exc)


class GridFSPartialWriter:
    """Appends chunk documents to a partial with the next ``n``. A PATCH may end in the middle
    of a chunk: ``settle`` stores that short tail as chunk ``n``, and the next writer loads it
    back, completes it and replaces it, so every chunk but the last ends up full."""

    def __init__(self, store: GridFSBlobStore, key: str, next_n: int, tail: bytes) -> None:
        self._store = store
        self._key = key
        self._next_n = next_n  # the n of the chunk the cutter's partial will become
        self._cutter = ChunkCutter(store.chunk_size, tail)
        # The n of a short chunk already stored (the tail it started from): replaced, not
        # inserted. Every other chunk is new, with a fresh ObjectId (its time says when).
        self._stored_n: int | None = next_n if tail else None
        self._pending: list[InsertOne[Document] | ReplaceOne[Document]] = []

    async def write(self, chunk: bytes) -> None:
        for data in self._cutter.feed(chunk):
            self._stage(data)
            self._next_n += 1
        if len(self._pending) >= self._store.flush_chunks:
            await self._flush()

    def _stage(self, data: bytes) -> None:
        n = self._next_n
        if n == self._stored_n:
            self._pending.append(ReplaceOne({"files_id": self._key, "n": n},
                                            {"files_id": self._key, "n": n, "data": data},
                                            upsert=True))
        else:
            self._pending.append(InsertOne({"_id": ObjectId(), "files_id": self._key,
                                            "n": n, "data": data}))

    async def _flush(self) -> None:
        ops, self._pending = self._pending, []
        if ops:
            with driver_errors("write chunks"):
                await self._store.chunks.bulk_write(ops, ordered=True)

    async def settle(self) -> int:
        if self._cutter.partial:
            self._stage(bytes(self._cutter.partial))  # the short tail
        await self._flush()
        if self._cutter.partial:
            self._stored_n = self._next_n
        return self._next_n * self._store.chunk_size + len(self._cutter.partial)

    async def close(self) -> None:
        self._cutter.partial = bytearray()
        self._pending = []


class GridFSBlobReader:
    """The one ranged chunk reader, for committed files (ours and other drivers') and for a
    partial's first bytes: a chunk that is missing or too short is logged and raised as
    ``BackendUnavailable``, never a silently short range."""

    def __init__(self, store: GridFSBlobStore, file_id: Any, size: int, chunk_size: int) -> None:
        self._store = store
        self._file_id = file_id
        self.size = size
        self._chunk_size = chunk_size

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        if start >= end:
            return
        size = self._chunk_size
        first, last = start // size, (end - 1) // size
        # Seek to the first chunk needed; a small batch keeps memory to a few chunks.
        cursor = self._store.chunks.find(
            {"files_id": self._file_id, "n": {"$gte": first, "$lte": last}},
            batch_size=READ_BATCH).sort("n", ASCENDING)
        expected = first
        with driver_errors("read chunks"):
            async for doc in cursor:
                offset = expected * size
                data = doc["data"]
                if doc["n"] != expected or len(data) < min(end - offset, size):
                    break
                yield bytes(data[max(start - offset, 0): min(end - offset, len(data))])
                expected += 1
        if expected != last + 1:
            log.error("gridfs: file %s is missing chunk %d (or part of it)", self._file_id,
                      expected)
            raise BackendUnavailable()

    async def close(self) -> None:
        return None
