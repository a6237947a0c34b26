"""Resumable (tus) partial blobs on disk: ``root/partial/<key>.part``, appended in place.

Partials live apart from ``tmp/`` (which start-up empties): they must survive restarts, and
any server process sharing the data directory continues them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import BinaryIO

from tornado_files.blocking import Lane
from tornado_files.errors import BlobNotFound
from tornado_files.models import StoredBlob
from tornado_files.storage.disk import DiskBlobStore, _fsync_dir, _translate


class DiskPartialWriter:
    """Appends run on a :class:`Lane`, as POST uploads do: the loop reads the next chunk of the
    PATCH while this one reaches the page cache. ``settle`` waits for every queued append
    (their errors surface there at the latest), then fsyncs."""

    def __init__(self, store: DiskBlobStore, handle: BinaryIO, lane: Lane) -> None:
        self._store = store
        self._handle: BinaryIO | None = handle
        self._lane = lane

    async def write(self, chunk: bytes) -> None:
        handle = self._require()
        try:
            await self._lane.put(partial(handle.write, chunk), len(chunk))
        except OSError as exc:
            raise _translate(exc, "append") from None

    async def settle(self) -> int:
        handle = self._require()
        try:
            await self._lane.drain()
        except OSError as exc:
            raise _translate(exc, "append") from None
        try:
            return await self._store.offload(_sync, handle)
        except OSError as exc:
            raise _translate(exc, "sync") from None

    async def close(self) -> None:
        handle, self._handle = self._handle, None
        await self._lane.stop()  # no append may run on a closed file
        if handle is not None:
            await self._store.offload(handle.close)

    def _require(self) -> BinaryIO:
        if self._handle is None:
            raise RuntimeError("partial writer is closed")
        return self._handle


def _sync(handle: BinaryIO) -> int:
    handle.flush()
    os.fsync(handle.fileno())
    return handle.tell()


def _reopen(path: Path, offset: int) -> BinaryIO:
    handle = open(path, "r+b")  # noqa: SIM115 — owned by the writer, closed by close()
    handle.truncate(offset)  # bytes past the durable offset belong to a PATCH that died
    handle.seek(offset)
    return handle


class DiskPartials:
    """Implements ``ResumableBlobStore`` beside a ``DiskBlobStore`` (same root, same pool)."""

    def __init__(self, store: DiskBlobStore) -> None:
        self.store = store
        self.folder = store.root / "partial"

    def _path(self, key: str) -> Path:
        self.store.path_of(key)  # validates the key
        return self.folder / f"{key}.part"

    async def create_partial(self, key: str) -> None:
        path = self._path(key)
        try:
            await self.store.offload(self._create, path)
        except OSError as exc:
            raise _translate(exc, "create partial") from None

    def _create(self, path: Path) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(path, "xb"):
            pass

    async def resume(self, key: str, offset: int) -> DiskPartialWriter:
        try:
            handle = await self.store.offload(_reopen, self._path(key), offset)
        except FileNotFoundError:
            raise BlobNotFound() from None
        except OSError as exc:
            raise _translate(exc, "resume") from None
        return DiskPartialWriter(self.store, handle, self.store.offload.lane())

    async def read_partial(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            handle = await self.store.offload(open, self._path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound() from None
        try:
            await self.store.offload(handle.seek, start)
            position = start
            while position < end:
                chunk = await self.store.offload(
                    handle.read, min(self.store.read_chunk, end - position))
                if not chunk:
                    break
                position += len(chunk)
                yield chunk
        finally:
            await self.store.offload(handle.close)

    async def finalize(self, key: str, length: int) -> StoredBlob:
        try:
            await self.store.offload(self._publish, key)
        except OSError as exc:
            raise _translate(exc, "finalize") from None
        return StoredBlob(key, length)

    def _publish(self, key: str) -> None:
        final = self.store.path_of(key)
        partial = self._path(key)
        if not os.path.exists(partial) and final.exists():
            return  # finalized before (a crash between this and the record): idempotent
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, final)
        _fsync_dir(final.parent)

    async def discard(self, key: str) -> None:
        try:
            path = self._path(key)
        except BlobNotFound:
            return
        await self.store.offload(path.unlink, missing_ok=True)
