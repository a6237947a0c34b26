"""The disk store's moving parts: writers, the ranged reader, the one publish routine.

Everything here that touches the file system runs on the application's pool (``Offload``)
or on a writer's :class:`Lane`, never on the event loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import BinaryIO

from tornado_files.blocking import Lane, Offload
from tornado_files.errors import BackendUnavailable, BlobNotFound, InsufficientStorage
from tornado_files.models import StoredBlob

log = logging.getLogger("tornado_files.storage.disk")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# Start the kernel's writeback of each this many bytes while the upload still streams.
WRITEBACK_EVERY = 8 * 1024 * 1024
Writeback = Callable[[int, int, int], None]
# A writer asks for the free space once per this many bytes (a statvfs per chunk would be
# waste); so it passes the floor by at most this much before it stops.
FLOOR_CHECK_EVERY = 4 * 1024 * 1024


def translate(exc: OSError, what: str) -> Exception:
    """Driver errors stop here: the client learns the kind, the log keeps the detail."""
    log.error("disk store: %s failed: %s", what, exc)
    if exc.errno in _NO_SPACE:
        return InsufficientStorage()
    return BackendUnavailable()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(source: Path, final: Path, handle: BinaryIO | None = None) -> None:
    """The one way a blob becomes visible (writer commit and partial finalize): the bytes
    reach the disk before the name appears, and the name survives a crash. ``handle`` is the
    writer's open file, else ``source`` is opened here. Blocking: run it on the pool.
    Raises ``FileNotFoundError`` when ``source`` is gone (another finalizer won)."""
    if handle is None:
        handle = source.open("rb")
    with handle:
        handle.flush()
        os.fsync(handle.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, final)
    fsync_dir(final.parent)


class Floor:
    """The free space the data directory's file system keeps (``min_free_space``; 0: none).
    Below it uploads stop with ENOSPC, as on a full disk, but SQLite still has room to write,
    so a DELETE can free space. Blocking: call it on the pool or a writer's lane."""

    def __init__(self, root: Path, minimum: int) -> None:
        self.root = root
        self.minimum = minimum

    def free(self) -> int:
        found = os.statvfs(self.root)
        return found.f_bavail * found.f_frsize

    def below(self) -> bool:
        return self.minimum > 0 and self.free() < self.minimum

    def check(self) -> None:
        """Raises ENOSPC below the floor, so the writers' disk-full path handles it."""
        if self.below():
            raise OSError(errno.ENOSPC, f"below min_free_space ({self.minimum} bytes) "
                                        f"under {self.root}")


class _FloorWatch:
    """A writer's running count: checks the floor before each ``FLOOR_CHECK_EVERY`` bytes.
    Used on the writer's lane only."""

    def __init__(self, floor: Floor) -> None:
        self._floor = floor
        self._unchecked = 0

    def before_write(self, size: int) -> None:
        self._unchecked += size
        if self._unchecked >= FLOOR_CHECK_EVERY:
            self._unchecked = 0
            self._floor.check()


class DiskBlobWriter:
    """Appends run on a :class:`Lane`, so the event loop parses the next chunk while this one
    reaches the page cache; ``write`` waits only when the lane's window is full."""

    def __init__(self, key: str, temp: Path, final: Path, handle: BinaryIO, lane: Lane,
                 offload: Offload, writeback: Writeback, floor: Floor) -> None:
        self.key = key
        self._watch = _FloorWatch(floor)
        self._temp = temp
        self._final = final
        self._handle: BinaryIO | None = handle
        self._lane = lane
        self._offload = offload
        self._writeback = writeback
        self._size = 0
        self._committed = False
        self._ended = False
        self._aborted = False
        self._flushed_to = 0  # bytes handed to the kernel's writeback so far

    async def write(self, chunk: bytes) -> None:
        handle = self._handle
        if handle is None:
            raise RuntimeError("write after commit or abort")
        try:
            await self._lane.put(partial(self._append, handle, chunk), len(chunk))
        except OSError as exc:
            await self.abort()
            raise translate(exc, "write") from None
        self._size += len(chunk)

    def _append(self, handle: BinaryIO, chunk: bytes) -> None:
        """On the lane's thread: write, and start writeback of every full window behind us so
        the fsync at commit finds little left to do (what nginx never waits for at all)."""
        self._watch.before_write(len(chunk))
        handle.write(chunk)
        written = handle.tell()
        if written - self._flushed_to >= WRITEBACK_EVERY:
            handle.flush()
            self._writeback(handle.fileno(), self._flushed_to, written - self._flushed_to)
            self._flushed_to = written

    async def end(self) -> None:
        """No more bytes: flush, fsync and close the file now, so a request of many parts
        holds one descriptor at a time (issue 13). Durable here, visible only at commit —
        the rename stays the single step that publishes, so all-or-nothing is unchanged —
        and a write error of this part surfaces at its end, before the next part streams."""
        if self._ended or self._committed:
            return
        handle = self._handle
        if handle is None:
            raise RuntimeError("end after abort")
        try:
            await self._lane.drain()
            await self._offload(_seal, handle)
        except OSError as exc:
            await self.abort()
            raise translate(exc, "end") from None
        self._handle = None
        self._ended = True

    async def commit(self) -> StoredBlob:
        if self._committed:
            return StoredBlob(self.key, self._size)
        handle = self._handle
        if self._aborted:
            raise RuntimeError("commit after abort")
        try:
            if handle is not None:
                await self._lane.drain()
            # After ``end`` the file is closed: publish reopens it for the (now cheap) fsync.
            await self._offload(publish, self._temp, self._final, handle)
        except OSError as exc:
            await self.abort()
            raise translate(exc, "commit") from None
        self._handle = None
        self._committed = True
        return StoredBlob(self.key, self._size)

    async def abort(self) -> None:
        if self._committed or self._aborted:
            return
        self._aborted = True
        await self._lane.stop()  # no append may run on a closed or unlinked file
        handle, self._handle = self._handle, None
        await self._offload(_discard, handle, self._temp)


