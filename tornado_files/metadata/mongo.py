"""File records in MongoDB (PyMongo's async API): same queries, same results as SQLite.

One document per file in the ``files`` collection, ``_id`` = file id. Times are kept twice:
``added``/``modified`` as BSON dates for people and tools, ``added_us``/``modified_us`` as
integer microseconds for exact ordering (BSON dates stop at milliseconds). Every list filter
and sort has an index, created at start-up.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, PyMongoError

from tornado_files.errors import BackendUnavailable, DuplicateKey, NotFound
from tornado_files.metadata.base import Precondition
from tornado_files.metadata.mongo_docs import document_of, filters, record_of, referenced_keys
from tornado_files.models import BlobRef, FileRecord, ListQuery, Page, to_micros
from tornado_files.mongo import Document, driver_errors

log = logging.getLogger("tornado_files.metadata.mongo")
_SORT_FIELDS = {"added": "added_us", "size": "size", "filename": "filename"}
_BATCH = 200
_DUPLICATE_KEY = 11000  # MongoDB's error code
# A conditional change re-reads a record that changed under it at most this often.
_CAS_TRIES = 20


class MongoMetadataStore:
    """Implements ``MetadataStore`` on one MongoDB database."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = "files") -> None:
        self._files = db[collection]
        self._stores = db["stores"]
        self._db = db

    async def startup(self) -> None:
        indexes = [[("added_us", DESCENDING), ("_id", DESCENDING)],
                   [("size", ASCENDING), ("_id", ASCENDING)],
                   [("filename", ASCENDING), ("_id", ASCENDING)],
                   [("modified_us", ASCENDING)], [("mime_type", ASCENDING)],
                   [("route", ASCENDING)], [("owner", ASCENDING)], [("sha256", ASCENDING)],
                   [("storage", ASCENDING), ("blob_key", ASCENDING)],
                   [("storage", ASCENDING), ("_id", ASCENDING)],
                   [("storage", ASCENDING), ("derivatives.key", ASCENDING)],  # multikey
                   [("processing", ASCENDING)]]
        with driver_errors("create indexes"):
            for keys in indexes:
                await self._files.create_index(keys)

    async def close(self) -> None:
        return None  # the client belongs to the application, which closes it

    async def ping(self) -> None:
        with driver_errors("ping"):
            await self._db.command("ping")

    async def insert_many(self, records: Sequence[FileRecord]) -> None:
        if not records:
            return
        docs = [document_of(r) for r in records]
        try:
            await self._files.insert_many(docs, ordered=True)
        except BulkWriteError as exc:
            # Without a transaction, "all or nothing" is kept by removing what went in.
            inserted = exc.details.get("nInserted", 0)
            await self._compensate([d["_id"] for d in docs[:inserted]])
            errors = exc.details.get("writeErrors") or []
            if errors and all(err.get("code") == _DUPLICATE_KEY for err in errors):
                log.info("mongodb: insert of an existing id: %s", errors)
                raise DuplicateKey() from None
            log.error("mongodb: insert failed: %s", errors)
            raise BackendUnavailable() from None
        except PyMongoError as exc:
            # Unknown how far it got: the ids are fresh, so removing all of them is safe.
            await self._compensate([d["_id"] for d in docs])
            log.error("mongodb: insert failed: %s", exc)
            raise BackendUnavailable() from None

    async def _compensate(self, ids: list[str]) -> None:
        if not ids:
            return
        try:
            await self._files.delete_many({"_id": {"$in": ids}})
        except PyMongoError as exc:
            log.error("mongodb: could not undo a partial insert of %s: %s", ids, exc)

    async def get(self, file_id: str) -> FileRecord:
        with driver_errors("get"):
            doc = await self._files.find_one({"_id": file_id})
        if doc is None:
            raise NotFound()
        return record_of(doc)

    async def update(self, file_id: str, *, filename: str | None, data: dict[str, Any],
                     modified: datetime, precondition: Precondition | None = None
                     ) -> FileRecord:
        sets: Document = {"data": data}
        return await self._change(file_id, filename, sets, {}, modified, precondition)

    async def merge(self, file_id: str, *, filename: str | None, changes: dict[str, Any],
                    modified: datetime, precondition: Precondition | None = None
                    ) -> FileRecord:
        # One update operation ($set / $unset of ``data.KEY``): atomic on the document, so
        # concurrent merges of different keys all survive. Keys never hold ``.`` or a leading
        # ``$`` (the handler refuses them), so ``data.KEY`` names exactly that key.
        sets: Document = {}
        unsets: Document = {}
        for key, value in changes.items():
            if value is None:
                unsets[f"data.{key}"] = ""
            else:
                sets[f"data.{key}"] = value
        return await self._change(file_id, filename, sets, unsets, modified, precondition)

    async def _change(self, file_id: str, filename: str | None, sets: Document,
                      unsets: Document, modified: datetime, precondition: Precondition | None
                      ) -> FileRecord:
        sets = {**sets, "modified": modified, "modified_us": to_micros(modified)}
        if filename is not None:
            sets["filename"] = filename
        update: Document = {"$set": sets}
        if unsets:
            update["$unset"] = unsets
        for _ in range(_CAS_TRIES):
            where: Document = {"_id": file_id}
            if precondition is not None:
                # Check, then change only the version checked: every change sets a new
                # ``modified_us``, so a change in between makes the update miss (and we look
                # again) instead of applying over a record the check never saw.
                with driver_errors("get"):
                    current = await self._files.find_one({"_id": file_id})
                if current is None:
                    raise NotFound()
                precondition(record_of(current))
                where["modified_us"] = current["modified_us"]
            with driver_errors("update"):
                doc = await self._files.find_one_and_update(
                    where, update, return_document=ReturnDocument.AFTER)
            if doc is not None:
                return record_of(doc)
            if precondition is None:
                raise NotFound()
        log.error("mongodb: file %s kept changing during a conditional update", file_id)
        raise BackendUnavailable()

    async def delete(self, file_id: str) -> FileRecord:
        with driver_errors("delete"):
            doc = await self._files.find_one_and_delete({"_id": file_id})
        if doc is None:
            raise NotFound()
        return record_of(doc)

    async def list(self, query: ListQuery) -> Page:
        where = filters(query)
        field = query.sort.lstrip("-")
        column = _SORT_FIELDS[field]
        descending = query.sort.startswith("-")
        op = "$lt" if descending else "$gt"
        if query.after is not None:
            value, last_id = query.after
            bound = to_micros(value) if field == "added" else value
            keyset = {"$or": [{column: {op: bound}}, {column: bound, "_id": {op: last_id}}]}
            where = {"$and": [where, keyset]} if where else keyset
        direction = DESCENDING if descending else ASCENDING
        with driver_errors("list"):
            cursor = self._files.find(where, batch_size=min(query.limit + 1, _BATCH))
            cursor = cursor.sort([(column, direction), ("_id", direction)]).limit(query.limit + 1)
            docs = [doc async for doc in cursor]
        return Page.of([record_of(d) for d in docs], query)

    async def has_blob(self, storage: str, key: str) -> bool:
        # Each branch of the $or on an index of its own (storage + blob_key, the multikey
        # storage + derivatives.key).
        where = {"$or": [{"storage": storage, "blob_key": key},
                         {"storage": storage, "derivatives.key": key}]}
        with driver_errors("has blob"):
            doc = await self._files.find_one(where, {"_id": 1})
        return doc is not None

    async def referenced_blobs(self, storage: str, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        wanted = set(keys)
        where = {"$or": [{"storage": storage, "blob_key": {"$in": list(keys)}},
                         {"storage": storage, "derivatives.key": {"$in": list(keys)}}]}
        found: set[str] = set()
        # Each document matched holds one of ``keys`` (keys are unique): at most len(keys).
        with driver_errors("referenced blobs"):
            cursor = self._files.find(where, {"blob_key": 1, "derivatives.key": 1, "_id": 0},
                                      batch_size=min(len(keys), _BATCH))
            async for doc in cursor:
                found |= referenced_keys(doc, wanted)
        return found

    async def blob_refs_page(self, storage: str, after: str | None, limit: int
                             ) -> builtins.list[BlobRef]:
        if limit <= 0:
            return []  # MongoDB reads a limit of 0 as "no limit"
        with driver_errors("blob refs"):
            cursor = self._files.find({"storage": storage, "_id": {"$gt": after or ""}},
                                      {"blob_key": 1}, batch_size=limit)
            cursor = cursor.sort("_id", ASCENDING).limit(limit)
            return [BlobRef(doc["_id"], doc["blob_key"]) async for doc in cursor]

    async def store_id(self, storage: str) -> str | None:
        with driver_errors("store id"):
            doc = await self._stores.find_one({"_id": storage})
        return str(doc["store_id"]) if doc is not None else None

    async def set_store_id(self, storage: str, store_id: str) -> None:
        with driver_errors("set store id"):
            await self._stores.update_one({"_id": storage}, {"$set": {"store_id": store_id}},
                                          upsert=True)
