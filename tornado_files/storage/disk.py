"""Blobs on local disk: temp file inside the data directory → fsync → atomic rename.

Layout: ``root/blobs/ab/cd/<key>`` for committed blobs and ``root/tmp/<key>.<rand>.part``
while writing; both on the same file system, so ``os.replace`` is atomic. Keys are generated
by the server (32 lowercase hex); the client never names a path. Every blocking call goes
through ``Offload`` so the event loop never waits on the disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from collections.abc import Set as AbstractSet
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import BinaryIO

from tornado_files.blocking import Lane, Offload
from tornado_files.errors import BackendUnavailable, BlobNotFound, InsufficientStorage
from tornado_files.models import StoredBlob

log = logging.getLogger("tornado_files.storage.disk")
_KEY = re.compile(r"^[0-9a-f]{32}$")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# Start the kernel's writeback of each this many bytes while the upload still streams.
WRITEBACK_EVERY = 8 * 1024 * 1024


def _translate(exc: OSError, what: str) -> Exception:
    """Driver errors stop here: the client learns the kind, the log keeps the detail."""
    log.error("disk store: %s failed: %s", what, exc)
    if exc.errno in _NO_SPACE:
        return InsufficientStorage()
    return BackendUnavailable()


class DiskBlobWriter:
    """Appends run on a :class:`Lane`, so the event loop parses the next chunk while this one
    reaches the page cache; ``write`` waits only when the lane's window is full."""

    def __init__(self, store: DiskBlobStore, key: str, temp: Path, handle: BinaryIO,
                 lane: Lane) -> None:
        self.key = key
        self._store = store
        self._temp = temp
        self._handle: BinaryIO | None = handle
        self._lane = lane
        self._size = 0
        self._committed = False
        self._flushed_to = 0  # bytes handed to the kernel's writeback so far

    async def write(self, chunk: bytes) -> None:
        handle = self._handle
        if handle is None:
            raise RuntimeError("write after commit or abort")
        try:
            await self._lane.put(partial(self._append, handle, chunk), len(chunk))
        except OSError as exc:
            await self.abort()
            raise _translate(exc, "write") from None
        self._size += len(chunk)

    def _append(self, handle: BinaryIO, chunk: bytes) -> None:
        """On the lane's thread: write, and start writeback of every full window behind us so
        the fsync at commit finds little left to do (what nginx never waits for at all)."""
        handle.write(chunk)
        written = handle.tell()
        if written - self._flushed_to >= WRITEBACK_EVERY:
            handle.flush()
            self._store.writeback(handle.fileno(), self._flushed_to, written - self._flushed_to)
            self._flushed_to = written

    async def commit(self) -> StoredBlob:
        if self._committed:
            return StoredBlob(self.key, self._size)
        handle = self._handle
        if handle is None:
            raise RuntimeError("commit after abort")
        try:
            await self._lane.drain()
            await self._store.offload(self._store._publish, handle, self._temp, self.key)
        except OSError as exc:
            await self.abort()
            raise _translate(exc, "commit") from None
        self._handle = None
        self._committed = True
        return StoredBlob(self.key, self._size)

    async def abort(self) -> None:
        if self._committed:
            return
        await self._lane.stop()  # no append may run on a closed or unlinked file
        handle, self._handle = self._handle, None
        await self._store.offload(_discard, handle, self._temp)


def _discard(handle: BinaryIO | None, temp: Path) -> None:
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


class DiskBlobReader:
    def __init__(self, store: DiskBlobStore, handle: BinaryIO, size: int) -> None:
        self._store = store
        self._handle: BinaryIO | None = handle
        self.size = size

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        handle = self._handle
        if handle is None:
            raise RuntimeError("reader is closed")
        position = start
        await self._store.offload(handle.seek, start)
        while position < end:
            want = min(self._store.read_chunk, end - position)
            chunk = await self._store.offload(handle.read, want)
            if not chunk:
                break  # the file shrank under us: stop rather than loop
            position += len(chunk)
            yield chunk

    async def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            await self._store.offload(handle.close)