def _seal(handle: BinaryIO) -> None:
    with handle:
        handle.flush()
        os.fsync(handle.fileno())


def _discard(handle: BinaryIO | None, temp: Path) -> None:
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


class DiskBlobReader:
    """The one ranged reader, for committed blobs and for a partial's first bytes."""

    def __init__(self, handle: BinaryIO, size: int, offload: Offload, read_chunk: int,
                 name: str) -> None:
        self._handle: BinaryIO | None = handle
        self.size = size
        self._offload = offload
        self._read_chunk = read_chunk
        self._name = name  # for the log

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        handle = self._handle
        if handle is None:
            raise RuntimeError("reader is closed")
        position = start
        try:
            await self._offload(handle.seek, start)
            while position < end:
                chunk = await self._offload(handle.read, min(self._read_chunk, end - position))
                if not chunk:
                    # Shorter than its size: bytes were lost under us. Never a silent short
                    # body (a download would end "complete" with bytes missing).
                    log.error("disk store: %s ends at %d, expected %d bytes",
                              self._name, position, self.size)
                    raise BackendUnavailable()
                position += len(chunk)
                yield chunk
        except OSError as exc:
            raise translate(exc, "read") from None

    async def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            await self._offload(handle.close)


async def open_reader(path: Path, size: int | None, offload: Offload, read_chunk: int
                      ) -> DiskBlobReader:
    """A reader of ``path``: its ``size`` bytes, or the whole file when None. Raises
    ``BlobNotFound`` when the file is missing."""
    try:
        handle = await offload(path.open, "rb")
    except FileNotFoundError:
        raise BlobNotFound() from None
    except OSError as exc:
        raise translate(exc, "open") from None
    if size is None:
        size = os.fstat(handle.fileno()).st_size
    return DiskBlobReader(handle, size, offload, read_chunk, path.name)


class DiskPartialWriter:
    """Appends run on a :class:`Lane`, as POST uploads do: the loop reads the next chunk of the
    PATCH while this one reaches the page cache. ``settle`` waits for every queued append
    (their errors surface there at the latest), then fsyncs. ``close`` cuts the file back to
    what was settled: bytes of a refused chunk (disk full, below the floor) are not kept
    holding space until the next resume."""

    def __init__(self, handle: BinaryIO, lane: Lane, offload: Offload, floor: Floor) -> None:
        self._handle: BinaryIO | None = handle
        self._lane = lane
        self._offload = offload
        self._watch = _FloorWatch(floor)
        self._settled = handle.tell()

    async def write(self, chunk: bytes) -> None:
        handle = self._require()
        try:
            await self._lane.put(partial(self._append, handle, chunk), len(chunk))
        except OSError as exc:
            raise translate(exc, "append") from None

    def _append(self, handle: BinaryIO, chunk: bytes) -> None:
        self._watch.before_write(len(chunk))
        handle.write(chunk)

    async def settle(self) -> int:
        handle = self._require()
        try:
            await self._lane.drain()
        except OSError as exc:
            raise translate(exc, "append") from None
        try:
            self._settled = await self._offload(_sync, handle)
        except OSError as exc:
            raise translate(exc, "sync") from None
        return self._settled

    async def close(self) -> None:
        handle, self._handle = self._handle, None
        await self._lane.stop()  # no append may run on a closed file
        if handle is not None:
            await self._offload(_cut_and_close, handle, self._settled)

    def _require(self) -> BinaryIO:
        if self._handle is None:
            raise RuntimeError("partial writer is closed")
        return self._handle


def _cut_and_close(handle: BinaryIO, length: int) -> None:
    """Blocking: drop what is past ``length`` (never synced, so never counted), then close."""
    try:
        handle.truncate(length)
    except OSError as exc:
        log.warning("disk store: could not cut a partial back to %d bytes: %s", length, exc)
    finally:
        handle.close()


def _sync(handle: BinaryIO) -> int:
    handle.flush()
    os.fsync(handle.fileno())
    return handle.tell()


def reopen_partial(path: Path, offset: int) -> BinaryIO:
    """Blocking: the partial opened for appending at ``offset``, with the bytes past it (a
    PATCH that died before its offset was recorded) cut off. At offset 0 a missing partial
    is created; otherwise a missing or short one raises ``BlobNotFound``."""
    flags = os.O_RDWR | (os.O_CREAT if offset == 0 else 0)
    try:
        fd = os.open(path, flags, 0o666)
    except FileNotFoundError:
        if offset:
            raise BlobNotFound() from None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o666)
    handle = os.fdopen(fd, "r+b")
    try:
        if os.fstat(handle.fileno()).st_size < offset:
            raise BlobNotFound()  # never pad with zeros what was lost
        handle.truncate(offset)
        handle.seek(offset)
    except BaseException:
        handle.close()
        raise
    return handle


def start_writeback_function() -> Writeback:
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
