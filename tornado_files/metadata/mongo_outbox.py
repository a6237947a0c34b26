"""The webhook outbox in MongoDB (the ``outbox`` collection): one document per delivery,
claimed one at a time with ``find_one_and_update`` (atomic on the one document, so two
processes or hosts never claim the same delivery). A claim moves ``due_us`` to the lease's
end, so the ``(due_us, _id)`` index finds new deliveries and those whose lease ran out alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from bson import Binary
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from tornado_files.models import Delivery, from_micros, to_micros
from tornado_files.mongo import Document, driver_errors

_ORDER = [("due_us", ASCENDING), ("_id", ASCENDING)]


def _delivery(doc: Document) -> Delivery:
    return Delivery(id=doc["_id"], event=doc["event"], url=doc["url"], body=bytes(doc["body"]),
                    created=from_micros(doc["created_us"]), due=from_micros(doc["due_us"]),
                    attempts=doc.get("attempts", 0), token=doc.get("token"))


class MongoOutbox:
    """Implements ``Outbox`` on one MongoDB database."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = "outbox") -> None:
        self._outbox = db[collection]

    async def startup(self) -> None:
        with driver_errors("create indexes"):
            await self._outbox.create_index(_ORDER, name="outbox_due")

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            document = {"_id": d.id, "event": d.event, "url": d.url, "body": Binary(d.body),
                        "created_us": to_micros(d.created), "due_us": to_micros(d.due),
                        "attempts": d.attempts, "token": None, "until_us": None}
            with driver_errors("add delivery"), contextlib.suppress(DuplicateKeyError):
                await self._outbox.insert_one(document)

    async def claim_deliveries(self, token: str, until: datetime, now: datetime, limit: int
                               ) -> list[Delivery]:
        moment, lease = to_micros(now), to_micros(until)
        where = {"due_us": {"$lte": moment},
                 "$or": [{"until_us": None}, {"until_us": {"$lt": moment}}]}
        change = {"$set": {"token": token, "until_us": lease, "due_us": lease}}
        claimed: list[Delivery] = []
        while len(claimed) < limit:
            with driver_errors("claim delivery"):
                doc = await self._outbox.find_one_and_update(
                    where, change, sort=_ORDER, return_document=ReturnDocument.AFTER)
            if doc is None:
                break
            claimed.append(_delivery(doc))
        return claimed

    async def finish_delivery(self, delivery_id: str, token: str) -> bool:
        with driver_errors("finish delivery"):
            result = await self._outbox.delete_one({"_id": delivery_id, "token": token})
        return result.deleted_count == 1

    async def retry_delivery(self, delivery_id: str, token: str, due: datetime) -> bool:
        with driver_errors("retry delivery"):
            result = await self._outbox.update_one(
                {"_id": delivery_id, "token": token},
                {"$set": {"token": None, "until_us": None, "due_us": to_micros(due)},
                 "$inc": {"attempts": 1}})
        return result.modified_count == 1

    async def count_deliveries(self, limit: int) -> int:
        if limit <= 0:
            return 0
        with driver_errors("count deliveries"):
            return await self._outbox.count_documents({}, limit=limit)
