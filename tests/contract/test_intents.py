"""The IntentJournal contract and the metadata lookups the sweeper and fsck use, against
SQLite (checked in its rows) and MongoDB (checked in its documents)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.mongo_support import fresh_database
from tornado_files.metadata.mongo import MongoMetadataStore
from tornado_files.metadata.mongo_intents import MongoIntentJournal
from tornado_files.metadata.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteMetadataStore
from tornado_files.metadata.sqlite_intents import SqliteIntentJournal
from tornado_files.models import BlobRef, FileRecord, Intent
from tornado_files.mongo import database_of, make_client

T0 = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)


def key(n: int) -> str:
    return f"{n:032x}"


def record(n: int, storage: str = "disk", blob: int | None = None) -> FileRecord:
    return FileRecord(id=key(n), filename="f", original_filename="f", size=1,
                      mime_type="text/plain", declared_type="text/plain", type_os="text",
                      sha256="0" * 64, route="/api/files", storage=storage,
                      blob_key=key(n if blob is None else blob), added=T0, modified=T0)


class SqliteRows:
    def __init__(self, path: Path) -> None:
        self.path = path

    def intents(self) -> list[tuple[str, str]]:
        with closing(sqlite3.connect(self.path)) as db:
            return sorted(db.execute("SELECT store, key FROM intents").fetchall())


class MongoDocuments:
    def __init__(self, uri: str) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(uri)
        self.db = self.client.get_default_database()

    def intents(self) -> list[tuple[str, str]]:
        return sorted((d["store"], d["key"]) for d in self.db["intents"].find())


@pytest.fixture(params=["sqlite", "mongo"])
def stores(request, tmp_path, offload, io_loop):
    """(metadata store, intent journal, probe of the real rows or documents)."""
    if request.param == "sqlite":
        path = tmp_path / "meta.sqlite3"
        metadata = SqliteMetadataStore(path, offload)
        journal: Any = SqliteIntentJournal(metadata)
        io_loop.run_sync(metadata.startup)
        io_loop.run_sync(journal.startup)
        yield metadata, journal, SqliteRows(path)
        io_loop.run_sync(metadata.close)
        return
    uri = request.getfixturevalue("standin").uri(fresh_database())
    client = make_client(uri)
    mongo = MongoMetadataStore(database_of(client))
    journal = MongoIntentJournal(database_of(client))
    io_loop.run_sync(mongo.startup)
    io_loop.run_sync(journal.startup)
    probe = MongoDocuments(uri)
    yield mongo, journal, probe
    probe.client.drop_database(probe.db)
    probe.client.close()
    io_loop.run_sync(client.close)


@pytest.mark.gen_test
async def test_add_is_idempotent_and_keeps_the_first_created(stores):
    _, journal, probe = stores
    await journal.add_intent(key(1), "disk", T0)
    await journal.add_intent(key(1), "disk", T0 + timedelta(hours=5))  # again: kept as it was
    await journal.add_intent(key(1), "gridfs", T0 + timedelta(seconds=1))  # another store
    assert probe.intents() == [("disk", key(1)), ("gridfs", key(1))]
    assert await journal.old_intents(T0 + timedelta(days=1), 10) == [
        Intent(key(1), "disk", T0), Intent(key(1), "gridfs", T0 + timedelta(seconds=1))]


@pytest.mark.gen_test
async def test_clear_is_idempotent_and_only_takes_its_store(stores):
    _, journal, probe = stores
    for n in range(1, 6):
        await journal.add_intent(key(n), "disk", T0)
    await journal.add_intent(key(2), "gridfs", T0)
    await journal.clear_intents("disk", [key(2), key(4), key(99)])  # 99 was never added
    assert probe.intents() == [("disk", key(1)), ("disk", key(3)), ("disk", key(5)),
                               ("gridfs", key(2))]
    await journal.clear_intents("disk", [key(2), key(4)])  # again: nothing to do, no error
    await journal.clear_intents("disk", [])
    assert len(probe.intents()) == 4


@pytest.mark.gen_test(timeout=120)  # the MongoDB stand-in takes its time over 1200 inserts
async def test_clear_takes_more_keys_than_one_statement_holds(stores):
    _, journal, probe = stores
    keys = [key(n) for n in range(1200)]  # SQLite: past 999 parameters
    for k in keys:
        await journal.add_intent(k, "disk", T0)
    await journal.clear_intents("disk", keys[:1100])
    assert probe.intents() == [("disk", k) for k in keys[1100:]]


@pytest.mark.gen_test
async def test_old_intents_pages_oldest_first_before_a_moment(stores):
    _, journal, _ = stores
    # Ties on created are ordered by store, then key; the microseconds count.
    planted = [Intent(key(n), store, T0 + timedelta(microseconds=n // 3))
               for n in range(20) for store in ("gridfs", "disk")]
    for intent in planted:
        await journal.add_intent(intent.key, intent.store, intent.created)
    await journal.add_intent(key(500), "disk", T0 + timedelta(hours=1))  # too young
    before = T0 + timedelta(minutes=1)
    wanted = sorted(planted, key=lambda i: (i.created, i.store, i.key))
    seen: list[Intent] = []
    after = None
    while page := await journal.old_intents(before, 7, after):
        assert len(page) <= 7
        seen += page
        after = page[-1]
    assert seen == wanted
    assert await journal.old_intents(T0, 10) == []  # strictly before
    assert await journal.old_intents(before, 0) == []
    assert await journal.old_intents(before, 3, wanted[-1]) == []
    # Whatever is cleared meanwhile simply is not there on the next page.
    await journal.clear_intents("disk", [key(n) for n in range(20)])
    assert await journal.old_intents(before, 100, wanted[3]) == [
        i for i in wanted[4:] if i.store == "gridfs"]


@pytest.mark.gen_test
async def test_lookups_by_blob(stores):
    metadata, _, _ = stores
    records = [record(n) for n in range(1, 12)] + [record(20, "gridfs", blob=3)]
    await metadata.insert_many(records)
    assert await metadata.has_blob("disk", key(3))
    assert await metadata.has_blob("gridfs", key(3))
    assert not await metadata.has_blob("gridfs", key(4))
    assert not await metadata.has_blob("disk", key(99))
    asked = [key(n) for n in (2, 4, 40, 11, 99)]
    assert await metadata.referenced_blobs("disk", asked) == {key(2), key(4), key(11)}
    assert await metadata.referenced_blobs("gridfs", asked) == set()
    assert await metadata.referenced_blobs("disk", []) == set()
    many = [key(n) for n in range(1, 1200)]  # SQLite: past 999 parameters
    assert await metadata.referenced_blobs("disk", many) == {key(n) for n in range(1, 12)}


@pytest.mark.gen_test
async def test_blob_refs_page_walks_one_store_in_id_order(stores):
    metadata, _, _ = stores
    disk = [record(n) for n in range(1, 12)]
    await metadata.insert_many([*disk, record(5000, "gridfs"), replace(record(13), blob_key="x")])
    seen: list[BlobRef] = []
    after = None
    while page := await metadata.blob_refs_page("disk", after, 4):
        assert len(page) <= 4
        seen += page
        after = page[-1].file_id
    assert seen == [BlobRef(r.id, r.blob_key) for r in [*disk, replace(record(13), blob_key="x")]]
    assert await metadata.blob_refs_page("gridfs", None, 10) == [BlobRef(key(5000), key(5000))]
    assert await metadata.blob_refs_page("disk", key(11), 10) == [BlobRef(key(13), "x")]
    assert await metadata.blob_refs_page("disk", None, 0) == []


@pytest.mark.gen_test
async def test_sqlite_schema_2_is_migrated_with_its_records(tmp_path, offload):
    path = tmp_path / "meta.sqlite3"
    with closing(sqlite3.connect(path)) as db:  # a database as version 2 left it
        db.executescript(f"{MIGRATIONS[1]}; {MIGRATIONS[2]}; PRAGMA user_version = 2;")
    metadata = SqliteMetadataStore(path, offload)
    await metadata.startup()
    await metadata.insert_many([record(1)])
    journal = SqliteIntentJournal(metadata)
    await journal.add_intent(key(2), "disk", T0)
    assert await journal.old_intents(T0 + timedelta(seconds=1), 5) == [Intent(key(2), "disk", T0)]
    assert await metadata.get(key(1)) == record(1)
    await metadata.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        indexes = {row[1] for row in db.execute("PRAGMA index_list(intents)")}
        assert "intents_created" in indexes
        uploads = {row[1] for row in db.execute("PRAGMA table_info(uploads)")}
        assert "sha256" in uploads  # version 4: recorded tus completions
