"""The MetadataStore contract, run against every backend's real resource: SQLite checked
against its rows, MongoDB against its documents. Same queries, same results."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.mongo_support import fresh_database
from tornado_files.errors import BackendUnavailable, DuplicateKey, NotFound, PreconditionFailed
from tornado_files.listing import decode_cursor, encode_cursor
from tornado_files.metadata.mongo import MongoMetadataStore
from tornado_files.metadata.sqlite import SqliteMetadataStore
from tornado_files.models import FileRecord, ListQuery
from tornado_files.mongo import database_of, make_client

T0 = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)


def record(n: int, **changes: Any) -> FileRecord:
    base = FileRecord(
        id=f"{n:032x}", filename=f"file_{n % 5}.txt", original_filename=f"dir/file_{n}.txt",
        size=100 * (n % 7), mime_type="text/plain" if n % 3 else "image/png",
        declared_type="application/octet-stream", type_os="ASCII text", sha256=f"{n:064x}",
        route="/api/files" if n % 2 else "/api/avatars", storage="disk", blob_key=f"{n:032x}",
        added=T0 + timedelta(microseconds=n), modified=T0 + timedelta(seconds=n),
        owner="alice" if n % 4 == 0 else None, data={"group": str(n % 3), "n": n},
        metadata={"width": n},
    )
    return replace(base, **changes)


class SqliteProbe:
    def __init__(self, path: Path, store: SqliteMetadataStore) -> None:
        self.path = path
        self.store = store

    def count(self) -> int:
        with closing(sqlite3.connect(self.path)) as db:
            return int(db.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    async def break_connection(self) -> None:
        await self.store.close()


class MongoProbe:
    def __init__(self, uri: str, client: Any) -> None:
        self.sync: MongoClient[dict[str, Any]] = MongoClient(uri)
        self.async_client = client

    def count(self) -> int:
        return int(self.sync.get_default_database()["files"].count_documents({}))

    async def break_connection(self) -> None:
        await self.async_client.close()


@pytest.fixture(params=["sqlite", "mongo"])
def backend(request, tmp_path, offload, io_loop):
    if request.param == "sqlite":
        store = SqliteMetadataStore(tmp_path / "meta.sqlite3", offload)
        io_loop.run_sync(store.startup)
        yield store, SqliteProbe(tmp_path / "meta.sqlite3", store)
        io_loop.run_sync(store.close)
        return
    uri = request.getfixturevalue("standin").uri(fresh_database())
    client = make_client(uri)
    mongo_store = MongoMetadataStore(database_of(client))
    io_loop.run_sync(mongo_store.startup)
    probe = MongoProbe(uri, client)
    yield mongo_store, probe
    probe.sync.drop_database(probe.sync.get_default_database())
    probe.sync.close()
    io_loop.run_sync(client.close)


async def ids(store, **query: Any) -> list[str]:
    page = await store.list(ListQuery(**query))
    return [r.id for r in page.records]


@pytest.mark.gen_test
async def test_insert_get_roundtrip_is_exact(backend):
    store, probe = backend
    original = record(1, filename="ünï \"quoted\".txt", data={"nested": {"a": [1, None]}})
    await store.insert_many([original])
    assert await store.get(original.id) == original
    assert probe.count() == 1
    with pytest.raises(NotFound):
        await store.get("f" * 32)


@pytest.mark.gen_test
async def test_insert_many_is_all_or_nothing_and_a_duplicate_is_a_conflict(backend):
    store, probe = backend
    await store.insert_many([record(1)])
    with pytest.raises(DuplicateKey):  # not an outage: 409, not 503
        await store.insert_many([record(2), record(3), record(1)])  # duplicate id
    assert probe.count() == 1
    with pytest.raises(NotFound):
        await store.get(record(2).id)


@pytest.mark.gen_test
async def test_update_and_delete(backend):
    store, probe = backend
    await store.insert_many([record(1)])
    later = T0 + timedelta(days=1)
    updated = await store.update(record(1).id, filename=None, data={"x": 1}, modified=later)
    assert updated == replace(record(1), data={"x": 1}, modified=later)
    renamed = await store.update(record(1).id, filename="new.txt", data={}, modified=later)
    assert renamed.filename == "new.txt"
    assert await store.get(record(1).id) == renamed
    with pytest.raises(NotFound):
        await store.update("f" * 32, filename=None, data={}, modified=later)
    assert await store.delete(record(1).id) == renamed
    assert probe.count() == 0
    with pytest.raises(NotFound):
        await store.delete(record(1).id)


@pytest.fixture
def many(backend, io_loop):
    store, _ = backend
    records = [record(n) for n in range(1, 24)]
    io_loop.run_sync(lambda: store.insert_many(records))
    return store, records


def expect(records: list[FileRecord], keep: Any, key: Any = None, reverse: bool = True
           ) -> list[str]:
    chosen = [r for r in records if keep(r)]
    chosen.sort(key=key or (lambda r: (r.added, r.id)), reverse=reverse)
    return [r.id for r in chosen]


@pytest.mark.gen_test
async def test_every_filter(many):
    store, records = many
    cases: list[tuple[dict[str, Any], Any]] = [
        ({}, lambda r: True),
        ({"mime_type": "image/png"}, lambda r: r.mime_type == "image/png"),
        ({"mime_type": "image/*"}, lambda r: r.mime_type.startswith("image/")),
        ({"mime_type": "text/*"}, lambda r: r.mime_type.startswith("text/")),
        ({"size_greater_than": 200}, lambda r: r.size > 200),
        ({"size_less_than": 200}, lambda r: r.size < 200),
        ({"added_since": T0 + timedelta(microseconds=20)}, lambda r: r.added >= T0 +
         timedelta(microseconds=20)),
        ({"modified_since": T0 + timedelta(seconds=10)}, lambda r: r.modified >= T0 +
         timedelta(seconds=10)),
        ({"filename": "FILE_3"}, lambda r: "file_3" in r.filename),
        ({"route": "/api/avatars"}, lambda r: r.route == "/api/avatars"),
        ({"owner": "alice"}, lambda r: r.owner == "alice"),
        ({"sha256": record(7).sha256}, lambda r: r.id == record(7).id),
        ({"data_equals": (("group", "1"),)}, lambda r: r.data["group"] == "1"),
        ({"data_equals": (("n", "5"),)}, lambda r: False),  # a number is not the string "5"
        ({"data_equals": (("group", "1"),), "route": "/api/files", "size_less_than": 400},
         lambda r: r.data["group"] == "1" and r.route == "/api/files" and r.size < 400),
    ]
    for query, keep in cases:
        assert await ids(store, limit=1000, **query) == expect(records, keep), query


@pytest.mark.gen_test
async def test_filename_filter_treats_wildcards_literally(backend):
    store, _ = backend
    await store.insert_many([record(1, filename="100%_done.txt"), record(2, filename="1000.txt")])
    assert await ids(store, filename="0%_") == [record(1).id]
    assert await ids(store, filename="_") == [record(1).id]


@pytest.mark.gen_test
@pytest.mark.parametrize("sort", ["added", "-added", "size", "-size", "filename", "-filename"])
async def test_sort_and_keyset_paging_visit_each_record_once(many, sort):
    store, records = many
    field = sort.lstrip("-")
    key = {"added": lambda r: (r.added, r.id), "size": lambda r: (r.size, r.id),
           "filename": lambda r: (r.filename, r.id)}[field]
    wanted = expect(records, lambda r: True, key=key, reverse=sort.startswith("-"))
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await store.list(ListQuery(sort=sort, limit=5, after=after))
        seen += [r.id for r in page.records]
        if page.after is None:
            break
        # The cursor survives its trip through the opaque string clients see.
        after = decode_cursor(sort, encode_cursor(sort, page.after))
    assert seen == wanted


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_lost_connection_is_unavailable(backend):
    store, probe = backend
    await store.ping()
    await probe.break_connection()
    with pytest.raises(BackendUnavailable):
        await store.ping()
    with pytest.raises(BackendUnavailable):
        await store.get(record(1).id)


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_merges_lose_no_key(backend):
    # Issue 13: a merge is one atomic read-modify-write inside the store, so concurrent
    # merges of different keys all survive (a read in Python then a write of the whole
    # ``data`` kept only the last writers' keys).
    store, _ = backend
    await store.insert_many([record(1, data={"keep": 1, "drop": 2})])
    later = T0 + timedelta(days=1)
    merged = await asyncio.gather(*(
        store.merge(record(1).id, filename=None, changes={f"k{n}": n}, modified=later)
        for n in range(50)))
    assert all(f"k{n}" in m.data for n, m in enumerate(merged))
    final = await store.merge(record(1).id, filename="new.txt",
                              changes={"drop": None, "absent": None, "nested": {"a": [1]}},
                              modified=later)
    assert final.data == {"keep": 1, **{f"k{n}": n for n in range(50)}, "nested": {"a": [1]}}
    assert final.filename == "new.txt"
    assert final.modified == later
    assert await store.get(record(1).id) == final
    with pytest.raises(NotFound):
        await store.merge("f" * 32, filename=None, changes={"x": 1}, modified=later)


@pytest.mark.gen_test
async def test_store_identities_are_recorded_and_replaced(backend):
    store, _ = backend
    assert await store.store_id("disk") is None
    await store.set_store_id("disk", "a" * 32)
    await store.set_store_id("gridfs", "b" * 32)
    await store.set_store_id("disk", "c" * 32)
    assert await store.store_id("disk") == "c" * 32
    assert await store.store_id("gridfs") == "b" * 32


@pytest.mark.gen_test(timeout=30)
async def test_a_precondition_is_checked_atomically_with_the_change(backend):
    # If-Match: of changes that all require the record as it was, exactly one is made — the
    # others see the changed record and are refused, on either backend.
    store, _ = backend
    await store.insert_many([record(1)])
    later = T0 + timedelta(days=1)
    seen = await store.get(record(1).id)

    def unchanged(current: FileRecord) -> None:
        if current != seen:
            raise PreconditionFailed()

    async def attempt(n: int) -> bool:
        try:
            if n % 2:
                await store.merge(record(1).id, filename=None, changes={f"k{n}": n},
                                  modified=later + timedelta(microseconds=n),
                                  precondition=unchanged)
            else:
                await store.update(record(1).id, filename=None, data={f"k{n}": n},
                                   modified=later + timedelta(microseconds=n),
                                   precondition=unchanged)
        except PreconditionFailed:
            return False
        return True
    made = await asyncio.gather(*(attempt(n) for n in range(20)))
    assert made.count(True) == 1
    winner = made.index(True)
    data = {**record(1).data, f"k{winner}": winner} if winner % 2 else {f"k{winner}": winner}
    assert (await store.get(record(1).id)).data == data
    with pytest.raises(NotFound):
        await store.merge("f" * 32, filename=None, changes={}, modified=later,
                          precondition=unchanged)
