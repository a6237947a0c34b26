"""File records in SQLite (stdlib): WAL mode, work off the event loop, versioned schema.

One connection, used only from the offload pool and serialised by a lock: SQLite allows one
writer at a time anyway, and a single connection keeps WAL readers and the writer in one
place. Times are stored as integer microseconds (exact ordering); ``data``, ``metadata`` and
``derivatives`` as JSON text (rows ↔ records: ``sqlite_rows``; media jobs: ``sqlite_jobs``).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from tornado_files.blocking import Offload
from tornado_files.errors import BackendUnavailable, DuplicateKey, InsufficientStorage, NotFound
from tornado_files.metadata.base import Precondition
from tornado_files.metadata.headroom import Headroom
from tornado_files.metadata.sqlite_rows import (
    COLUMNS,
    NO_DERIVATIVES,
    filters,
    index_derivatives,
    lower,
    record_of,
    write_transaction,
)
from tornado_files.metadata.sqlite_rows import row as row_of
from tornado_files.models import BlobRef, FileRecord, ListQuery, Page, to_micros

log = logging.getLogger("tornado_files.metadata.sqlite")
T = TypeVar("T")
SCHEMA_VERSION = 8
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE files (
        id TEXT PRIMARY KEY, filename TEXT NOT NULL, original_filename TEXT NOT NULL,
        size INTEGER NOT NULL, mime_type TEXT NOT NULL, declared_type TEXT NOT NULL,
        type_os TEXT NOT NULL, sha256 TEXT NOT NULL, route TEXT NOT NULL,
        storage TEXT NOT NULL, blob_key TEXT NOT NULL, owner TEXT,
        added_us INTEGER NOT NULL, modified_us INTEGER NOT NULL,
        data TEXT NOT NULL, metadata TEXT NOT NULL
    );
    CREATE INDEX files_added ON files (added_us, id);
    CREATE INDEX files_size ON files (size, id);
    CREATE INDEX files_filename ON files (filename, id);
    CREATE INDEX files_modified ON files (modified_us);
    CREATE INDEX files_mime ON files (mime_type);
    CREATE INDEX files_route ON files (route);
    CREATE INDEX files_owner ON files (owner);
    CREATE INDEX files_sha256 ON files (sha256);
    CREATE INDEX files_blob ON files (storage, blob_key);
    """,
    2: """
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY, route TEXT NOT NULL, storage TEXT NOT NULL,
        length INTEGER NOT NULL, offset INTEGER NOT NULL, created_us INTEGER NOT NULL,
        expires_us INTEGER NOT NULL, original_filename TEXT NOT NULL,
        declared_type TEXT NOT NULL, data TEXT NOT NULL, owner TEXT, mime_type TEXT,
        type_os TEXT, lease_token TEXT, lease_until_us INTEGER
    );
    CREATE INDEX uploads_expires ON uploads (expires_us);
    """,
    3: """
    CREATE TABLE intents (
        store TEXT NOT NULL, key TEXT NOT NULL, created_us INTEGER NOT NULL,
        PRIMARY KEY (store, key)
    );
    CREATE INDEX intents_created ON intents (created_us, store, key);
    CREATE INDEX files_storage_id ON files (storage, id);
    """,
    4: """
    ALTER TABLE uploads ADD COLUMN sha256 TEXT;
    CREATE INDEX uploads_completing ON uploads (sha256) WHERE sha256 IS NOT NULL;
    """,
    5: """
    CREATE TABLE stores (name TEXT PRIMARY KEY, store_id TEXT NOT NULL);
    """,
    # Media jobs live on the records (sqlite_jobs): a pending record is due at job_due_us;
    # a claim holds job_token until job_until_us. derivative_blobs indexes the derivatives'
    # keys (kept with each change of ``derivatives``) for has_blob / referenced_blobs.
    6: """
    ALTER TABLE files ADD COLUMN processing TEXT NOT NULL DEFAULT 'none';
    ALTER TABLE files ADD COLUMN derivatives TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE files ADD COLUMN job_token TEXT;
    ALTER TABLE files ADD COLUMN job_until_us INTEGER;
    ALTER TABLE files ADD COLUMN job_due_us INTEGER;
    ALTER TABLE files ADD COLUMN job_attempts INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX files_jobs_due ON files (job_due_us, id) WHERE processing = 'pending';
    CREATE INDEX files_processing ON files (processing);
    CREATE TABLE derivative_blobs (
        storage TEXT NOT NULL, key TEXT NOT NULL, file_id TEXT NOT NULL,
        PRIMARY KEY (storage, key)
    );
    CREATE INDEX derivative_blobs_file ON derivative_blobs (file_id);
    """,
    # Named leases (sqlite_leases): who runs the sweeper among the processes on this file.
    7: """
    CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_us INTEGER NOT NULL);
    """,
    # Webhook deliveries (sqlite_outbox). A claim moves due_us to the lease's end, so the one
    # index finds both new deliveries and those whose lease ran out.
    8: """
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY, event TEXT NOT NULL, url TEXT NOT NULL, body BLOB NOT NULL,
        created_us INTEGER NOT NULL, due_us INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, lease_token TEXT, lease_until_us INTEGER
    );
    CREATE INDEX outbox_due ON outbox (due_us, id);
    """,
}
# SQLite before 3.32 took at most 999 parameters per statement.
IN_BATCH = 500
# Sort name → column; only these names ever reach SQL text.
_SORT_COLUMNS = {"added": "added_us", "size": "size", "filename": "filename"}


