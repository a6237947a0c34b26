"""Resumable (tus) partial blobs in GridFS: chunk documents appended with the next ``n``.

A PATCH may end in the middle of a chunk. That tail is stored durably as a short chunk
document ``n = offset // chunkSize``; the next PATCH loads it back, completes it and replaces
it, so every chunk but the last ends up full — standard GridFS. No files document exists until
the last byte arrived: no reader sees a partial file. Chunks past the recorded offset (a PATCH
that died before advancing it) are dropped on resume.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING, ReplaceOne

from tornado_files.errors import BlobNotFound
from tornado_files.models import StoredBlob, utcnow
from tornado_files.mongo import Document, driver_errors
from tornado_files.storage.gridfs import READ_BATCH, ChunkCutter, GridFSBlobStore, file_id_of


class GridFSPartialWriter:
    def __init__(self, store: GridFSBlobStore, key: str, next_n: int, tail: bytes) -> None:
        self._store = store
        self._key = key
        self._next_n = next_n  # the n of the chunk the cutter's partial will become
        self._cutter = ChunkCutter(store.chunk_size, tail)
        self._pending: list[ReplaceOne[Document]] = []

    async def write(self, chunk: bytes) -> None:
        for data in self._cutter.feed(chunk):
            self._stage(data)
            self._next_n += 1
        if len(self._pending) >= self._store.flush_chunks:
            await self._flush()

    def _stage(self, data: bytes) -> None:
        # Replace, not insert: chunk n may already hold the short tail of an earlier PATCH.
        self._pending.append(ReplaceOne(
            {"files_id": self._key, "n": self._next_n},
            {"files_id": self._key, "n": self._next_n, "data": data}, upsert=True))

    async def _flush(self) -> None:
        ops, self._pending = self._pending, []
        if ops:
            with driver_errors("write chunks"):
                await self._store.chunks.bulk_write(ops, ordered=True)

    async def settle(self) -> int:
        if self._cutter.partial:
            # The short tail, completed by the next PATCH.
            self._stage(bytes(self._cutter.partial))
        await self._flush()
        return self._next_n * self._store.chunk_size + len(self._cutter.partial)

    async def close(self) -> None:
        self._cutter.partial = bytearray()
        self._pending = []


class GridFSPartials:
    """Implements ``ResumableBlobStore`` on the GridFS store's bucket."""

    def __init__(self, store: GridFSBlobStore) -> None:
        self.store = store

    async def create_partial(self, key: str) -> None:
        file_id_of(key)  # validates; an empty partial has no documents

    async def resume(self, key: str, offset: int) -> GridFSPartialWriter:
        size = self.store.chunk_size
        n, tail_length = divmod(offset, size)
        tail = b""
        with driver_errors("resume"):
            await self.store.chunks.delete_many({"files_id": key, "n": {"$gt": n}})
            if tail_length:
                doc = await self.store.chunks.find_one({"files_id": key, "n": n})
                if doc is None or len(doc["data"]) < tail_length:
                    raise BlobNotFound()
                tail = bytes(doc["data"][:tail_length])
            else:
                await self.store.chunks.delete_many({"files_id": key, "n": n})
        return GridFSPartialWriter(self.store, key, n, tail)

    async def read_partial(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        if start >= end:
            return
        size = self.store.chunk_size
        first, last = start // size, (end - 1) // size
        cursor = self.store.chunks.find(
            {"files_id": key, "n": {"$gte": first, "$lte": last}},
            batch_size=READ_BATCH).sort("n", ASCENDING)
        with driver_errors("read partial"):
            async for doc in cursor:
                offset = doc["n"] * size
                data = doc["data"]
                yield bytes(data[max(start - offset, 0): min(end - offset, len(data))])

    async def finalize(self, key: str, length: int) -> StoredBlob:
        document: dict[str, Any] = {
            "_id": key, "length": length, "chunkSize": self.store.chunk_size,
            "uploadDate": utcnow(), "filename": key, "metadata": {}}
        with driver_errors("finalize"):
            if await self.store.files.find_one({"_id": key}, {"_id": 1}) is None:
                await self.store.files.insert_one(document)
        return StoredBlob(key, length)

    async def discard(self, key: str) -> None:
        with driver_errors("discard"):
            await self.store.chunks.delete_many({"files_id": key})
