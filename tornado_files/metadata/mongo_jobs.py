"""Media jobs in MongoDB: the ``processing`` and ``job`` fields of the ``files`` documents
(``mongo_docs``). Each claim and each lease check is one ``find_one_and_update`` (or
``update_one``) whose filter names the token or the lease: MongoDB applies it atomically to
the one document, so two processes never hold the same job.

A claim moves ``job.due_us`` to the lease's end, so the index on due pending jobs finds both
never-claimed jobs and jobs whose lease ran out, earliest due first. Times are integer
microseconds, as ``added_us`` and the tus leases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from tornado_files.errors import NotFound
from tornado_files.metadata.base import check_finished, replaced_derivatives
from tornado_files.metadata.mongo_docs import (
    derivative_documents,
    derivatives_of,
    new_job,
    record_of,
)
from tornado_files.models import Derivative, FileRecord, JobClaim, to_micros
from tornado_files.mongo import Document, driver_errors


def _held(file_id: str, token: str) -> Document:
    """The file's job, while ``token`` holds its lease."""
    return {"_id": file_id, "processing": "pending", "job.token": token}


class MongoJobQueue:
    """Implements ``JobQueue`` on the ``files`` collection of one MongoDB database."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = "files") -> None:
        self._files = db[collection]

    async def startup(self) -> None:
        with driver_errors("create indexes"):
            # Due pending jobs only: done and never-processed files are not in it.
            await self._files.create_index(
                [("job.due_us", ASCENDING), ("_id", ASCENDING)], name="jobs_due",
                partialFilterExpression={"processing": "pending"})

    async def claim_job(self, token: str, until: datetime, now: datetime) -> JobClaim | None:
        moment, lease = to_micros(now), to_micros(until)
        where = {"processing": "pending", "job.due_us": {"$lte": moment},
                 "$or": [{"job.until_us": None}, {"job.until_us": {"$lt": moment}}]}
        change = {"$set": {"job.token": token, "job.until_us": lease, "job.due_us": lease},
                  "$inc": {"job.attempts": 1}}
        with driver_errors("claim job"):
            doc = await self._files.find_one_and_update(
                where, change, sort=[("job.due_us", ASCENDING), ("_id", ASCENDING)],
                return_document=ReturnDocument.AFTER)
        if doc is None:
            return None
        return JobClaim(record_of(doc), token, int(doc["job"]["attempts"]))

    async def renew_job(self, file_id: str, token: str, until: datetime) -> bool:
        lease = to_micros(until)
        with driver_errors("renew job"):
            result = await self._files.update_one(
                _held(file_id, token), {"$set": {"job.until_us": lease, "job.due_us": lease}})
        return result.matched_count == 1

    async def finish_job(self, file_id: str, token: str, *, processing: str,
                         metadata: dict[str, Any], derivatives: Sequence[Derivative]
                         ) -> tuple[FileRecord, tuple[Derivative, ...]] | None:
        """As ``JobQueue.finish_job``; ``processing`` other than "done", "failed" or "none" is a
        ``ValueError``. The replaced derivatives exclude any whose key the new ones reuse."""
        check_finished(processing)
        new = tuple(derivatives)
        change = {"$set": {"processing": processing, "metadata": metadata,
                           "derivatives": derivative_documents(new), "job": None}}
        with driver_errors("finish job"):
            # The document as it was: its old derivatives; the new record follows from it.
            before = await self._files.find_one_and_update(
                _held(file_id, token), change, return_document=ReturnDocument.BEFORE)
        if before is None:
            return None
        record = replace(record_of(before), processing=processing, metadata=metadata,
                         derivatives=new)
        return record, replaced_derivatives(derivatives_of(before.get("derivatives")), new)

    async def retry_job(self, file_id: str, token: str, due: datetime) -> bool:
        with driver_errors("retry job"):
            result = await self._files.update_one(
                _held(file_id, token),
                {"$set": {"job.token": None, "job.until_us": None,
                          "job.due_us": to_micros(due)}})
        return result.matched_count == 1

    async def requeue_job(self, file_id: str, now: datetime) -> FileRecord:
        with driver_errors("requeue job"):
            doc = await self._files.find_one_and_update(
                {"_id": file_id},
                {"$set": {"processing": "pending", "job": new_job(to_micros(now))}},
                return_document=ReturnDocument.AFTER)
        if doc is None:
            raise NotFound()
        return record_of(doc)

    async def count_jobs(self, limit: int) -> int:
        if limit <= 0:
            return 0  # MongoDB reads a limit of 0 as "no limit"
        with driver_errors("count jobs"):
            return int(await self._files.count_documents({"processing": "pending"},
                                                          limit=limit))
