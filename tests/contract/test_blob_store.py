"""The BlobStore contract, run against every backend's real resource (fsspec's habit).

Today that is the disk store, checked against the files it leaves in its directory; a GridFS
store joins the ``store`` parameter list and must pass the same tests."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest

from tornado_files.errors import BackendUnavailable, BlobNotFound, InsufficientStorage
from tornado_files.storage.disk import DiskBlobStore

MIB = 1024 * 1024


class DiskProbe:
    """What the disk backend really holds."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def committed(self) -> set[str]:
        return {p.name for p in (self.root / "blobs").rglob("*") if p.is_file()}

    def in_progress(self) -> list[Path]:
        return list((self.root / "tmp").iterdir())


@pytest.fixture(params=["disk"])
def backend(request, tmp_path, offload, io_loop):
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
    await writer.write(b"partial" * 1000)
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
    store, _ = backend
    content = os.urandom(2 * MIB + 333)
    key = await write_blob(store, [content])
    cases = [(0, 1), (0, len(content)), (MIB - 1, MIB + 1), (len(content) - 1, len(content)),
             (123_456, 654_321), (5, 5)]
    for start, end in cases:
        reader = await store.open_reader(key)
        reader._handle = spy = Spy(reader._handle)
        assert await collect(reader.iter_range(start, end)) == content[start:end]
        # It seeks: never reads the bytes before start, nor past end.
        assert spy.bytes_read == end - start
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
async def test_startup_removes_stale_temp_files(backend):
    store, probe = backend
    writer = await store.open_writer(uuid4().hex)
    await writer.write(b"crash in the middle")
    assert len(probe.in_progress()) == 1
    await store.startup()  # as after a crash: nothing is in flight before the port opens
    assert probe.in_progress() == []
    await writer.abort()  # releases the handle; the file is already gone


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_disk_full_is_insufficient_storage_and_leaves_nothing(backend):
    store, probe = backend
    writer = await store.open_writer(uuid4().hex)
    writer._handle = Spy(writer._handle, fail_writes=True)
    with pytest.raises(InsufficientStorage):
        await writer.write(b"x" * 100)
    await writer.abort()
    assert probe.in_progress() == []
    assert probe.committed() == set()


@pytest.mark.gen_test
@pytest.mark.allow_error_logs
async def test_ping(backend):
    store, probe = backend
    await store.ping()
    (probe.root / "tmp").rmdir()
    with pytest.raises(BackendUnavailable):
        await store.ping()
