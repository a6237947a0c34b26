"""The PartialBlobStore and SweepableStore capabilities, run against every backend's real
resource: the partial's file in the data directory, its ``fs.chunks`` documents in the
MongoDB stand-in (or a real server)."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from bson import ObjectId

from tests.contract.stores import GRIDFS_CHUNK, collect, write_blob
from tornado_files.errors import BackendUnavailable, BlobNotFound, InternalError
from tornado_files.models import StoredBlob, utcnow
from tornado_files.storage.base import (
    BlobStore,
    PartialBlobStore,
    SweepableStore,
    partial_store,
    sweepable_store,
)

HOUR = timedelta(hours=1)


async def append(store: Any, key: str, offset: int, data: bytes, piece: int = 64_000) -> int:
    """One PATCH: resume at ``offset``, write ``data`` in pieces, settle, close."""
    writer = await store.resume(key, offset)
    for start in range(0, len(data), piece):
        await writer.write(data[start:start + piece])
    durable = await writer.settle()
    await writer.close()
    return int(durable)


async def new_partial(store: Any, data: bytes) -> str:
    key = uuid4().hex
    await store.create_partial(key)
    assert await append(store, key, 0, data) == len(data)
    return key


async def read_all(store: Any, key: str) -> bytes:
    reader = await store.open_reader(key)
    try:
        return await collect(reader.iter_range(0, reader.size))
    finally:
        await reader.close()


def test_each_backend_is_one_object_with_its_capabilities(partial_backend):
    store, _probe = partial_backend
    assert isinstance(store, PartialBlobStore)
    assert isinstance(store, SweepableStore)
    assert partial_store(store) is store
    assert sweepable_store(store) is store

    class CoreOnly:
        name = "core"

    core: BlobStore = CoreOnly()  # type: ignore[assignment]
    with pytest.raises(InternalError, match="no partial blobs"):
        partial_store(core)
    with pytest.raises(InternalError, match="cannot be swept"):
        sweepable_store(core)


@pytest.mark.gen_test
async def test_resume_drops_the_bytes_past_the_offset(partial_backend):
    store, probe = partial_backend
    data = os.urandom(250_000)
    key = await new_partial(store, data)
    assert probe.partial(key) == data
    writer = await store.resume(key, 130_000)  # a PATCH died after writing past 130_000
    assert probe.partial(key) == data[:130_000]  # gone before a byte is written
    more = os.urandom(70_000)
    await writer.write(more)
    assert await writer.settle() == 200_000
    await writer.close()
    assert probe.partial(key) == data[:130_000] + more
    assert await store.finalize(key, 200_000) == StoredBlob(key, 200_000)
    assert await read_all(store, key) == data[:130_000] + more


@pytest.mark.gen_test
async def test_a_writer_goes_on_after_settle(partial_backend):
    """A long PATCH makes what arrived durable now and then (a checkpoint) and writes on with
    the same writer: each settle counts everything written, and a crash after one (the
    writer never closed) keeps exactly that much."""
    store, probe = partial_backend
    data = os.urandom(3 * GRIDFS_CHUNK + 12_345)
    key = await new_partial(store, b"")
    writer = await store.resume(key, 0)
    settled = []
    for start in range(0, len(data), 70_001):  # never on a chunk edge
        await writer.write(data[start:start + 70_001])
        settled.append(await writer.settle())
        assert probe.partial(key) == data[:settled[-1]]
    assert settled == [min(s + 70_001, len(data)) for s in range(0, len(data), 70_001)]
    await writer.close()
    resumed = await store.resume(key, 140_002)  # a crash after the second settle
    await resumed.write(data[140_002:])
    assert await resumed.settle() == len(data)
    await resumed.close()
    assert await store.finalize(key, len(data)) == StoredBlob(key, len(data))
    assert await read_all(store, key) == data


@pytest.mark.gen_test
async def test_gridfs_short_tail_is_stored_then_completed_by_the_next_write(gridfs):
    store, probe = gridfs
    data = os.urandom(3 * GRIDFS_CHUNK + 1)
    key = await new_partial(store, data[:150_000])
    assert probe.chunk_sizes(key) == [GRIDFS_CHUNK, 50_000]  # the short tail is durable
    assert await append(store, key, 150_000, data[150_000:270_000]) == 270_000
    assert probe.chunk_sizes(key) == [GRIDFS_CHUNK, GRIDFS_CHUNK, 70_000]
    assert await append(store, key, 270_000, data[270_000:300_000]) == 300_000
    assert probe.chunk_sizes(key) == [GRIDFS_CHUNK] * 3
    assert await append(store, key, 300_000, data[300_000:]) == len(data)
    assert probe.chunk_sizes(key) == [GRIDFS_CHUNK] * 3 + [1]  # every chunk but the last full
    assert probe.partial(key) == data
    await store.finalize(key, len(data))
    files_doc = probe.files.find_one({"_id": key})
    assert (files_doc["length"], files_doc["chunkSize"]) == (len(data), GRIDFS_CHUNK)


@pytest.mark.gen_test
async def test_finalize_is_idempotent(partial_backend):
    store, probe = partial_backend
    data = os.urandom(250_000)
    key = await new_partial(store, data)
    assert await store.finalize(key, len(data)) == StoredBlob(key, len(data))
    assert await store.finalize(key, len(data)) == StoredBlob(key, len(data))
    assert probe.committed() == {key}
    assert await read_all(store, key) == data
    if probe.kind == "disk":
        assert probe.partial(key) is None


@pytest.mark.gen_test
async def test_racing_finalizers_both_see_the_final_blob(partial_backend):
    store, probe = partial_backend
    for size in (0, 1, 250_000, 2 * GRIDFS_CHUNK):
        data = os.urandom(size)
        key = await new_partial(store, data)
        results = await asyncio.gather(store.finalize(key, size), store.finalize(key, size))
        assert results == [StoredBlob(key, size)] * 2
        assert await read_all(store, key) == data
    assert len(probe.committed()) == 4


@pytest.mark.gen_test
async def test_finalize_checks_the_stored_length(partial_backend):
    store, probe = partial_backend
    data = os.urandom(150_000)
    key = await new_partial(store, data)
    for wrong in (0, len(data) - 1, len(data) + 1, 2 * GRIDFS_CHUNK):
        with pytest.raises(InternalError):
            await store.finalize(key, wrong)
    assert probe.committed() == set()  # nothing was published
    assert probe.partial(key) == data
    await store.finalize(key, len(data))
    with pytest.raises(InternalError):
        await store.finalize(key, len(data) - 1)  # the final blob is checked too
    with pytest.raises(BlobNotFound):
        await store.finalize(uuid4().hex, 10)


@pytest.mark.gen_test
async def test_discard_partial_is_idempotent_and_never_touches_a_final_blob(partial_backend):
    store, probe = partial_backend
    await store.discard_partial(uuid4().hex)  # missing: success
    key = await new_partial(store, os.urandom(250_000))
    await store.discard_partial(key)
    await store.discard_partial(key)
    assert probe.traces(key) == []
    data = os.urandom(250_000)
    final = await new_partial(store, data)
    await store.finalize(final, len(data))
    await store.discard_partial(final)  # a terminate racing the completion
    assert await read_all(store, final) == data


@pytest.mark.gen_test
async def test_resume_of_a_missing_partial(partial_backend):
    store, probe = partial_backend
    key = uuid4().hex  # the upload state was recorded, then the process died
    assert await append(store, key, 0, b"abc") == 3
    assert probe.partial(key) == b"abc"
    for offset in (1, GRIDFS_CHUNK, 2 * GRIDFS_CHUNK + 5):
        with pytest.raises(BlobNotFound):
            await store.resume(uuid4().hex, offset)
    data = os.urandom(150_000)
    short = await new_partial(store, data)
    for offset in (150_001, 2 * GRIDFS_CHUNK, 2 * GRIDFS_CHUNK + 5):
        with pytest.raises(BlobNotFound):
            await store.resume(short, offset)  # fewer bytes stored than the offset says
    assert probe.partial(short) == data  # and nothing was padded or cut


@pytest.mark.gen_test
async def test_partial_reader_reads_ranges_of_the_first_length_bytes(partial_backend):
    store, _probe = partial_backend
    data = os.urandom(350_000)
    key = await new_partial(store, data)
    reader = await store.open_partial_reader(key, 300_000)
    assert reader.size == 300_000
    for start, end in ((0, 300_000), (123_456, 234_567), (99_999, 100_001), (7, 7)):
        assert await collect(reader.iter_range(start, end)) == data[start:end]
    await reader.close()
    await reader.close()


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_lost_bytes_are_backend_unavailable_for_partial_and_committed_reads(
        partial_backend, caplog):
    store, probe = partial_backend
    data = os.urandom(350_000)
    partial = await new_partial(store, data)
    committed = await write_blob(store, [data])
    readers = [await store.open_partial_reader(partial, len(data)),
               await store.open_reader(committed)]
    probe.damage(partial)  # GridFS: chunk 1 gone; disk: the file cut in half
    probe.damage(committed)
    for reader in readers:
        caplog.clear()
        with caplog.at_level(logging.ERROR), pytest.raises(BackendUnavailable):
            await collect(reader.iter_range(0, len(data)))
        assert [r.name for r in caplog.records if r.levelno >= logging.ERROR]
        await reader.close()


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_partial_reader_past_the_stored_bytes_is_backend_unavailable(partial_backend):
    store, _probe = partial_backend
    key = await new_partial(store, os.urandom(1000))
    reader = await store.open_partial_reader(key, 2000)
    with pytest.raises(BackendUnavailable):
        await collect(reader.iter_range(0, 2000))
    await reader.close()


@pytest.mark.gen_test
async def test_remove_traces_removes_quiet_keys_and_leaves_fresh_ones(partial_backend):
    store, probe = partial_backend
    committed = await write_blob(store, [os.urandom(250_000)])
    writer = await store.open_writer(writing := uuid4().hex)  # a writer still streaming
    # Enough for GridFS to flush chunks, and for S3 to hold a part (on moto only a part
    # carries a true time: it dates every upload's initiation 2010-11-10).
    for _ in range(max(8, probe.flush_bytes // (128 * 1024) + 1)):
        await writer.write(os.urandom(128 * 1024))
    partial = await new_partial(store, os.urandom(250_000))
    # GCS lists no unfinished resumable session: no store can find (or remove) one by its
    # key; the session is no object, and Google drops it after a week.
    sessions_found = getattr(probe, "lists_unfinished", True)
    keys = (committed, writing, partial) if sessions_found else (committed, partial)
    before = {key: probe.traces(key) for key in keys}
    assert all(before.values())
    an_hour_ago = utcnow() - HOUR
    for key in keys:
        assert await store.remove_traces(key, an_hour_ago) is False  # changed since
    assert {key: probe.traces(key) for key in keys} == before
    soon = utcnow() + timedelta(seconds=5)
    for key in keys:
        assert await store.remove_traces(key, soon) is True
        assert probe.traces(key) == []
        assert await store.remove_traces(key, soon) is True  # nothing left: idempotent
    assert not await store.exists(committed)
    assert await store.remove_traces(uuid4().hex, soon) is True
    assert await store.remove_traces("../" + committed, soon) is True
    await writer.abort()  # a late abort after the removal is harmless
    assert probe.committed() == set()
    assert probe.in_progress() == []


def age(path: Any, by: timedelta) -> None:
    moment = (utcnow() - by).timestamp()
    os.utime(path, (moment, moment))


@pytest.mark.gen_test
async def test_disk_remove_traces_takes_blob_temp_and_partial_unless_one_is_fresh(disk):
    store, probe = disk
    key = await write_blob(store, [b"committed"])
    writer = await store.open_writer(key)  # tmp/<key>.part: a name known from the key
    await writer.write(b"writing")
    await store.create_partial(key)
    assert await append(store, key, 0, b"partial") == 7
    assert len(probe.traces(key)) == 3
    for rel in probe.traces(key)[:2]:
        age(probe.root / rel, 2 * HOUR)
    assert await store.remove_traces(key, utcnow() - HOUR) is False  # the partial is fresh
    assert len(probe.traces(key)) == 3
    age(probe.root / probe.traces(key)[2], 2 * HOUR)
    assert await store.remove_traces(key, utcnow() - HOUR) is True
    assert probe.traces(key) == []
    await writer.abort()


_seconds = iter(range(1, 10_000))


def old_id(when: Any) -> ObjectId:
    """A chunk _id from the past (a driver stamps its clock into each ObjectId); unique."""
    return ObjectId.from_datetime(when - timedelta(seconds=next(_seconds)))


@pytest.mark.gen_test
async def test_gridfs_remove_traces_goes_by_the_newest_chunk_and_the_upload_date(gridfs):
    store, probe = gridfs
    old, fresh = utcnow() - 2 * HOUR, utcnow()
    dead, live, old_file, new_file = (uuid4().hex for _ in range(4))
    for n in range(3):
        probe.chunks.insert_one({"_id": old_id(old), "files_id": dead, "n": n, "data": b"x"})
    probe.chunks.insert_one({"_id": old_id(old), "files_id": live, "n": 0, "data": b"x"})
    probe.chunks.insert_one({"_id": ObjectId(), "files_id": live, "n": 1, "data": b"x"})
    for key, when in ((old_file, old), (new_file, fresh)):
        probe.files.insert_one({"_id": key, "length": 1, "chunkSize": GRIDFS_CHUNK,
                                "uploadDate": when, "filename": key})
        probe.chunks.insert_one({"_id": old_id(old), "files_id": key, "n": 0, "data": b"x"})
    quiet_before = utcnow() - HOUR
    assert await store.remove_traces(dead, quiet_before) is True
    assert await store.remove_traces(live, quiet_before) is False
    assert await store.remove_traces(old_file, quiet_before) is True
    assert await store.remove_traces(new_file, quiet_before) is False
    assert probe.traces(dead) == probe.traces(old_file) == []
    assert len(probe.traces(live)) == 2
    assert len(probe.traces(new_file)) == 2


@pytest.mark.gen_test
async def test_list_keys_pages_committed_keys_in_order(partial_backend):
    store, probe = partial_backend
    # Ten keys share a fan-out folder (disk: blobs/ab/cd/), fifteen land anywhere.
    shared = ["abcd" + uuid4().hex[4:] for _ in range(10)]
    keys = sorted([await write_blob(store, [b"x"], key) for key in shared] +
                  [await write_blob(store, [b"x"]) for _ in range(15)])
    await new_partial(store, b"partial")  # not committed: never listed
    writer = await store.open_writer(uuid4().hex)
    await writer.write(b"writing")
    probe.add_foreign()
    listed: list[str] = []
    after = None
    while page := await store.list_keys(after, 4):
        assert len(page) <= 4
        listed += page
        after = page[-1]
    assert listed == keys
    assert await store.list_keys(keys[10], 3) == keys[11:14]
    assert await store.list_keys(keys[-1], 10) == []
    middle = "8" * 32  # not a stored key: listing starts after where it would sort
    assert await store.list_keys(middle, 100) == [k for k in keys if k > middle]
    assert await store.list_keys(None, 0) == []
    await writer.abort()
