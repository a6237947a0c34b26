"""The BlobStore contract, run against every backend's real resource (fsspec's habit):
the disk store checked against the files in its directory, the GridFS store against the
``fs.files`` / ``fs.chunks`` documents in the MongoDB stand-in (or a real server)."""

from __future__ import annotations

import os
from uuid import uuid4

import pytest

from tests.contract.stores import MIB, Spy, collect, write_blob
from tornado_files.errors import BackendUnavailable, BlobNotFound, InsufficientStorage
from tornado_files.models import StoredBlob


@pytest.mark.gen_test
@pytest.mark.parametrize("pieces", [[], [b"x"], [os.urandom(3 * MIB + 5)],
                                    [os.urandom(n) for n in (1, 65535, 7, 1 << 20, 3)]])
async def test_roundtrip(backend, pieces):
    store, probe = backend
    key = await write_blob(store, pieces)
    reader = await store.open_reader(key)
    content = b"".join(pieces)
    assert reader.size == len(content)
    assert await collect(reader.iter_range(0, reader.size)) == content
    await reader.close()
    assert probe.committed() == {key}
    assert probe.in_progress() == []
    assert await store.exists(key)
    assert not await store.exists(uuid4().hex)
    assert not await store.exists("../" + key)


@pytest.mark.gen_test
async def test_nothing_visible_before_commit_and_abort_removes_everything(backend):
    store, probe = backend
    key = uuid4().hex
    writer = await store.open_writer(key)
    for _ in range(max(8, probe.flush_bytes // (128 * 1024))):
        await writer.write(os.urandom(128 * 1024))  # enough for GridFS / Azure to store some
    assert not await store.exists(key)
    with pytest.raises(BlobNotFound):
        await store.open_reader(key)
    assert probe.in_progress() == [key]  # disk: tmp/<key>.part, a name sweeping can find
    await writer.abort()
    await writer.abort()  # idempotent
    assert probe.in_progress() == []
    assert probe.committed() == set()


@pytest.mark.gen_test
async def test_abort_after_commit_keeps_the_blob(backend):
    store, probe = backend
    writer = await store.open_writer(key := uuid4().hex)
    await writer.write(b"kept")
    await writer.commit()
    await writer.abort()
    assert probe.committed() == {key}


@pytest.mark.gen_test
async def test_ranges_read_only_what_they_need(backend):
    store, probe = backend
    content = os.urandom(2 * MIB + 333)
    key = await write_blob(store, [content])
    cases = [(0, 1), (0, len(content)), (MIB - 1, MIB + 1), (len(content) - 1, len(content)),
             (123_456, 654_321), (5, 5)]
    for start, end in cases:
        reader = await store.open_reader(key)
        bytes_read = probe.spy_reads(reader)
        assert await collect(reader.iter_range(start, end)) == content[start:end]
        # It seeks: never reads the bytes before start, nor (much) past end.
        assert end - start <= bytes_read() <= end - start + probe.read_slack
        await reader.close()


@pytest.mark.gen_test
async def test_delete_is_idempotent_and_unknown_keys_are_not_found(backend):
    store, probe = backend
    key = await write_blob(store, [b"bye"])
    await store.delete(key)
    await store.delete(key)
    assert probe.committed() == set()
    for bad in (key, "../../etc/passwd", "A" * 32, ""):
        with pytest.raises(BlobNotFound):
            await store.open_reader(bad)
        await store.delete(bad)
    with pytest.raises(ValueError, match="32 lowercase hex"):
        await store.open_writer("../escape")


@pytest.mark.gen_test
async def test_startup_removes_stale_temp_files(disk):
    store, probe = disk
    writer = await store.open_writer(uuid4().hex)
    await writer.write(b"crash in the middle")
    assert len(probe.in_progress()) == 1
    await store.startup()  # as after a crash: nothing is in flight before the port opens
    assert probe.in_progress() == []
    await writer.abort()  # releases the handle; the file is already gone


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_disk_full_is_insufficient_storage_and_leaves_nothing(disk):
    store, probe = disk
    writer = await store.open_writer(uuid4().hex)
    writer._handle = Spy(writer._handle, fail_writes=True)

    async def write_and_commit() -> None:
        # Appends are pipelined: the write's error may surface on commit, never later.
        await writer.write(b"x" * 100)
        await writer.commit()

    with pytest.raises(InsufficientStorage):
        await write_and_commit()
    await writer.abort()
    assert probe.in_progress() == []
    assert probe.committed() == set()


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_ping(disk):
    store, probe = disk
    await store.ping()
    (probe.root / "tmp").rmdir()
    with pytest.raises(BackendUnavailable):
        await store.ping()


@pytest.mark.gen_test
@pytest.mark.parametrize("outcome", ["commit", "abort"])
async def test_end_releases_what_the_writer_holds_and_it_stays_committable(backend, outcome):
    """``end``: no more writes; every byte is in the store and nothing is held (disk: the file
    is closed, so a request of many parts holds one descriptor at a time; GridFS: the pending
    chunks, the last short one included, are written), but nothing is visible before commit."""
    store, probe = backend
    content = os.urandom(MIB + 12345)  # several GridFS chunks and a short last one
    writer = await store.open_writer(key := uuid4().hex)
    await writer.write(content[:MIB])
    await writer.write(content[MIB:])
    assert probe.held(key) <= 1
    await writer.end()
    await writer.end()  # idempotent
    assert probe.held(key) == 0
    # GCS keeps its last < 256 KiB: a resumable session's last chunk finalizes the object.
    kept = getattr(probe, "end_keeps", 0)
    assert len(content) - kept <= probe.stored_bytes(key) <= len(content)
    assert not await store.exists(key)
    with pytest.raises(RuntimeError):
        await writer.write(b"late")
    if outcome == "abort":
        await writer.abort()
        assert probe.in_progress() == []
        assert probe.committed() == set()
        return
    assert await writer.commit() == StoredBlob(key, len(content))
    reader = await store.open_reader(key)
    assert await collect(reader.iter_range(0, reader.size)) == content
    await reader.close()
    assert probe.in_progress() == []
