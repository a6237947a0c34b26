"""The orphan sweeper on both configurations: orphans planted straight into the real
resources (files on disk, GridFS documents, records), some older than the grace period, one
of each kind fresh; exactly the old ones go."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from bson import Binary, ObjectId

from tornado_files.app import build_sweeper
from tornado_files.models import FileRecord, ListQuery, utcnow

HOUR = timedelta(hours=1)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"sweep_grace": 3600}


def record(blob_key: str, storage: str, age: timedelta) -> FileRecord:
    when = utcnow() - age
    return FileRecord(id=uuid4().hex, filename="f", original_filename="f", size=1,
                      mime_type="text/plain", declared_type="text/plain", type_os="text",
                      sha256="0" * 64, route="/api/files", storage=storage,
                      blob_key=blob_key, added=when, modified=when)


async def committed(services: Any, storage: str) -> str:
    key = uuid4().hex
    writer = await services.blob_store(storage).open_writer(key)
    await writer.write(b"x")
    await writer.commit()
    return key


_seconds = iter(range(1, 10_000))


def old_id(when: Any) -> ObjectId:
    """A chunk _id from the past (a driver stamps its clock into each ObjectId); each unique."""
    return ObjectId.from_datetime(when - timedelta(seconds=next(_seconds)))


def age_disk_file(path: Any, age: timedelta) -> None:
    moment = (utcnow() - age).timestamp()
    os.utime(path, (moment, moment))


@pytest.mark.gen_test
async def test_sweeper_on_disk(services, data_dir, stack):
    store = services.blob_store("disk")
    healthy, orphan, fresh_orphan = [await committed(services, "disk") for _ in range(3)]
    age_disk_file(store.path_of(healthy), 2 * HOUR)
    age_disk_file(store.path_of(orphan), 2 * HOUR)
    kept_record = record(healthy, "disk", 2 * HOUR)
    blobless_old = record(uuid4().hex, "disk", 2 * HOUR)
    blobless_fresh = record(uuid4().hex, "disk", timedelta(minutes=1))
    await services.metadata.insert_many([kept_record, blobless_old, blobless_fresh])
    stale_temp = data_dir / "tmp" / f"{uuid4().hex}.dead.part"
    live_temp = data_dir / "tmp" / f"{uuid4().hex}.live.part"
    stale_temp.write_bytes(b"x")
    live_temp.write_bytes(b"x")
    age_disk_file(stale_temp, 2 * HOUR)

    report = await build_sweeper(services).sweep_once()

    assert (report.incomplete, report.blobs, report.records) == (1, 1, 1)
    assert not stale_temp.exists()
    assert live_temp.exists()
    assert {p.name for p in (data_dir / "blobs").rglob("*") if p.is_file()} == \
        {healthy, fresh_orphan}
    assert await services.metadata.get(kept_record.id) == kept_record
    assert await services.metadata.get(blobless_fresh.id) == blobless_fresh
    assert {r.id for r in (await services.metadata.list(ListQuery(limit=1000))).records} == \
        {kept_record.id, blobless_fresh.id}


@pytest.mark.gen_test
@pytest.mark.parametrize("stack", ["mongo"])  # GridFS exists only with MongoDB
async def test_sweeper_on_gridfs(services, stack):
    store = services.blob_store("gridfs")
    files, chunks = store.files, store.chunks
    old, fresh = utcnow() - 2 * HOUR, utcnow()
    healthy = await committed(services, "gridfs")
    await files.update_one({"_id": healthy}, {"$set": {"uploadDate": old}})
    kept_record = record(healthy, "gridfs", 2 * HOUR)
    # A files document (with its chunk) that no record points at: old, and fresh.
    for key, when in ((uuid4().hex, old), (uuid4().hex, fresh)):
        await files.insert_one({"_id": key, "length": 1, "chunkSize": 255 * 1024,
                                "uploadDate": when, "filename": key})
        await chunks.insert_one({"_id": old_id(when), "files_id": key, "n": 0,
                                 "data": Binary(b"x")})
    # Chunks of uploads that died before their files document: old, and still being written.
    dead, live = uuid4().hex, uuid4().hex
    for n in range(3):
        await chunks.insert_one({"_id": old_id(old), "files_id": dead, "n": n,
                                 "data": Binary(b"x")})
    await chunks.insert_one({"_id": old_id(old), "files_id": live, "n": 0,
                             "data": Binary(b"x")})
    await chunks.insert_one({"_id": ObjectId(), "files_id": live, "n": 1, "data": Binary(b"x")})
    blobless_old = record(uuid4().hex, "gridfs", 2 * HOUR)
    blobless_fresh = record(uuid4().hex, "gridfs", timedelta(minutes=1))
    await services.metadata.insert_many([kept_record, blobless_old, blobless_fresh])

    report = await build_sweeper(services).sweep_once()

    assert (report.incomplete, report.blobs, report.records) == (3, 1, 1)
    remaining_files = {d["_id"] async for d in files.find({}, {"_id": 1})}
    assert len(remaining_files) == 2
    assert healthy in remaining_files
    owners = set(await chunks.distinct("files_id"))
    assert dead not in owners
    assert live in owners
    assert await chunks.count_documents({"files_id": live}) == 2
    assert {r.id for r in (await services.metadata.list(ListQuery(limit=1000))).records} == \
        {kept_record.id, blobless_fresh.id}
