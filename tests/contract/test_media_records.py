"""A file record's media fields (``processing``, ``derivatives``) in the MetadataStore, on both
backends (``media`` fixture): round trips, derivative keys counted as referenced blobs (the
sweeper and fsck delete blobs no record references), the listing filters; and records written
before media jobs (a SQLite schema 5 file, a MongoDB document without the fields)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from typing import Any

import pytest

from tests.contract.test_jobs import LATER, derivative
from tests.contract.test_metadata_store import T0, expect, record
from tests.mongo_support import fresh_database
from tornado_files.listing import decode_cursor, encode_cursor
from tornado_files.metadata.mongo import MongoMetadataStore
from tornado_files.metadata.mongo_docs import document_of
from tornado_files.metadata.mongo_jobs import MongoJobQueue
from tornado_files.metadata.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteMetadataStore
from tornado_files.metadata.sqlite_jobs import CLAIM_SQL
from tornado_files.models import PROCESSING_STATES, FileRecord, ListQuery
from tornado_files.mongo import Document, database_of, make_client


def imaged(n: int, **changes: Any) -> FileRecord:
    """record(n) with a processing state and, for every third, derivative images."""
    kinds = ("thumbnail", "square_thumbnail", "fullsize")[: 1 + n % 3]
    derivatives = tuple(derivative(10 * n + i, kind) for i, kind in enumerate(kinds))
    return record(n, processing=PROCESSING_STATES[n % 4],
                  derivatives=derivatives if n % 3 == 0 else (), **changes)


async def paged(store: Any, **query: Any) -> list[str]:
    """Every id a listing visits, three a page, the cursor through its opaque string."""
    seen: list[str] = []
    after = None
    sort = query.pop("sort", "-added")
    for _ in range(30):
        page = await store.list(ListQuery(sort=sort, limit=3, after=after, **query))
        seen += [r.id for r in page.records]
        if page.after is None:
            return seen
        after = decode_cursor(sort, encode_cursor(sort, page.after))
    raise AssertionError("the listing did not end")


@pytest.mark.gen_test
async def test_processing_and_derivatives_round_trip(media):
    store, _ = media
    full = record(1, processing="done", derivatives=(
        derivative(1), derivative(2, "square_thumbnail"), derivative(3, "fullsize")))
    bare = record(2)
    waiting = record(3, processing="pending")
    await store.insert_many([full, bare, waiting])
    assert await store.get(full.id) == full
    assert await store.get(bare.id) == bare
    assert bare.processing == "none"
    assert await store.get(waiting.id) == waiting
    page = await store.list(ListQuery(sort="added"))
    assert page.records == (full, bare, waiting)
    changed = await store.merge(full.id, filename="x.txt", changes={"k": "v"}, modified=LATER)
    assert (changed.processing, changed.derivatives) == ("done", full.derivatives)
    assert await store.delete(full.id) == changed  # with its derivatives, for their blobs


@pytest.mark.gen_test
async def test_derivative_keys_are_referenced_blobs(media):
    store, jobs = media
    one = record(1, processing="done", derivatives=(derivative(1), derivative(2, "fullsize")))
    other = record(2, storage="gridfs", derivatives=(derivative(3),))
    await store.insert_many([one, other, record(4, processing="pending")])
    assert await store.has_blob("disk", derivative(1).key)
    assert await store.has_blob("disk", derivative(2).key)
    assert await store.has_blob("disk", one.blob_key)  # content still counts
    assert not await store.has_blob("disk", derivative(3).key)  # another store's
    assert await store.has_blob("gridfs", derivative(3).key)
    assert not await store.has_blob("gridfs", derivative(1).key)
    asked = [derivative(n).key for n in range(1, 6)] + [one.blob_key, "0" * 32]
    assert await store.referenced_blobs("disk", asked) == {
        derivative(1).key, derivative(2).key, one.blob_key}
    assert await store.referenced_blobs("gridfs", asked) == {derivative(3).key}
    # A finished job replaces them: the old keys go, the new ones count.
    claimed = await jobs.claim_job("a" * 32, LATER, LATER)
    assert claimed is not None
    assert claimed.record.id == record(4).id
    await jobs.finish_job(record(4).id, "a" * 32, processing="done", metadata={},
                          derivatives=[derivative(5)])
    await jobs.requeue_job(one.id, LATER)
    assert await jobs.claim_job("b" * 32, LATER, LATER) is not None
    await jobs.finish_job(one.id, "b" * 32, processing="done", metadata={},
                          derivatives=[derivative(2, "fullsize")])
    assert not await store.has_blob("disk", derivative(1).key)
    assert await store.has_blob("disk", derivative(5).key)
    assert await store.referenced_blobs("disk", asked) == {
        derivative(2).key, derivative(5).key, one.blob_key}
    # Deleted with its record.
    await store.delete(one.id)
    await store.delete(other.id)
    assert await store.referenced_blobs("disk", asked) == {derivative(5).key}
    assert not await store.has_blob("disk", derivative(2).key)
    assert not await store.has_blob("gridfs", derivative(3).key)


@pytest.mark.gen_test
async def test_listing_filters_processing_and_derivative_images(media):
    store, _ = media
    records = [imaged(n) for n in range(1, 24)]
    await store.insert_many(records)
    cases: list[tuple[dict[str, Any], Any]] = [
        *[({"processing": state}, lambda r, s=state: r.processing == s)
          for state in PROCESSING_STATES],
        ({"has_derivative_images": True}, lambda r: bool(r.derivatives)),
        ({"has_derivative_images": False}, lambda r: not r.derivatives),
        ({"processing": "pending", "has_derivative_images": True},
         lambda r: r.processing == "pending" and bool(r.derivatives)),
        ({"processing": "done", "has_derivative_images": False, "route": "/api/files"},
         lambda r: r.processing == "done" and not r.derivatives and r.route == "/api/files"),
    ]
    for query, keep in cases:
        wanted = expect(records, keep)
        assert wanted, query  # every case selects something
        assert await paged(store, **query) == wanted, query
        by_size = expect(records, keep, key=lambda r: (r.size, r.id), reverse=False)
        assert await paged(store, sort="size", **query) == by_size, query


@pytest.mark.gen_test
async def test_sqlite_schema_5_records_are_migrated(tmp_path, offload):
    path = tmp_path / "meta.sqlite3"
    with closing(sqlite3.connect(path)) as db:  # a database as version 5 left it
        db.executescript(" ".join(f"{MIGRATIONS[v]};" for v in range(1, 6))
                         + " PRAGMA user_version = 5;")
        db.execute(
            "INSERT INTO files (id, filename, original_filename, size, mime_type, declared_type,"
            " type_os, sha256, route, storage, blob_key, owner, added_us, modified_us, data,"
            " metadata) VALUES (?, 'a.txt', 'a.txt', 1, 'text/plain', 'text/plain', 'ASCII',"
            " ?, '/api/files', 'disk', ?, NULL, 1, 1, '{}', '{}')",
            ("1" * 32, "2" * 64, "3" * 32))
        db.commit()
    metadata = SqliteMetadataStore(path, offload)
    await metadata.startup()
    old = await metadata.get("1" * 32)
    assert (old.processing, old.derivatives) == ("none", ())
    assert [r.id for r in (await metadata.list(ListQuery(processing="none"))).records] == [old.id]
    page = await metadata.list(ListQuery(has_derivative_images=False))
    assert [r.id for r in page.records] == [old.id]
    assert await metadata.has_blob("disk", "3" * 32)
    await metadata.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        indexes = {row[1] for row in db.execute("PRAGMA index_list(files)")}
        assert "files_jobs_due" in indexes
        plan = " ".join(str(row[3]) for row in db.execute(
            f"EXPLAIN QUERY PLAN {CLAIM_SQL}", ("t", 1, 1, 1, 1)))
        assert "USING INDEX files_jobs_due" in plan
        assert "TEMP B-TREE" not in plan
        plan = " ".join(str(row[3]) for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM derivative_blobs WHERE storage = 'disk'"
            " AND key = 'k'"))
        assert "PRIMARY KEY" in plan or "autoindex" in plan


@pytest.mark.gen_test
async def test_mongo_documents_from_before_media_jobs_read_as_none(standin):
    client = make_client(standin.uri(fresh_database()))
    db = database_of(client)
    store, jobs = MongoMetadataStore(db), MongoJobQueue(db)
    await store.startup()
    await jobs.startup()
    try:
        indexes = {tuple(ix["key"]): ix async for ix in await db["files"].list_indexes()}
        assert ("storage", "derivatives.key") in indexes
        assert indexes[("job.due_us", "_id")]["partialFilterExpression"] == {
            "processing": "pending"}
        legacy: Document = document_of(record(1))
        for name in ("processing", "derivatives", "job"):
            del legacy[name]
        await db["files"].insert_one(legacy)  # a document as an older version wrote it
        assert await store.get(record(1).id) == record(1)
        assert [r.id for r in (await store.list(ListQuery(processing="none"))).records] == [
            record(1).id]
        page = await store.list(ListQuery(has_derivative_images=False))
        assert [r.id for r in page.records] == [record(1).id]
        assert await jobs.claim_job("a" * 32, LATER, LATER) is None
        requeued = await jobs.requeue_job(record(1).id, T0)
        assert requeued == replace(record(1), processing="pending")
        assert (await jobs.claim_job("a" * 32, LATER, LATER)) is not None
    finally:
        await client.drop_database(db.name)
        await client.close()
