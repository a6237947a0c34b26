"""The sweeper on every configuration (disk + SQLite, GridFS + MongoDB, disk + MongoDB), against
the real resources: blobs, temp files and chunk documents planted through the stores and aged
in place, intents and records in the real metadata store, and what remains read back from the
files, documents and rows themselves."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from bson import ObjectId

from tests.contract.stores import DiskProbe, GridFSProbe
from tornado_files.app import build_sweeper
from tornado_files.config import Config
from tornado_files.models import FileRecord, UploadState, utcnow
from tornado_files.services import Services
from tornado_files.sweeper import Sweeper, SweepReport

HOUR = timedelta(hours=1)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"sweep_grace": 3600}


@pytest.fixture
def storage(stack: str) -> str:
    """The blob store under test: GridFS on the "mongo" stack, else the disk."""
    return "gridfs" if stack == "mongo" else "disk"


class Probe:
    """What the real resources hold: the blob store's files or documents and the journal's
    rows or documents — read without the stores under test."""

    def __init__(self, config: Config, storage: str) -> None:
        self.config = config
        self.blobs: Any = (GridFSProbe(config.mongodb_uri) if storage == "gridfs"
                           else DiskProbe(config.data_dir))

    def traces(self, key: str) -> list[str]:
        return list(self.blobs.traces(key))

    def intents(self) -> set[str]:
        if self.config.mongodb_uri:
            db = GridFSProbe(self.config.mongodb_uri)
            try:
                return {d["key"] for d in db.client.get_default_database()["intents"].find()}
            finally:
                db.client.close()
        with closing(sqlite3.connect(self.config.data_dir / "metadata.sqlite3")) as db:
            return {row[0] for row in db.execute("SELECT key FROM intents")}

    def close(self) -> None:
        if isinstance(self.blobs, GridFSProbe):
            self.blobs.client.close()


@pytest.fixture
def probe(config: Config, storage: str, services: Services) -> Iterator[Probe]:
    found = Probe(config, storage)
    yield found
    found.close()


def record(key: str, storage: str) -> FileRecord:
    when = utcnow() - 2 * HOUR
    return FileRecord(id=uuid4().hex, filename="f", original_filename="f", size=1,
                      mime_type="text/plain", declared_type="text/plain", type_os="text",
                      sha256="0" * 64, route="/api/files", storage=storage,
                      blob_key=key, added=when, modified=when)


def old_id(when: Any) -> ObjectId:
    """A chunk _id from ``when`` (a driver stamps its clock into each ObjectId); unique."""
    return ObjectId(int(when.timestamp()).to_bytes(4, "big") + os.urandom(8))


async def age(services: Services, storage: str, key: str, by: timedelta) -> None:
    """Make everything stored under ``key`` look written ``by`` ago, in place."""
    store: Any = services.blob_store(storage)
    when = utcnow() - by
    if storage == "disk":
        for path in (store.path_of(key), store.temp_path(key), store.partial_path(key)):
            if path.exists():
                os.utime(path, (when.timestamp(), when.timestamp()))
        return
    await store.files.update_many({"_id": key}, {"$set": {"uploadDate": when}})
    chunks = [doc async for doc in store.chunks.find({"files_id": key})]
    await store.chunks.delete_many({"files_id": key})
    for doc in chunks:
        await store.chunks.insert_one({**doc, "_id": old_id(when)})


async def committed(services: Services, storage: str, by: timedelta = 2 * HOUR) -> str:
    """A committed blob, written ``by`` ago."""
    key = uuid4().hex
    writer = await services.blob_store(storage).open_writer(key)
    await writer.write(b"x")
    await writer.commit()
    await age(services, storage, key, by)
    return key


async def leftover(services: Services, storage: str, by: timedelta = 2 * HOUR) -> str:
    """What a writer whose process died leaves, last written ``by`` ago: a temp file, or
    chunks without a files document (planted directly: a live writer's pipelined writes
    could touch it after it was aged)."""
    key = uuid4().hex
    store: Any = services.blob_store(storage)
    when = utcnow() - by
    if storage == "disk":
        path = store.temp_path(key)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (when.timestamp(), when.timestamp()))
    else:
        for n in range(3):
            await store.chunks.insert_one({"_id": old_id(when), "files_id": key, "n": n,
                                           "data": b"x"})
    return key


async def writing(services: Services, storage: str) -> tuple[str, Any]:
    """A writer mid-upload: bytes stored, no commit (enough for GridFS to flush chunks)."""
    key = uuid4().hex
    writer = await services.blob_store(storage).open_writer(key)
    for _ in range(8):
        await writer.write(os.urandom(128 * 1024))
    return key, writer


@pytest.mark.gen_test(timeout=30)
async def test_one_pass_settles_the_old_intents_and_nothing_else(services, storage, probe):
    intents = services.intents
    two_hours_ago = utcnow() - 2 * HOUR
    orphan = await committed(services, storage)  # its record never went in
    recorded = await committed(services, storage)
    await services.metadata.insert_many([record(recorded, storage)])
    young = await committed(services, storage)  # an intent younger than the grace period
    unjournaled = await committed(services, storage)  # no intent: fsck's business
    dead = await leftover(services, storage)  # its process died mid-upload
    live, live_writer = await writing(services, storage)  # began long ago, still writing
    for key in (orphan, recorded, dead, live):
        await intents.add_intent(key, storage, two_hours_ago)
    await intents.add_intent(young, storage, utcnow() - timedelta(minutes=10))
    assert all(probe.traces(k) for k in (orphan, recorded, young, unjournaled, dead, live))

    report = await build_sweeper(services).sweep_once()

    assert report == SweepReport(expired=0, removed=2, recorded=1, writing=1, failed=0)
    assert probe.traces(orphan) == probe.traces(dead) == []
    assert all(probe.traces(k) for k in (recorded, young, unjournaled, live))
    assert probe.intents() == {young, live}
    await live_writer.commit()  # the slow upload finishes after all
    await services.metadata.insert_many([record(live, storage)])
    later = await build_sweeper(services, clock=lambda: utcnow() + 2 * HOUR).sweep_once()
    assert (later.removed, later.recorded) == (1, 1)  # the young orphan, the finished upload
    assert probe.traces(young) == []
    assert probe.intents() == set()
    assert probe.traces(live) != []
    assert probe.traces(unjournaled) != []


@pytest.mark.gen_test(timeout=60)
async def test_more_intents_than_a_page_are_all_settled_in_one_pass(services, storage, probe):
    intents = services.intents
    start = utcnow() - 3 * HOUR
    live, live_writer = await writing(services, storage)  # the oldest: first on the first page
    await intents.add_intent(live, storage, start)
    orphans = [await committed(services, storage) for _ in range(10)]
    kept = [await committed(services, storage) for _ in range(4)]
    await services.metadata.insert_many([record(k, storage) for k in kept])
    for n, key in enumerate(orphans + kept):
        await intents.add_intent(key, storage, start + timedelta(seconds=n + 1))
    sweeper = Sweeper(services.intents, services.metadata, services.blob_stores, 3600,
                      page_size=3)

    report = await sweeper.sweep_once()

    assert (report.removed, report.recorded, report.writing) == (10, 4, 1)
    assert all(probe.traces(k) == [] for k in orphans)
    assert all(probe.traces(k) for k in [*kept, live])
    assert probe.intents() == {live}
    await live_writer.abort()


@pytest.mark.gen_test(timeout=30)
async def test_a_finalized_tus_blob_whose_record_never_went_in_goes_after_expiry(
        services, storage, probe):
    partials: Any = services.partial_store(storage)
    now = utcnow()

    async def finished_but_unrecorded() -> str:
        """A tus upload whose completion died after finalize, before (or after) the insert."""
        key = uuid4().hex
        await partials.create_partial(key)
        writer = await partials.resume(key, 0)
        await writer.write(b"abc")
        await writer.settle()
        await writer.close()
        await partials.finalize(key, 3)
        await services.uploads.create_upload(UploadState(
            id=key, route="/api/files", storage=storage, length=3, offset=3, created=now - HOUR,
            expires=now - timedelta(minutes=1), original_filename="f", declared_type="x/y"))
        return key

    unrecorded, recorded = await finished_but_unrecorded(), await finished_but_unrecorded()
    await services.metadata.insert_many([record(recorded, storage)])

    report = await build_sweeper(services).sweep_once()

    assert report.expired == 2
    assert probe.intents() == {unrecorded, recorded}  # each finalized blob is journaled
    assert probe.traces(unrecorded) != []
    assert probe.traces(recorded) != []
    later = await build_sweeper(services, clock=lambda: utcnow() + 2 * HOUR).sweep_once()
    assert (later.expired, later.removed, later.recorded) == (0, 1, 1)
    assert probe.traces(unrecorded) == []
    assert probe.traces(recorded) != []
    assert probe.intents() == set()


def test_the_whole_store_methods_are_gone(services):
    """The sweep cannot list a store or load every key: those methods no longer exist."""
    for store in services.blob_stores.values():
        for name in ("committed_keys", "sweep_incomplete"):
            assert not hasattr(store, name), name
    for name in ("blob_keys", "blob_refs"):
        assert not hasattr(services.metadata, name), name
    assert not hasattr(services.uploads, "upload_ids")
