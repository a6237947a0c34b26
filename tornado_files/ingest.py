"""One file's bytes on their way to storage — the same path for multipart, raw and tus.

For every chunk, in this order: count it against the file's limit → hold it back until the
first ``sniff_bytes`` are in and libmagic has named the type (a disallowed type is refused
before one byte is written; a leading ID3v2 tag is written on and the window follows it,
``sniff_window``) → hash it (sha256 of the file, and the digest of a tus
``Upload-Checksum``) on a lane of the thread pool, while the event loop reads on → write it
(awaited: a slow store slows the client). ``build_record`` turns what an ingest established
into the file record, for every protocol.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tornado_files.blocking import Lane
from tornado_files.media.kinds import media_kind
from tornado_files.models import FileRecord, StoredBlob, utcnow
from tornado_files.names import safe_filename
from tornado_files.sniff import Sniffed, Sniffer
from tornado_files.sniff_window import SniffWindow

# Below this, hashing inline (when nothing is queued) is cheaper than a hop to the pool.
INLINE_HASH_BYTES = 16 * 1024


class ByteSink(Protocol):
    async def write(self, chunk: bytes) -> None:
        """Store ``chunk`` after the ones before it (a BlobWriter or a PartialWriter)."""


@dataclass(frozen=True)
class FileFacts:
    """What the server established about a whole file's content."""

    size: int
    sha256: str
    sniffed: Sniffed


@dataclass(frozen=True)
class FileOrigin:
    """What the client said about a file, and where it was sent."""

    id: str
    original_filename: str
    declared_type: str
    route: str
    storage: str
    owner: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def build_record(origin: FileOrigin, facts: FileFacts, blob: StoredBlob, *,
                 derive: bool = True) -> FileRecord:
    """The file record of an upload, whichever protocol brought it. With ``derive`` (the
    route's ``derivatives``) a media type gets a media job: ``processing`` "pending"."""
    now = utcnow()
    mime_type = facts.sniffed.mime_type
    processing = "pending" if derive and media_kind(mime_type) is not None else "none"
    return FileRecord(
        id=origin.id, filename=safe_filename(origin.original_filename),
        original_filename=origin.original_filename, size=facts.size,
        mime_type=facts.sniffed.mime_type, declared_type=origin.declared_type,
        type_os=facts.sniffed.type_os, sha256=facts.sha256, route=origin.route,
        storage=origin.storage, blob_key=blob.key, added=now, modified=now,
        owner=origin.owner, data=origin.data, processing=processing)


