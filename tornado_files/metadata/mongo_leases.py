"""Named leases in MongoDB (the ``leases`` collection): one document per name, its ``_id``.

Acquiring is one ``find_one_and_update`` with ``upsert``: the filter matches the name's
document only while the caller holds it or its lease ran out, so MongoDB changes it
atomically for one caller. When the filter matches nothing, the upsert inserts a document
with that ``_id``; if one exists (held by someone else) the insert fails with a duplicate
key — the lease is taken. Two first acquisitions at once end the same way: one insert wins,
the other's fails. Times are integer microseconds, as the job and tus leases.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from tornado_files.models import to_micros
from tornado_files.mongo import Document, driver_errors


class MongoLeaseStore:
    """Implements ``LeaseStore`` on one MongoDB database."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = "leases") -> None:
        self._leases = db[collection]

    async def startup(self) -> None:
        return None  # documents are found by _id: no index to create

    async def acquire_lease(self, name: str, holder: str, until: datetime, now: datetime
                            ) -> bool:
        where = {"_id": name, "$or": [{"holder": holder},
                                      {"until_us": {"$lte": to_micros(now)}}]}
        change = {"$set": {"holder": holder, "until_us": to_micros(until)}}
        with driver_errors("acquire lease"):
            try:
                doc = await self._leases.find_one_and_update(
                    where, change, upsert=True, return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                return False  # held by someone else (or they inserted it just now)
        return doc is not None and doc.get("holder") == holder

    async def renew_lease(self, name: str, holder: str, until: datetime, now: datetime
                          ) -> bool:
        with driver_errors("renew lease"):
            result = await self._leases.update_one(
                {"_id": name, "holder": holder, "until_us": {"$gt": to_micros(now)}},
                {"$set": {"until_us": to_micros(until)}})
        return result.matched_count == 1

    async def release_lease(self, name: str, holder: str) -> bool:
        with driver_errors("release lease"):
            result = await self._leases.delete_one({"_id": name, "holder": holder})
        return result.deleted_count == 1