class SqliteMetadataStore:
    """Implements ``MetadataStore`` on one SQLite file."""

    def __init__(self, path: Path, offload: Offload, headroom: Headroom | None = None) -> None:
        """``headroom``: a reserve file given up when a write finds the disk full, so that
        deleting files still works on a disk something else filled (``metadata.headroom``)."""
        self.path = path
        self._offload = offload
        self._headroom = headroom
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` on the offload pool, serialised with every other use of
        the connection; ``sqlite3`` errors become ``BackendUnavailable``. For the modules
        that keep other tables of this schema (``sqlite_uploads``, ``sqlite_intents``)."""
        return await self._offload(self._locked, work)

    def _locked(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._db is None:
                raise BackendUnavailable()
            try:
                return self._attempt(self._db, work)
            except sqlite3.Error:  # only SQLITE_FULL gets here: make room, try once more
                if self._headroom is None or not self._headroom.release():
                    raise InsufficientStorage() from None
            try:
                return self._attempt(self._db, work)
            except sqlite3.Error:
                raise InsufficientStorage() from None

    def _attempt(self, db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work``, with the errors translated; ``SQLITE_FULL`` passes as it is (the caller
        may make room and try again). A transaction left open by a failed COMMIT is ended."""
        try:
            return work(db)
        except sqlite3.IntegrityError as exc:
            log.info("sqlite: %s", exc)
            raise DuplicateKey() from None
        except sqlite3.Error as exc:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                log.warning("sqlite: %s", exc)
                raise
            log.error("sqlite: %s", exc)
            raise BackendUnavailable() from None

    async def startup(self) -> None:
        await self._offload(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._headroom is not None:
            self._headroom.ensure()
        try:
            self._connect()
        except sqlite3.Error as exc:
            # Not a database, or a newer schema's: one line at start-up, not a traceback.
            log.error("sqlite: cannot open %s: %s", self.path, exc)
            raise BackendUnavailable() from None

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.create_function("py_lower", 1, lower, deterministic=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for target in sorted(v for v in MIGRATIONS if v > version):
                db.executescript(
                    f"BEGIN; {MIGRATIONS[target]}; PRAGMA user_version={target}; COMMIT;")
        except BaseException:
            db.close()
            raise
        with self._lock:
            self._db = db

    async def close(self) -> None:
        def _close() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None
        await self._offload(_close)

    async def ping(self) -> None:
        await self.run(lambda db: db.execute("SELECT 1").fetchone())
        if self._headroom is not None:
            await self._offload(self._headroom.ensure)  # back once the disk has room

    async def insert_many(self, records: Sequence[FileRecord]) -> None:
        marks = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT INTO files ({', '.join(COLUMNS)}) VALUES ({marks})"  # noqa: S608

        def work(db: sqlite3.Connection) -> None:
            db.executemany(sql, [row_of(r) for r in records])
            for record in records:
                if record.derivatives:
                    index_derivatives(db, record.id, record.storage, record.derivatives)
        await self.run(lambda db: write_transaction(db, work))

    async def get(self, file_id: str) -> FileRecord:
        row = await self.run(
            lambda db: db.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone())
        if row is None:
            raise NotFound()
        return record_of(row)

    async def update(self, file_id: str, *, filename: str | None, data: dict[str, Any],
                     modified: datetime, precondition: Precondition | None = None
                     ) -> FileRecord:
        return await self._change(file_id, filename, lambda _: data, modified, precondition)

    async def merge(self, file_id: str, *, filename: str | None, changes: dict[str, Any],
                    modified: datetime, precondition: Precondition | None = None
                    ) -> FileRecord:
        def merged(data: dict[str, Any]) -> dict[str, Any]:
            for key, value in changes.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            return data
        return await self._change(file_id, filename, merged, modified, precondition)

    async def _change(self, file_id: str, filename: str | None,
                      new_data: Callable[[dict[str, Any]], dict[str, Any]], modified: datetime,
                      precondition: Precondition | None) -> FileRecord:
        def work(db: sqlite3.Connection) -> sqlite3.Row | None:
            # One write transaction from the read to the write: other processes sharing the
            # file wait for it (busy_timeout), so no change is computed on a stale record.
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
                if row is None:
                    db.execute("ROLLBACK")
                    return None
                if precondition is not None:
                    precondition(record_of(row))
                data = new_data(json.loads(row["data"]))
                found: sqlite3.Row | None = db.execute(
                    "UPDATE files SET filename = coalesce(?, filename), data = ?, modified_us = ?"
                    " WHERE id = ? RETURNING *",
                    (filename, json.dumps(data), to_micros(modified), file_id)).fetchone()
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return found
        row = await self.run(work)
        if row is None:
            raise NotFound()
        return record_of(row)

    async def delete(self, file_id: str) -> FileRecord:
        def work(db: sqlite3.Connection) -> sqlite3.Row | None:
            found: sqlite3.Row | None = db.execute(
                "DELETE FROM files WHERE id = ? RETURNING *", (file_id,)).fetchone()
            if found is not None and found["derivatives"] != NO_DERIVATIVES:
                index_derivatives(db, file_id, found["storage"], ())
            return found
        row = await self.run(lambda db: write_transaction(db, work))
        if row is None:
            raise NotFound()
        return record_of(row)

    async def list(self, query: ListQuery) -> Page:
        where, params = filters(query)
        field = query.sort.lstrip("-")
        column = _SORT_COLUMNS[field]
        op, order = ("<", "DESC") if query.sort.startswith("-") else (">", "ASC")
        if query.after is not None:
            value, last_id = query.after
            bound = to_micros(value) if field == "added" else value
            where.append(f"({column} {op} ? OR ({column} = ? AND id {op} ?))")
            params += [bound, bound, last_id]
        # Only fixed column names and operators are formatted in; every value is a parameter.
        sql = (f"SELECT * FROM files {'WHERE ' + ' AND '.join(where) if where else ''}"  # noqa: S608
               f" ORDER BY {column} {order}, id {order} LIMIT ?")
        params.append(query.limit + 1)
        rows = await self.run(lambda db: db.execute(sql, params).fetchall())
        return Page.of([record_of(r) for r in rows], query)

    async def has_blob(self, storage: str, key: str) -> bool:
        row = await self.run(lambda db: db.execute(
            "SELECT 1 FROM files WHERE storage = ? AND blob_key = ? UNION ALL"
            " SELECT 1 FROM derivative_blobs WHERE storage = ? AND key = ? LIMIT 1",
            (storage, key, storage, key)).fetchone())
        return row is not None

    async def referenced_blobs(self, storage: str, keys: Sequence[str]) -> set[str]:
        def work(db: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(keys), IN_BATCH):
                batch = list(keys[start:start + IN_BATCH])
                marks = ", ".join("?" for _ in batch)
                found.update(row[0] for row in db.execute(
                    f"SELECT blob_key FROM files WHERE storage = ? AND blob_key IN ({marks})"  # noqa: S608
                    f" UNION ALL SELECT key FROM derivative_blobs WHERE storage = ?"
                    f" AND key IN ({marks})", [storage, *batch, storage, *batch]))
            return found
        return await self.run(work)

    async def blob_refs_page(self, storage: str, after: str | None, limit: int
                             ) -> builtins.list[BlobRef]:
        rows = await self.run(lambda db: db.execute(
            "SELECT id, blob_key FROM files WHERE storage = ? AND id > ? ORDER BY id LIMIT ?",
            (storage, after or "", limit)).fetchall())
        return [BlobRef(row[0], row[1]) for row in rows]

    async def store_id(self, storage: str) -> str | None:
        row = await self.run(lambda db: db.execute(
            "SELECT store_id FROM stores WHERE name = ?", (storage,)).fetchone())
        return str(row[0]) if row is not None else None

    async def set_store_id(self, storage: str, store_id: str) -> None:
        await self.run(lambda db: db.execute(
            "INSERT INTO stores (name, store_id) VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
            " SET store_id = excluded.store_id", (storage, store_id)))