class FileIngest:
    """Call ``feed`` for each chunk, then ``finish`` once — or ``abort`` at any point.

    ``start`` bytes of the file were stored before (a tus upload's offset); ``window`` holds
    what of them libmagic needs (``SniffWindow``), when the type is not known yet;
    ``sniffed`` when it is. ``hasher`` is the running sha256 of the file's first ``start``
    bytes, or None when this process does not have it (the caller re-reads the file
    instead). ``limit`` is the file's size cap: passing it raises ``over_limit(bytes fed)``.
    ``check_type`` raises for a disallowed type (``UnsupportedMediaType``).
    ``count_stored`` is told the size of every chunk written (``tornado_files_upload_bytes``)."""

    def __init__(self, *, sink: ByteSink, sniffer: Sniffer, lane: Lane, sniff_bytes: int,
                 check_type: Callable[[str], None], limit: int,
                 over_limit: Callable[[int], Exception], start: int = 0,
                 window: SniffWindow | None = None,
                 sniffed: Sniffed | None = None, hasher: Any | None = None,
                 digest: Any | None = None,
                 count_stored: Callable[[int], None] = lambda _size: None) -> None:
        self._sink = sink
        self._sniffer = sniffer
        self._lane = lane
        self._check_type = check_type
        self._limit = limit
        self._over_limit = over_limit
        self._start = start
        self.sniffed = sniffed
        self._window = None if sniffed else (window or SniffWindow(sniff_bytes))
        self._hasher = hasher
        self._digest = digest
        self._count_stored = count_stored
        self._held: deque[tuple[int, bytes]] = deque()  # (end offset, chunk) awaiting the type
        self.size = 0  # bytes fed

    async def feed(self, chunk: bytes) -> None:
        offset = self._start + self.size
        self.size += len(chunk)
        if offset + len(chunk) > self._limit:
            raise self._over_limit(self.size)
        await self._hash(chunk)
        if self._window is None:
            await self._write(chunk)
            return
        self._window.take(offset, chunk)
        self._held.append((offset + len(chunk), chunk))
        if self._window.complete():
            await self._sniff()
            await self._release()
        else:
            await self._release(before=self._window.hold_from())

    async def finish(self, *, whole: bool) -> Sniffed | None:
        """No more chunks. With ``whole`` (the file is complete) a file shorter than the sniff
        window is sniffed now; otherwise (a tus PATCH that ended inside the window) its bytes
        are written unsniffed and a later request sniffs them. Returns the type, if known."""
        if self._window is not None and whole:
            await self._sniff()
        await self._release()
        await self._lane.drain()
        return self.sniffed

    def sha256(self) -> str | None:
        """The file's sha256 (after ``finish``), if this ingest had its running hash."""
        return self._hasher.hexdigest() if self._hasher is not None else None

    def running_hash(self) -> Any | None:
        """The hash object itself, to carry on in the next request of the same upload."""
        return self._hasher

    def digest(self) -> bytes | None:
        """The checksum digest of the bytes fed here (after ``finish``)."""
        return self._digest.digest() if self._digest is not None else None

    async def abort(self) -> None:
        """Drop held chunks and queued hashing; never raises."""
        self._held, self._window = deque(), None
        await self._lane.stop()

    async def _hash(self, chunk: bytes) -> None:
        if self._hasher is None and self._digest is None:
            return
        # sha256 runs on a pool thread (it releases the GIL) while the loop parses the next
        # chunk and the store writes this one: the two cores share the work.
        if len(chunk) < INLINE_HASH_BYTES and self._lane.idle:
            self._update(chunk)
        else:
            await self._lane.put(lambda: self._update(chunk), len(chunk))

    def _update(self, chunk: bytes) -> None:
        if self._hasher is not None:
            self._hasher.update(chunk)
        if self._digest is not None:
            self._digest.update(chunk)

    async def _sniff(self) -> None:
        assert self._window is not None
        sample, self._window = self._window.sample(), None
        self.sniffed = await self._sniffer.sniff(sample)
        self._check_type(self.sniffed.mime_type)

    async def _write(self, chunk: bytes) -> None:
        await self._sink.write(chunk)
        self._count_stored(len(chunk))

    async def _release(self, before: int | None = None) -> None:
        """Write the held chunks in order: all of them, or those ending by ``before``."""
        while self._held and (before is None or self._held[0][0] <= before):
            _, chunk = self._held.popleft()
            await self._write(chunk)


def new_hasher() -> Any:
    return hashlib.sha256()


@dataclass
class HashCache:
    """Per process (one in ``Services``): the running sha256 of each resumable upload this
    process last appended to, so the next PATCH it serves carries the hash on instead of the
    completion re-reading the file."""

    entries: dict[str, tuple[int, Any]] = field(default_factory=dict)

    def take(self, upload_id: str, offset: int) -> Any | None:
        """The hash of the first ``offset`` bytes, or None when this process lacks it."""
        entry = self.entries.pop(upload_id, None)
        if entry is None or entry[0] != offset:
            return new_hasher() if offset == 0 else None
        return entry[1]

    def keep(self, upload_id: str, offset: int, hasher: Any) -> None:
        self.entries[upload_id] = (offset, hasher)

    def forget(self, upload_id: str) -> None:
        self.entries.pop(upload_id, None)
