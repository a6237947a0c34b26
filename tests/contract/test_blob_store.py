"""The BlobStore contract, run against every backend's real resource (fsspec's habit):
the disk store checked against the files in its directory, the GridFS store against the
``fs.files`` / ``fs.chunks`` documents in the MongoDB stand-in (or a real server)."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from pymongo import MongoClient

from tests.mongo_support import fresh_database
from tornado_files.errors import BackendUnavailable, BlobNotFound, InsufficientStorage
from tornado_files.models import utcnow
from tornado_files.mongo import database_of, make_client
from tornado_files.storage.disk import DiskBlobStore
from tornado_files.storage.gridfs import GridFSBlobStore

MIB = 1024 * 1024
GRIDFS_CHUNK = 100_000  # odd on purpose: ranges cross chunk edges at unaligned offsets


class DiskProbe:
    """What the disk backend really holds."""

    read_slack = 0  # a disk read seeks to the exact byte

    def __init__(self, root: Path) -> None:
        self.root = root

    def committed(self) -> set[str]:
        return {p.name for p in (self.root / "blobs").rglob("*") if p.is_file()}

    def in_progress(self) -> list[str]:
        return [p.name for p in (self.root / "tmp").iterdir()]

    def spy_reads(self, reader: Any) -> Callable[[], int]:
        reader._handle = spy = Spy(reader._handle)
        return lambda: spy.bytes_read


class GridFSProbe:
    """What the GridFS backend really holds, read with the synchronous driver."""

    read_slack = 2 * GRIDFS_CHUNK  # whole chunks: at most the two partial edge chunks extra

    def __init__(self, uri: str) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(uri)
        db = self.client.get_default_database()
        self.files, self.chunks = db["fs.files"], db["fs.chunks"]

    def committed(self) -> set[str]:
        return {str(d["_id"]) for d in self.files.find({}, {"_id": 1})}

    def in_progress(self) -> list[str]:
        complete = {d["_id"] for d in self.files.find({}, {"_id": 1})}
        return [str(o) for o in self.chunks.distinct("files_id") if o not in complete]

    def spy_reads(self, reader: Any) -> Callable[[], int]:
        counter = ChunkCounter(reader._store)
        reader._store = counter
        return lambda: counter.bytes_read


class ChunkCounter:
    """Stands in for the store a GridFS reader queries; counts the chunk bytes it fetches."""

    def __init__(self, store: GridFSBlobStore) -> None:
        self.bytes_read = 0
        outer = self

        class Chunks:
            def find(self, *args: Any, **kwargs: Any) -> Any:
                return Cursor(store.chunks.find(*args, **kwargs))

        class Cursor:
            def __init__(self, inner: Any) -> None:
                self.inner = inner

            def sort(self, *args: Any) -> Cursor:
                self.inner = self.inner.sort(*args)
                return self

            async def __aiter__(self) -> AsyncIterator[Any]:
                async for doc in self.inner:
                    outer.bytes_read += len(doc["data"])
                    yield doc

        self.chunks = Chunks()


@pytest.fixture(params=["disk", "gridfs"])
def backend(request, tmp_path, offload, io_loop):
    if request.param == "disk":
        store = DiskBlobStore(tmp_path / "store", offload, read_chunk=256 * 1024)
        io_loop.run_sync(store.startup)
        yield store, DiskProbe(tmp_path / "store")
        return
    uri = request.getfixturevalue("standin").uri(fresh_database())
    client = make_client(uri)
    store = GridFSBlobStore(database_of(client), chunk_size=GRIDFS_CHUNK)
    io_loop.run_sync(store.startup)
    probe = GridFSProbe(uri)
    yield store, probe
    probe.client.drop_database(probe.client.get_default_database())
    probe.client.close()
    io_loop.run_sync(client.close)


@pytest.fixture
def disk(tmp_path, offload, io_loop):
    """The disk store alone, for what only a file system can do (fill up, lose a folder)."""
    store = DiskBlobStore(tmp_path / "store", offload, read_chunk=256 * 1024)
    io_loop.run_sync(store.startup)
    return store, DiskProbe(tmp_path / "store")


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def write_blob(store, pieces: list[bytes]) -> str:
    key = uuid4().hex
    writer = await store.open_writer(key)
    for piece in pieces:
        await writer.write(piece)
    blob = await writer.commit()
    assert blob.key == key
    assert blob.size == sum(map(len, pieces))
    return key


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


@pytest.mark.gen_test
async def test_nothing_visible_before_commit_and_abort_removes_everything(backend):
    store, probe = backend
    key = uuid4().hex
    writer = await store.open_writer(key)
    for _ in range(8):
        await writer.write(os.urandom(128 * 1024))  # enough for GridFS to flush chunks
    assert not await store.exists(key)
    with pytest.raises(BlobNotFound):
        await store.open_reader(key)
    assert len(probe.in_progress()) == 1
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


class Spy:
    """Wraps a file object: counts the bytes read, or fails writes like a full disk."""

    def __init__(self, inner, fail_writes: bool = False) -> None:
        self.inner = inner
        self.fail_writes = fail_writes
        self.bytes_read = 0

    def read(self, n: int) -> bytes:
        data = self.inner.read(n)
        self.bytes_read += len(data)
        return data

    def write(self, data: bytes) -> int:
        if self.fail_writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.inner.write(data)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


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
async def test_sweep_removes_only_quiet_leftovers_and_lists_old_blobs(backend):
    store, probe = backend
    kept = await write_blob(store, [b"committed"])
    dead = await store.open_writer(uuid4().hex)  # a writer whose process died mid-upload
    for _ in range(8):
        await dead.write(os.urandom(128 * 1024))
    assert len(probe.in_progress()) == 1
    an_hour_ago = utcnow() - timedelta(hours=1)
    assert await store.sweep_incomplete(an_hour_ago) == 0  # still fresh: untouched
    assert await store.committed_keys(an_hour_ago) == []
    soon = utcnow() + timedelta(seconds=5)
    assert await store.sweep_incomplete(soon) > 0
    assert probe.in_progress() == []
    assert await store.committed_keys(soon) == [kept]
    assert probe.committed() == {kept}
    await dead.abort()  # a late abort after the sweep is harmless


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
