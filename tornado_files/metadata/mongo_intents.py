"""The intent journal in MongoDB (the ``intents`` collection): one small document per
(store, key), read oldest first through its ``(created_us, store, key)`` index."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from tornado_files.models import Intent, from_micros, to_micros
from tornado_files.mongo import Document, driver_errors

_ORDER = [("created_us", ASCENDING), ("store", ASCENDING), ("key", ASCENDING)]


def _id(store: str, key: str) -> str:
    # Store names come from configuration (no "/"), keys are generated hex.
    return f"{store}/{key}"


def _after(intent: Intent) -> Document:
    """Strictly after ``intent`` in (created_us, store, key) order."""
    created = to_micros(intent.created)
    return {"$or": [
        {"created_us": {"$gt": created}},
        {"created_us": created, "store": {"$gt": intent.store}},
        {"created_us": created, "store": intent.store, "key": {"$gt": intent.key}},
    ]}


class MongoIntentJournal:
    """Implements ``IntentJournal`` on one MongoDB database."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = "intents") -> None:
        self._intents = db[collection]

    async def startup(self) -> None:
        with driver_errors("create indexes"):
            await self._intents.create_index(_ORDER)

    async def add_intent(self, key: str, store: str, created: datetime) -> None:
        # $setOnInsert: an intent that exists keeps its created time (idempotent).
        document = {"store": store, "key": key, "created_us": to_micros(created),
                    "created": created}
        with driver_errors("add intent"), contextlib.suppress(DuplicateKeyError):
            # Two upserts of one _id at once: the loser's insert fails, the intent exists.
            await self._intents.update_one({"_id": _id(store, key)},
                                           {"$setOnInsert": document}, upsert=True)

    async def clear_intents(self, store: str, keys: Sequence[str]) -> None:
        if not keys:
            return
        with driver_errors("clear intents"):
            await self._intents.delete_many({"_id": {"$in": [_id(store, k) for k in keys]}})

    async def old_intents(self, before: datetime, limit: int,
                          after: Intent | None = None) -> list[Intent]:
        if limit <= 0:
            return []  # MongoDB reads a limit of 0 as "no limit"
        where: Document = {"created_us": {"$lt": to_micros(before)}}
        if after is not None:
            where = {"$and": [where, _after(after)]}
        with driver_errors("old intents"):
            cursor = self._intents.find(where, {"key": 1, "store": 1, "created_us": 1},
                                        batch_size=limit)
            cursor = cursor.sort(_ORDER).limit(limit)
            return [Intent(doc["key"], doc["store"], from_micros(doc["created_us"]))
                    async for doc in cursor]
