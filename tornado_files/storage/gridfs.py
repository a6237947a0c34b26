"""Blobs in MongoDB GridFS, written chunk document by chunk document.

The layout is standard GridFS (``<bucket>.files`` / ``<bucket>.chunks``, ``files_id`` and
``n``), so ``mongofiles``, PyMongo's ``AsyncGridFSBucket`` and every other driver read what we
store, and we read what they stored. We do not use ``AsyncGridIn``: it buffers up to ~48 MB per
upload before writing, which breaks the memory bound with concurrent uploads. Here at most
``flush_chunks`` chunks wait in memory; each flush is awaited, so a slow MongoDB slows the
client (back-pressure). The files document is inserted last: a reader never sees a file whose
chunks are not all there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from tornado_files.errors import BackendUnavailable, BlobNotFound
from tornado_files.models import StoredBlob, utcnow
from tornado_files.mongo import Document, driver_errors

log = logging.getLogger("tornado_files.storage.gridfs")
_OUR_KEY = re.compile(r"^[0-9a-f]{32}$")
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
# Chunks fetched per cursor batch on reads: memory stays at a few chunks per download.
READ_BATCH = 2


def file_id_of(key: str) -> Any:
    """Our keys are 32-hex strings stored as-is; a 24-hex key is a driver's ObjectId (a file
    another GridFS client wrote)."""
    if _OUR_KEY.match(key):
        return key
    if _OBJECT_ID.match(key):
        return ObjectId(key)
    raise BlobNotFound()


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

    async def write(self, chunk: bytes) -> None:
        if self._committed or self._aborted:
            raise RuntimeError("write after commit or abort")
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

    async def commit(self) -> StoredBlob:
        if self._committed:
            return StoredBlob(self.key, self._size)
        if self._aborted:
            raise RuntimeError("commit after abort")
        if self._cutter.partial:
            self._cut(bytes(self._cutter.partial))
            self._cutter.partial = bytearray()
        await self._flush()
        document = {"_id": self.key, "length": self._size, "chunkSize": self._store.chunk_size,
                    "uploadDate": utcnow(), "filename": self.key, "metadata": {}}
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


class GridFSBlobReader:
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
                if doc["n"] != expected:
                    break
                offset = expected * size
                data = doc["data"]
                yield bytes(data[max(start - offset, 0): min(end - offset, len(data))])
                expected += 1
        if expected != last + 1:
            log.error("gridfs: file %s is missing chunk %d", self._file_id, expected)
            raise BackendUnavailable()

    async def close(self) -> None:
        return None


class GridFSBlobStore:
    """Implements ``BlobStore`` on a GridFS bucket."""

    def __init__(self, db: AsyncDatabase[Document], bucket: str = "fs",
                 chunk_size: int = 255 * 1024, flush_chunks: int = 4, name: str = "gridfs"
                 ) -> None:
        self.name = name
        self.db = db
        self.files: AsyncCollection[Document] = db[f"{bucket}.files"]
        self.chunks: AsyncCollection[Document] = db[f"{bucket}.chunks"]
        self.chunk_size = chunk_size
        self.flush_chunks = flush_chunks

    async def open_writer(self, key: str) -> GridFSBlobWriter:
        if not _OUR_KEY.match(key):
            raise ValueError("blob keys are 32 lowercase hex characters")
        return GridFSBlobWriter(self, key)

    async def open_reader(self, key: str) -> GridFSBlobReader:
        file_id = file_id_of(key)
        with driver_errors("open"):
            doc = await self.files.find_one({"_id": file_id})
        if doc is None:
            raise BlobNotFound()
        return GridFSBlobReader(self, file_id, int(doc["length"]), int(doc["chunkSize"]))

    async def delete(self, key: str) -> None:
        try:
            file_id = file_id_of(key)
        except BlobNotFound:
            return
        with driver_errors("delete"):
            # The files document first: no reader ever sees a file with chunks missing.
            await self.files.delete_one({"_id": file_id})
            await self.chunks.delete_many({"files_id": file_id})

    async def exists(self, key: str) -> bool:
        try:
            file_id = file_id_of(key)
        except BlobNotFound:
            return False
        with driver_errors("exists"):
            return await self.files.find_one({"_id": file_id}, {"_id": 1}) is not None

    async def ping(self) -> None:
        with driver_errors("ping"):
            await self.db.command("ping")

    async def startup(self) -> None:
        # The indexes every GridFS driver expects (GridFS spec).
        with driver_errors("create indexes"):
            await self.chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)],
                                           unique=True)
            await self.files.create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])

    async def close(self) -> None:
        return None  # the client belongs to the application

    # -- sweeping -----------------------------------------------------------------------
    async def committed_keys(self, before: datetime) -> list[str]:
        with driver_errors("list files"):
            cursor = self.files.find({"uploadDate": {"$lt": before}}, {"_id": 1},
                                     batch_size=1000)
            return [str(doc["_id"]) async for doc in cursor]

    async def sweep_incomplete(self, before: datetime, keep: AbstractSet[str] = frozenset()) -> int:
        """Remove chunks older than ``before`` that belong to no files document (an upload
        that crashed or lost MongoDB mid-way). A chunk's age is its ObjectId's time."""
        with driver_errors("sweep chunks"):
            owners = await self.chunks.distinct(
                "files_id", {"_id": {"$lt": ObjectId.from_datetime(before)}})
            if not owners:
                return 0
            cursor = self.files.find({"_id": {"$in": owners}}, {"_id": 1}, batch_size=1000)
            complete = {doc["_id"] async for doc in cursor}
            removed = 0
            for owner in owners:
                if owner in complete or owner in keep or \
                        not await self._quiet_since(owner, before):
                    continue
                result = await self.chunks.delete_many({"files_id": owner})
                removed += result.deleted_count
            return removed

    async def _quiet_since(self, owner: Any, before: datetime) -> bool:
        """Whether the newest chunk of ``owner`` is older than ``before``: a slow upload that
        is still writing is never touched, however long ago it began."""
        newest = await self.chunks.find_one({"files_id": owner}, {"_id": 1},
                                            sort=[("_id", -1)])
        return newest is None or newest["_id"].generation_time < before
