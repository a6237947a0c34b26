"""tus upload state in SQLite (the ``uploads`` table of schema version 2)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from tornado_files.errors import NotFound
from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.models import UploadState, from_micros, to_micros

COLUMNS = ("id", "route", "storage", "length", "offset", "created_us", "expires_us",
            "original_filename", "declared_type", "data", "owner", "mime_type", "type_os",
            "lease_token", "lease_until_us", "sha256")


def upload_row(state: UploadState) -> tuple[Any, ...]:
    return (state.id, state.route, state.storage, state.length, state.offset,
            to_micros(state.created), to_micros(state.expires), state.original_filename,
            state.declared_type, json.dumps(state.data), state.owner, state.mime_type,
            state.type_os, state.lease_token,
            to_micros(state.lease_until) if state.lease_until else None, state.sha256)


def _state(row: sqlite3.Row) -> UploadState:
    return UploadState(
        id=row["id"], route=row["route"], storage=row["storage"], length=row["length"],
        offset=row["offset"], created=from_micros(row["created_us"]),
        expires=from_micros(row["expires_us"]), original_filename=row["original_filename"],
        declared_type=row["declared_type"], data=json.loads(row["data"]), owner=row["owner"],
        mime_type=row["mime_type"], type_os=row["type_os"], lease_token=row["lease_token"],
        lease_until=from_micros(row["lease_until_us"]) if row["lease_until_us"] else None,
        sha256=row["sha256"])


class SqliteUploadStore:
    """``UploadStateStore`` on the metadata store's SQLite connection and schema."""

    def __init__(self, metadata: SqliteMetadataStore) -> None:
        self._run = metadata.run

    async def startup(self) -> None:
        return None  # the table comes with the metadata schema (version 2)

    async def create_upload(self, state: UploadState) -> None:
        sql = (f"INSERT INTO uploads ({', '.join(COLUMNS)}) "  # noqa: S608 (fixed names)
               f"VALUES ({', '.join('?' for _ in COLUMNS)})")
        await self._run(lambda db: db.execute(sql, upload_row(state)))

    async def get_upload(self, upload_id: str) -> UploadState:
        row = await self._run(lambda db: db.execute(
            "SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone())
        if row is None:
            raise NotFound()
        return _state(row)

    async def claim_upload(self, upload_id: str, offset: int, token: str,
                           until: datetime, now: datetime) -> UploadState | None:
        def work(db: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = db.execute(
                "UPDATE uploads SET lease_token = ?, lease_until_us = ? WHERE id = ? AND "
                "offset = ? AND (lease_until_us IS NULL OR lease_until_us < ?) RETURNING *",
                (token, to_micros(until), upload_id, offset, to_micros(now))).fetchone()
            return row
        row = await self._run(work)
        return _state(row) if row is not None else None

    async def advance_upload(self, upload_id: str, token: str,
                             offset: int, *, expires: datetime, lease_until: datetime | None,
                             mime_type: str | None, type_os: str | None,
                             sha256: str | None = None) -> bool:
        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE uploads SET offset = ?, expires_us = ?, lease_until_us = ?, "
                "lease_token = ?, mime_type = coalesce(?, mime_type), "
                "type_os = coalesce(?, type_os), sha256 = coalesce(?, sha256) "
                "WHERE id = ? AND lease_token = ? AND offset <= ?",
                (offset, to_micros(expires), to_micros(lease_until) if lease_until else None,
                 token if lease_until else None, mime_type, type_os, sha256, upload_id, token,
                 offset))
            return cursor.rowcount
        return await self._run(work) == 1

    async def count_uploads(self, limit: int) -> int:
        row = await self._run(lambda db: db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM uploads LIMIT ?)", (limit,)).fetchone())
        return int(row[0])

    async def delete_upload(self, upload_id: str) -> bool:
        count = await self._run(lambda db: db.execute(
            "DELETE FROM uploads WHERE id = ?", (upload_id,)).rowcount)
        return bool(count)

    async def expired_uploads(self, now: datetime, limit: int = 500) -> list[UploadState]:
        rows = await self._run(lambda db: db.execute(
            "SELECT * FROM uploads WHERE expires_us < ? AND sha256 IS NULL AND "
            "(lease_until_us IS NULL OR lease_until_us < ?) ORDER BY expires_us LIMIT ?",
            (to_micros(now), to_micros(now), limit)).fetchall())
        return [_state(r) for r in rows]

    async def completing_uploads(self, limit: int) -> list[UploadState]:
        rows = await self._run(lambda db: db.execute(
            "SELECT * FROM uploads WHERE sha256 IS NOT NULL LIMIT ?", (limit,)).fetchall())
        return [_state(r) for r in rows]
