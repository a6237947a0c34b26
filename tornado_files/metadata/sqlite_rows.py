"""Rows of the SQLite ``files`` table ↔ :class:`FileRecord`, listing filters as SQL, and the
``derivative_blobs`` index of derivative keys (schema version 6).

Kept apart from ``sqlite`` so the store and its job queue (``sqlite_jobs``) share them. Only
fixed column names and operators are ever formatted into SQL; every value is a parameter.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from tornado_files.models import Derivative, FileRecord, ListQuery, from_micros, to_micros

T = TypeVar("T")
# Inserted columns, in the order of :func:`row`. ``job_due_us`` makes a pending record due.
COLUMNS = ("id", "filename", "original_filename", "size", "mime_type", "declared_type",
           "type_os", "sha256", "route", "storage", "blob_key", "owner", "added_us",
           "modified_us", "data", "metadata", "processing", "derivatives", "job_due_us")
# ``derivatives`` of a record without any (json.dumps of an empty list, as always written).
NO_DERIVATIVES = "[]"


def lower(value: str | None) -> str | None:
    """Python's lower() for SQL (``py_lower``): non-ASCII names fold as in MongoDB."""
    return value.lower() if value is not None else None


def derivatives_json(derivatives: Sequence[Derivative]) -> str:
    """A JSON array of objects with the fields of :class:`Derivative`; ``"[]"`` for none."""
    return json.dumps([asdict(d) for d in derivatives])


def derivatives_of(text: str) -> tuple[Derivative, ...]:
    """The inverse of :func:`derivatives_json`."""
    return tuple(Derivative(**item) for item in json.loads(text))


def row(record: FileRecord) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS` for ``record``; a pending record is due at ``added``."""
    due = to_micros(record.added) if record.processing == "pending" else None
    return (record.id, record.filename, record.original_filename, record.size,
            record.mime_type, record.declared_type, record.type_os, record.sha256,
            record.route, record.storage, record.blob_key, record.owner, to_micros(record.added),
            to_micros(record.modified), json.dumps(record.data), json.dumps(record.metadata),
            record.processing, derivatives_json(record.derivatives), due)


def record_of(found: sqlite3.Row) -> FileRecord:
    """The record a ``SELECT *`` (or ``RETURNING *``) row of ``files`` stands for."""
    return FileRecord(
        id=found["id"], filename=found["filename"], original_filename=found["original_filename"],
        size=found["size"], mime_type=found["mime_type"], declared_type=found["declared_type"],
        type_os=found["type_os"], sha256=found["sha256"], route=found["route"],
        storage=found["storage"], blob_key=found["blob_key"], owner=found["owner"],
        added=from_micros(found["added_us"]), modified=from_micros(found["modified_us"]),
        data=json.loads(found["data"]), metadata=json.loads(found["metadata"]),
        processing=found["processing"], derivatives=derivatives_of(found["derivatives"]),
    )


def index_derivatives(db: sqlite3.Connection, file_id: str, storage: str,
                      derivatives: Sequence[Derivative]) -> None:
    """Make ``derivative_blobs`` name exactly ``derivatives`` for ``file_id``: call inside the
    transaction that writes the record's ``derivatives`` (or deletes it, with none). A key
    another record already holds is an ``IntegrityError`` (the store's ``DuplicateKey``)."""
    db.execute("DELETE FROM derivative_blobs WHERE file_id = ?", (file_id,))
    db.executemany("INSERT INTO derivative_blobs (storage, key, file_id) VALUES (?, ?, ?)",
                   [(storage, d.key, file_id) for d in derivatives])


def filters(query: ListQuery) -> tuple[list[str], list[Any]]:
    """WHERE clauses (joined with AND by the caller) and their parameters for every filter of
    ``query`` except the keyset cursor."""
    where: list[str] = []
    params: list[Any] = []
    if query.mime_type is not None:
        if query.mime_type.endswith("/*"):
            where.append("substr(mime_type, 1, ?) = ?")
            prefix = query.mime_type[:-1]
            params += [len(prefix), prefix]
        else:
            where.append("mime_type = ?")
            params.append(query.mime_type)
    simple = {"route": query.route, "owner": query.owner, "sha256": query.sha256,
              "processing": query.processing}
    for column, value in simple.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.has_derivative_images is not None:
        where.append("derivatives <> ?" if query.has_derivative_images else "derivatives = ?")
        params.append(NO_DERIVATIVES)
    ranges = [("size > ?", query.size_greater_than), ("size < ?", query.size_less_than),
              ("added_us >= ?", query.added_since and to_micros(query.added_since)),
              ("modified_us >= ?", query.modified_since and to_micros(query.modified_since))]
    for clause, bound in ranges:
        if bound is not None:
            where.append(clause)
            params.append(bound)
    if query.filename is not None:
        # instr, not LIKE: the user's % and _ are plain characters here. Python's lower()
        # (not SQLite's ASCII-only one) so non-ASCII names match as in MongoDB.
        where.append("instr(py_lower(filename), py_lower(?)) > 0")
        params.append(query.filename)
    for key, value in query.data_equals:
        path = '$."' + key.replace('"', '') + '"'
        where.append("json_type(data, ?) = 'text' AND json_extract(data, ?) = ?")
        params += [path, path, value]
    return where, params


def write_transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work(db)`` in one ``BEGIN IMMEDIATE`` transaction: committed when it returns, rolled
    back when it raises. Other processes sharing the file wait for it (busy_timeout)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result
