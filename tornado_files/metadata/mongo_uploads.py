"""tus upload state in MongoDB (the ``uploads`` collection): compare-and-set by
``find_one_and_update`` on one document, which MongoDB applies atomically."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from tornado_files.errors import NotFound
from tornado_files.models import UploadState, from_micros, to_micros
from tornado_files.mongo import Document, driver_errors


def _document(state: UploadState) -> Document:
    return {
        "_id": state.id, "route": state.route, "storage": state.storage,
        "length": state.length, "offset": state.offset, "created_us": to_micros(state.created),
        "expires_us": to_micros(state.expires), "original_filename": state.original_filename,
        "declared_type": state.declared_type, "data": state.data, "owner": state.owner,
        "mime_type": state.mime_type, "type_os": state.type_os,
        "lease_token": state.lease_token,
        "lease_until_us": to_micros(state.lease_until) if state.lease_until else None,
        "sha256": state.sha256,
    }


def _state(doc: Document) -> UploadState:
    return UploadState(
        id=doc["_id"], route=doc["route"], storage=doc["storage"], length=doc["length"],
        offset=doc["offset"], created=from_micros(doc["created_us"]),
        expires=from_micros(doc["expires_us"]), original_filename=doc["original_filename"],
        declared_type=doc["declared_type"], data=doc.get("data") or {},
        owner=doc.get("owner"), mime_type=doc.get("mime_type"), type_os=doc.get("type_os"),
        lease_token=doc.get("lease_token"),
        lease_until=from_micros(doc["lease_until_us"]) if doc.get("lease_until_us") else None,
        sha256=doc.get("sha256"))


def _free(now: datetime) -> Document:
    return {"$or": [{"lease_until_us": None}, {"lease_until_us": {"$lt": to_micros(now)}}]}


class MongoUploadStore:
    def __init__(self, db: AsyncDatabase[Document], collection: str = "uploads") -> None:
        self._uploads = db[collection]

    async def startup(self) -> None:
        with driver_errors("create indexes"):
            await self._uploads.create_index([("expires_us", ASCENDING)])
            await self._uploads.create_index([("sha256", ASCENDING)], sparse=True)

    async def create_upload(self, state: UploadState) -> None:
        with driver_errors("create upload"):
            await self._uploads.insert_one(_document(state))

    async def get_upload(self, upload_id: str) -> UploadState:
        with driver_errors("get upload"):
            doc = await self._uploads.find_one({"_id": upload_id})
        if doc is None:
            raise NotFound()
        return _state(doc)

    async def claim_upload(self, upload_id: str, offset: int, token: str, until: datetime,
                           now: datetime) -> UploadState | None:
        with driver_errors("claim upload"):
            doc = await self._uploads.find_one_and_update(
                {"$and": [{"_id": upload_id, "offset": offset}, _free(now)]},
                {"$set": {"lease_token": token, "lease_until_us": to_micros(until)}},
                return_document=ReturnDocument.AFTER)
        return _state(doc) if doc is not None else None

    async def advance_upload(self, upload_id: str, token: str, offset: int, *,
                             expires: datetime, lease_until: datetime | None,
                             mime_type: str | None, type_os: str | None,
                             sha256: str | None = None) -> bool:
        changes: dict[str, Any] = {
            "offset": offset, "expires_us": to_micros(expires),
            "lease_until_us": to_micros(lease_until) if lease_until else None,
            "lease_token": token if lease_until else None}
        # Each sniffed field is kept on its own when None is passed (as SQLite's coalesce).
        if mime_type is not None:
            changes["mime_type"] = mime_type
        if type_os is not None:
            changes["type_os"] = type_os
        if sha256 is not None:
            changes["sha256"] = sha256
        with driver_errors("advance upload"):
            result = await self._uploads.update_one(
                {"_id": upload_id, "lease_token": token, "offset": {"$lte": offset}},
                {"$set": changes})
        return result.modified_count == 1 or result.matched_count == 1

    async def count_uploads(self, limit: int) -> int:
        with driver_errors("count uploads"):
            return int(await self._uploads.count_documents({}, limit=limit))

    async def delete_upload(self, upload_id: str) -> bool:
        with driver_errors("delete upload"):
            result = await self._uploads.delete_one({"_id": upload_id})
        return result.deleted_count == 1

    async def expired_uploads(self, now: datetime, limit: int = 500) -> list[UploadState]:
        if limit <= 0:
            return []  # MongoDB reads a limit of 0 as "no limit"
        with driver_errors("expired uploads"):
            cursor = self._uploads.find(
                {"$and": [{"expires_us": {"$lt": to_micros(now)}}, {"sha256": None}, _free(now)]},
                batch_size=min(limit, 200)).sort("expires_us", ASCENDING).limit(limit)
            return [_state(doc) async for doc in cursor]

    async def completing_uploads(self, limit: int) -> list[UploadState]:
        with driver_errors("completing uploads"):
            cursor = self._uploads.find({"sha256": {"$ne": None}}, limit=limit)
            return [_state(doc) async for doc in cursor]
