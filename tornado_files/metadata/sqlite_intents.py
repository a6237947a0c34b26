"""The intent journal in SQLite (the ``intents`` table of schema version 3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from tornado_files.metadata.sqlite import IN_BATCH, SqliteMetadataStore
from tornado_files.models import Intent, from_micros, to_micros


class SqliteIntentJournal:
    """Implements ``IntentJournal`` on the metadata store's SQLite connection and schema."""

    def __init__(self, metadata: SqliteMetadataStore) -> None:
        self._metadata = metadata

    async def startup(self) -> None:
        return None  # the table and its index come with the metadata schema (version 3)

    async def add_intent(self, key: str, store: str, created: datetime) -> None:
        await self._metadata.run(lambda db: db.execute(
            "INSERT OR IGNORE INTO intents (store, key, created_us) VALUES (?, ?, ?)",
            (store, key, to_micros(created))))

    async def clear_intents(self, store: str, keys: Sequence[str]) -> None:
        def work(db: sqlite3.Connection) -> None:
            for start in range(0, len(keys), IN_BATCH):
                batch = list(keys[start:start + IN_BATCH])
                marks = ", ".join("?" for _ in batch)
                db.execute(f"DELETE FROM intents WHERE store = ? AND key IN ({marks})",  # noqa: S608
                           [store, *batch])
        if keys:
            await self._metadata.run(work)

    async def old_intents(self, before: datetime, limit: int,
                          after: Intent | None = None) -> list[Intent]:
        where = "created_us < ?"
        params: list[int | str] = [to_micros(before)]
        if after is not None:
            # A row value comparison walks the (created_us, store, key) index in order.
            where += " AND (created_us, store, key) > (?, ?, ?)"
            params += [to_micros(after.created), after.store, after.key]
        sql = (f"SELECT key, store, created_us FROM intents WHERE {where}"  # noqa: S608
               " ORDER BY created_us, store, key LIMIT ?")
        rows = await self._metadata.run(lambda db: db.execute(sql, [*params, limit]).fetchall())
        return [Intent(row[0], row[1], from_micros(row[2])) for row in rows]
