"""Blobs in MongoDB GridFS: one ``GridFSBlobStore`` with the core, partial blobs and sweeping,
written chunk document by chunk document.

The layout is standard GridFS (``<bucket>.files`` / ``<bucket>.chunks``, ``files_id`` and
``n``), so ``mongofiles``, PyMongo's ``AsyncGridFSBucket`` and every other driver read what we
store, and we read what they stored. We do not use ``AsyncGridIn``: it buffers up to ~48 MB per
upload before writing, which breaks the memory bound with concurrent uploads. Here at most
``flush_chunks`` chunks wait in memory; each flush is awaited, so a slow MongoDB slows the
client (back-pressure). The files document is inserted last: a reader never sees a file whose
chunks are not all there — which is also why a partial (tus) blob is just its chunks, with no
files document until ``finalize``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from tornado_files.errors import BlobNotFound, InternalError
from tornado_files.models import StoredBlob
from tornado_files.mongo import Document, driver_errors
from tornado_files.storage.gridfs_io import (
    OUR_KEY,
    READ_BATCH,
    ChunkCutter,
    GridFSBlobReader,
    GridFSBlobWriter,
    GridFSPartialWriter,
    file_id_of,
    files_document,
)

# Public names of the GridFS backend, wherever they are defined.
__all__ = ["READ_BATCH", "ChunkCutter", "GridFSBlobStore", "file_id_of"]


def _our_key(key: str) -> str:
    if not OUR_KEY.match(key):
        raise BlobNotFound()
    return key


class GridFSBlobStore:
    """Implements ``BlobStore``, ``PartialBlobStore`` and ``SweepableStore`` on a GridFS
    bucket."""

    def __init__(self, db: AsyncDatabase[Document], bucket: str = "fs",
                 chunk_size: int = 255 * 1024, flush_chunks: int = 4, name: str = "gridfs"
                 ) -> None:
        self.name = name
        self.db = db
        self.files: AsyncCollection[Document] = db[f"{bucket}.files"]
        self.chunks: AsyncCollection[Document] = db[f"{bucket}.chunks"]
        self.chunk_size = chunk_size
        self.flush_chunks = flush_chunks

    # -- BlobStore ------------------------------------------------------------------------
    async def open_writer(self, key: str) -> GridFSBlobWriter:
        if not OUR_KEY.match(key):
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

    # -- PartialBlobStore -----------------------------------------------------------------
    async def create_partial(self, key: str) -> None:
        _our_key(key)  # an empty partial has no documents

    async def resume(self, key: str, offset: int) -> GridFSPartialWriter:
        _our_key(key)
        if offset == 0:  # also "creates" a missing partial: there is nothing to create
            with driver_errors("resume"):
                await self.chunks.delete_many({"files_id": key})
            return GridFSPartialWriter(self, key, 0, b"")
        size = self.chunk_size
        last = (offset - 1) // size  # the chunk that holds byte offset - 1
        keep = offset - last * size  # its bytes that stay, 1..size
        with driver_errors("resume"):
            doc = await self.chunks.find_one({"files_id": key, "n": last})
            if doc is None or len(doc["data"]) < keep:
                raise BlobNotFound()  # checked before anything is dropped
            await self.chunks.delete_many({"files_id": key, "n": {"$gt": last}})
            data = doc["data"]
            if len(data) > keep:
                data = bytes(data[:keep])
                await self.chunks.replace_one({"_id": doc["_id"]},
                                              {"files_id": key, "n": last, "data": data})
        if keep == size:
            return GridFSPartialWriter(self, key, last + 1, b"")
        return GridFSPartialWriter(self, key, last, bytes(data))

    async def open_partial_reader(self, key: str, length: int) -> GridFSBlobReader:
        return GridFSBlobReader(self, _our_key(key), length, self.chunk_size)

    async def finalize(self, key: str, length: int) -> StoredBlob:
        _our_key(key)
        with driver_errors("finalize"):
            final = await self.files.find_one({"_id": key}, {"length": 1})
            if final is None:
                await self._check_partial(key, length)
                try:
                    await self.files.insert_one(files_document(key, length, self.chunk_size))
                    return StoredBlob(key, length)
                except DuplicateKeyError:  # a racing finalizer inserted it first
                    final = await self.files.find_one({"_id": key}, {"length": 1})
        if final is None:
            raise BlobNotFound()
        if int(final["length"]) != length:
            raise InternalError(f"the blob holds {final['length']} bytes, not {length}")
        return StoredBlob(key, length)

    async def _check_partial(self, key: str, length: int) -> None:
        """Chunks ``0..last`` with the last one exactly as long as ``length`` needs."""
        newest = await self.chunks.find_one({"files_id": key}, sort=[("n", DESCENDING)])
        if newest is None:
            if length:
                raise BlobNotFound()
            return
        stored = newest["n"] * self.chunk_size + len(newest["data"])
        if stored == length:
            count = await self.chunks.count_documents({"files_id": key})
            if count == newest["n"] + 1:
                return
        raise InternalError(f"the partial blob holds {stored} bytes, not {length}")

    async def discard_partial(self, key: str) -> None:
        if not OUR_KEY.match(key):
            return
        with driver_errors("discard partial"):
            if await self.files.find_one({"_id": key}, {"_id": 1}) is not None:
                return  # finalized: the chunks belong to a blob now
            await self.chunks.delete_many({"files_id": key})

    # -- SweepableStore -------------------------------------------------------------------
    async def exists(self, key: str) -> bool:
        try:
            file_id = file_id_of(key)
        except BlobNotFound:
            return False
        with driver_errors("exists"):
            return await self.files.find_one({"_id": file_id}, {"_id": 1}) is not None

    async def remove_traces(self, key: str, quiet_before: datetime) -> bool:
        """``quiet_before`` is timezone-aware. A chunk's time is its ObjectId's; the newest
        chunk is the one with the highest ``n`` (found through the GridFS index)."""
        if not OUR_KEY.match(key):
            return True  # nothing of ours can be stored under it
        with driver_errors("remove traces"):
            final = await self.files.find_one({"_id": key}, {"uploadDate": 1})
            if final is not None and final.get("uploadDate", quiet_before) >= quiet_before:
                return False
            if await self._changed_since(key, quiet_before):
                return False
            if final is not None:  # the files document first, as delete does
                await self.files.delete_one({"_id": key})
            await self.chunks.delete_many({"files_id": key})
        return True

    async def _changed_since(self, file_id: Any, moment: datetime) -> bool:
        """Whether the newest chunk of ``file_id`` was written at or after ``moment``: a slow
        upload that is still writing is never touched, however long ago it began."""
        newest = await self.chunks.find_one({"files_id": file_id}, {"_id": 1},
                                            sort=[("n", DESCENDING)])
        if newest is None:
            return False
        oid = newest["_id"]
        return not isinstance(oid, ObjectId) or oid.generation_time >= moment

    async def list_keys(self, after: str | None, limit: int) -> list[str]:
        if limit <= 0:
            return []
        # Our ids only: strings of 32 hex digits (other drivers' files have ObjectIds).
        query = {"_id": {"$gt": after or "", "$lte": "f" * 32, "$regex": OUR_KEY.pattern}}
        with driver_errors("list keys"):
            cursor = self.files.find(query, {"_id": 1}, batch_size=limit)
            return [doc["_id"] async for doc in cursor.sort("_id", ASCENDING).limit(limit)]
