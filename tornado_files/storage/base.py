"""Blob store interfaces (tusd's habit: small protocols whose docs say what must hold).

A blob is an opaque byte string under a key the server generated; the client never names it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Protocol

from tornado_files.models import StoredBlob


class BlobWriter(Protocol):
    """One blob being written. Nothing is visible to readers until ``commit``."""

    key: str

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``. Awaiting this is the back-pressure: a slow store slows the
        client. Raises ``InsufficientStorage`` / ``BackendUnavailable``; a store may
        pipeline its writes, so the error of one chunk can be raised by a later ``write`` or
        by ``commit`` — never lost. After an error the caller must ``abort``."""

    async def commit(self) -> StoredBlob:
        """Make the blob durable and visible under ``key``; afterwards ``abort`` is a
        no-op and the blob is removed only by ``BlobStore.delete``."""

    async def abort(self) -> None:
        """Remove everything this writer produced. Idempotent, never raises for a
        missing temp object, safe after a failed ``write`` or ``commit``."""


class BlobReader(Protocol):
    """A committed blob opened for reading."""

    size: int

    def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Yield the bytes ``[start, end)`` in bounded chunks, seeking first: bytes before
        ``start`` are never read."""

    async def close(self) -> None:
        """Release the reader; idempotent."""


class BlobStore(Protocol):
    """A place blobs live: ``disk`` or (later) ``gridfs``."""

    name: str

    async def open_writer(self, key: str) -> BlobWriter:
        """Start a new blob under the generated ``key`` (not visible until commit)."""

    async def open_reader(self, key: str) -> BlobReader:
        """Open a committed blob; raises ``BlobNotFound``."""

    async def delete(self, key: str) -> None:
        """Remove a committed blob; a missing key is success (idempotent)."""

    async def exists(self, key: str) -> bool:
        """Whether a committed blob is stored under ``key``."""

    async def ping(self) -> None:
        """Raise ``BackendUnavailable`` unless the store can take writes."""

    async def startup(self) -> None:
        """Prepare the store and remove leftovers of a crash (stale temp objects)."""

    async def close(self) -> None:
        """Release resources at shutdown."""

    async def committed_keys(self, before: datetime) -> list[str]:
        """Keys of committed blobs written before ``before`` (candidates for the sweeper)."""

    async def sweep_incomplete(self, before: datetime, keep: AbstractSet[str] = frozenset()) -> int:
        """Remove the leftovers of writers that died (temp files, chunks without a files
        document) untouched since ``before``, except partial blobs of the uploads in
        ``keep``; returns how many objects went."""


class PartialWriter(Protocol):
    """Appends to a partial blob from a known durable offset."""

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk`` (awaited: back-pressure)."""

    async def settle(self) -> int:
        """Make everything written so far durable; return the partial's durable length."""

    async def close(self) -> None:
        """Release the writer without any durability promise; idempotent."""


class ResumableBlobStore(Protocol):
    """The optional capability behind tus: partial blobs whose durable length only grows.

    A partial may hold bytes past the offset its upload state records (a PATCH that died
    between writing and advancing the offset); ``resume`` drops them first."""

    async def create_partial(self, key: str) -> None:
        """An empty partial blob under ``key``."""

    async def resume(self, key: str, offset: int) -> PartialWriter:
        """Continue the partial at ``offset``, dropping anything stored past it; raises
        ``BlobNotFound`` when there is no such partial."""

    def read_partial(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """The partial's bytes ``[start, end)`` (for sniffing and hashing)."""

    async def finalize(self, key: str, length: int) -> StoredBlob:
        """Turn the complete partial into a committed blob (as ``BlobWriter.commit``).
        Idempotent: finalizing an already final blob returns it."""

    async def discard(self, key: str) -> None:
        """Remove the partial; a missing one is success."""
