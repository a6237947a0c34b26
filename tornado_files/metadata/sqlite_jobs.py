"""Media jobs in SQLite: the job columns of ``files`` (schema version 6).

A pending record (``processing = 'pending'``) is a job, due at ``job_due_us``. A claim sets
``job_token`` / ``job_until_us`` and moves ``job_due_us`` to the lease's end, so one range scan
of the partial index ``files_jobs_due`` finds both never-claimed jobs and jobs whose lease ran
out, earliest due first. Every change is one statement or one write transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tornado_files.errors import NotFound
from tornado_files.metadata.base import check_finished, replaced_derivatives
from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.metadata.sqlite_rows import (
    derivatives_json,
    derivatives_of,
    index_derivatives,
    record_of,
    write_transaction,
)
from tornado_files.models import Derivative, FileRecord, JobClaim, to_micros

# ``processing = 'pending'`` is written out (not a parameter) so the partial index applies;
# INDEXED BY, since without statistics the planner prefers files_processing and a sort.
CLAIM_SQL = (
    "UPDATE files SET job_token = ?, job_until_us = ?, job_due_us = ?,"
    " job_attempts = job_attempts + 1 WHERE id = ("
    " SELECT id FROM files INDEXED BY files_jobs_due"
    " WHERE processing = 'pending' AND job_due_us <= ?"
    " AND (job_until_us IS NULL OR job_until_us < ?) ORDER BY job_due_us, id LIMIT 1)"
    " RETURNING *")


class SqliteJobQueue:
    """Implements ``JobQueue`` on the metadata store's SQLite connection and schema."""

    def __init__(self, metadata: SqliteMetadataStore) -> None:
        self._run = metadata.run

    async def startup(self) -> None:
        return None  # the columns and indexes come with the metadata schema (version 6)

    async def claim_job(self, token: str, until: datetime, now: datetime) -> JobClaim | None:
        lease, moment = to_micros(until), to_micros(now)
        row = await self._run(lambda db: db.execute(
            CLAIM_SQL, (token, lease, lease, moment, moment)).fetchone())
        if row is None:
            return None
        return JobClaim(record_of(row), token, row["job_attempts"])

    async def renew_job(self, file_id: str, token: str, until: datetime) -> bool:
        lease = to_micros(until)
        count = await self._run(lambda db: db.execute(
            "UPDATE files SET job_until_us = ?, job_due_us = ? WHERE id = ? AND job_token = ?"
            " AND processing = 'pending'", (lease, lease, file_id, token)).rowcount)
        return bool(count)

    async def finish_job(self, file_id: str, token: str, *, processing: str,
                         metadata: dict[str, Any], derivatives: Sequence[Derivative]
                         ) -> tuple[FileRecord, tuple[Derivative, ...]] | None:
        """As ``JobQueue.finish_job``; ``processing`` other than "done", "failed" or "none" is a
        ``ValueError``. The replaced derivatives exclude any whose key the new ones reuse."""
        check_finished(processing)
        new = tuple(derivatives)

        def work(db: sqlite3.Connection) -> tuple[sqlite3.Row, str] | None:
            old = db.execute(
                "SELECT derivatives FROM files WHERE id = ? AND job_token = ?"
                " AND processing = 'pending'", (file_id, token)).fetchone()
            if old is None:
                return None
            found: sqlite3.Row = db.execute(
                "UPDATE files SET processing = ?, metadata = ?, derivatives = ?,"
                " job_token = NULL, job_until_us = NULL, job_due_us = NULL"
                " WHERE id = ? RETURNING *",
                (processing, json.dumps(metadata), derivatives_json(new), file_id)).fetchone()
            index_derivatives(db, file_id, found["storage"], new)
            return found, str(old[0])

        done = await self._run(lambda db: write_transaction(db, work))
        if done is None:
            return None
        found, old_text = done
        return record_of(found), replaced_derivatives(derivatives_of(old_text), new)

    async def retry_job(self, file_id: str, token: str, due: datetime) -> bool:
        count = await self._run(lambda db: db.execute(
            "UPDATE files SET job_token = NULL, job_until_us = NULL, job_due_us = ?"
            " WHERE id = ? AND job_token = ? AND processing = 'pending'",
            (to_micros(due), file_id, token)).rowcount)
        return bool(count)

    async def requeue_job(self, file_id: str, now: datetime) -> FileRecord:
        row = await self._run(lambda db: db.execute(
            "UPDATE files SET processing = 'pending', job_token = NULL, job_until_us = NULL,"
            " job_due_us = ?, job_attempts = 0 WHERE id = ? RETURNING *",
            (to_micros(now), file_id)).fetchone())
        if row is None:
            raise NotFound()
        return record_of(row)

    async def count_jobs(self, limit: int) -> int:
        row = await self._run(lambda db: db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM files WHERE processing = 'pending' LIMIT ?)",
            (max(limit, 0),)).fetchone())  # a negative LIMIT is none to SQLite
        return int(row[0])

