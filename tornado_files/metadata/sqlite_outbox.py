"""The webhook outbox in SQLite (the ``outbox`` table of schema version 8).

A claim is one ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING *`` statement: SQLite runs
it as one write, so two processes sharing the file never claim the same row. It moves
``due_us`` to the lease's end, so the ``(due_us, id)`` index finds both new deliveries and
those whose lease ran out, earliest first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.metadata.sqlite_rows import write_transaction
from tornado_files.models import Delivery, from_micros, to_micros

_CLAIM = (
    "UPDATE outbox SET lease_token = ?, lease_until_us = ?, due_us = ?"
    " WHERE id IN (SELECT id FROM outbox WHERE due_us <= ?"
    " AND (lease_until_us IS NULL OR lease_until_us < ?) ORDER BY due_us, id LIMIT ?)"
    " RETURNING *")


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(id=row["id"], event=row["event"], url=row["url"], body=bytes(row["body"]),
                    created=from_micros(row["created_us"]), due=from_micros(row["due_us"]),
                    attempts=row["attempts"], token=row["lease_token"])


class SqliteOutbox:
    """Implements ``Outbox`` on the metadata store's SQLite connection and schema."""

    def __init__(self, metadata: SqliteMetadataStore) -> None:
        self._metadata = metadata

    async def startup(self) -> None:
        return None  # the table and its index come with the metadata schema (version 8)

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        rows = [(d.id, d.event, d.url, d.body, to_micros(d.created), to_micros(d.due),
                 d.attempts) for d in deliveries]

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR IGNORE INTO outbox (id, event, url, body, created_us, due_us,"
                " attempts) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        if rows:
            await self._metadata.run(lambda db: write_transaction(db, work))

    async def claim_deliveries(self, token: str, until: datetime, now: datetime, limit: int
                               ) -> list[Delivery]:
        lease, moment = to_micros(until), to_micros(now)
        rows = await self._metadata.run(lambda db: db.execute(
            _CLAIM, (token, lease, lease, moment, moment, max(limit, 0))).fetchall())
        return sorted((_delivery(row) for row in rows), key=lambda d: d.created)

    async def finish_delivery(self, delivery_id: str, token: str) -> bool:
        count = await self._metadata.run(lambda db: db.execute(
            "DELETE FROM outbox WHERE id = ? AND lease_token = ?", (delivery_id, token)).rowcount)
        return bool(count)

    async def retry_delivery(self, delivery_id: str, token: str, due: datetime) -> bool:
        count = await self._metadata.run(lambda db: db.execute(
            "UPDATE outbox SET lease_token = NULL, lease_until_us = NULL, due_us = ?,"
            " attempts = attempts + 1 WHERE id = ? AND lease_token = ?",
            (to_micros(due), delivery_id, token)).rowcount)
        return bool(count)

    async def count_deliveries(self, limit: int) -> int:
        row = await self._metadata.run(lambda db: db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM outbox LIMIT ?)", (max(limit, 0),)).fetchone())
        return int(row[0])