class DiskBlobStore:
    """Implements ``BlobStore`` on a directory."""

    def __init__(self, root: Path, offload: Offload, name: str = "disk",
                 read_chunk: int = 1024 * 1024, stale_after: float = 0.0,
                 writeback: Callable[[int, int, int], None] | None = None) -> None:
        """``stale_after``: seconds a temp file must be untouched before start-up removes it
        (another process sharing the directory may be writing the fresh ones).
        ``writeback(fd, offset, length)`` starts writing a range to disk without waiting
        (default: Linux's ``sync_file_range``, a no-op where there is none)."""
        self.writeback = writeback or start_writeback_function()
        self.name = name
        self.stale_after = stale_after
        self.root = root
        self.offload = offload
        self.read_chunk = read_chunk
        self._blobs = root / "blobs"
        self._tmp = root / "tmp"

    def path_of(self, key: str) -> Path:
        if not _KEY.match(key):
            raise BlobNotFound()
        return self._blobs / key[:2] / key[2:4] / key

    async def open_writer(self, key: str) -> DiskBlobWriter:
        if not _KEY.match(key):
            raise ValueError("blob keys are 32 lowercase hex characters")
        temp = self._tmp / f"{key}.{secrets.token_hex(4)}.part"
        try:
            handle = await self.offload(_open_exclusive, temp)
        except OSError as exc:
            raise _translate(exc, "create") from None
        return DiskBlobWriter(self, key, temp, handle, self.offload.lane())

    def _publish(self, handle: BinaryIO, temp: Path, key: str) -> None:
        """Runs in the pool: the bytes reach the disk before the name appears."""
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        final = self.path_of(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        _fsync_dir(final.parent)

    async def open_reader(self, key: str) -> DiskBlobReader:
        path = self.path_of(key)
        try:
            handle = await self.offload(path.open, "rb")
        except FileNotFoundError:
            raise BlobNotFound() from None
        except OSError as exc:
            raise _translate(exc, "open") from None
        size = os.fstat(handle.fileno()).st_size
        return DiskBlobReader(self, handle, size)

    async def delete(self, key: str) -> None:
        try:
            path = self.path_of(key)
        except BlobNotFound:
            return
        try:
            await self.offload(path.unlink)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _translate(exc, "delete") from None

    async def exists(self, key: str) -> bool:
        try:
            path = self.path_of(key)
        except BlobNotFound:
            return False
        return await self.offload(path.is_file)

    async def ping(self) -> None:
        ok = await self.offload(os.access, self._tmp, os.W_OK | os.X_OK)
        if not ok:
            log.error("disk store: %s is not writable", self._tmp)
            raise BackendUnavailable()

    async def startup(self) -> None:
        removed = await self.offload(self._prepare)
        if removed:
            log.warning("disk store: removed %d stale temp file(s) of an earlier crash", removed)

    def _prepare(self) -> int:
        # Runs before our port opens, so none of *our* uploads is in flight; a live upload of
        # another process sharing the directory keeps its temp file fresh, so age decides.
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        limit = time.time() - self.stale_after
        removed = 0
        for stale in self._tmp.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if stale.stat().st_mtime <= limit:
                    stale.unlink()
                    removed += 1
        return removed

    async def close(self) -> None:
        return None

    # -- sweeping -----------------------------------------------------------------------
    async def committed_keys(self, before: datetime) -> list[str]:
        """Keys of committed blobs last changed before ``before``."""
        return await self.offload(self._old_files, self._blobs, "*/*/*", before)

    async def sweep_incomplete(self, before: datetime, keep: AbstractSet[str] = frozenset()) -> int:
        """Remove temp files untouched since ``before`` (a writer that died without abort).
        A live upload's temp file is written to all the time, so it is never this old."""
        stale = await self.offload(self._old_files, self._tmp, "*.part", before)
        for name in stale:
            await self.offload((self._tmp / name).unlink, missing_ok=True)
        return len(stale)

    @staticmethod
    def _old_files(folder: Path, pattern: str, before: datetime) -> list[str]:
        limit = before.timestamp()
        found = []
        for path in folder.glob(pattern):
            try:
                if path.stat().st_mtime < limit and path.is_file():
                    found.append(path.name)
            except FileNotFoundError:
                continue
        return found


def start_writeback_function() -> Callable[[int, int, int], None]:
    """``sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)``: queue the range for
    writeback and return (the same early flushing RocksDB's ``bytes_per_sync`` does). The
    ``os`` module has no binding for it, so it comes from libc; elsewhere it does nothing and
    the fsync at commit does all the work."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        sync_file_range = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda _fd, _offset, _length: None
    sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    sync_file_range.restype = ctypes.c_int

    def writeback(fd: int, offset: int, length: int) -> None:
        # A refusal only means the fsync at commit does this work: never an upload error.
        sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)

    return writeback


_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>


def _open_exclusive(path: Path) -> BinaryIO:
    return path.open("xb")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
