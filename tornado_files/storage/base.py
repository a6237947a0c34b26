"""Blob store interfaces (tusd's habit: small protocols whose docs say what must hold).

A blob is an opaque byte string under a key the server generated (32 lowercase hex); the
client never names it. Each backend is ONE object: the core ``BlobStore`` plus optional
capabilities on the same object (``PartialBlobStore`` for resumable uploads,
``SweepableStore`` for the sweeper), the way tusd composes its ``DataStore`` with optional
interfaces. Ask for a capability with :func:`partial_store` / :func:`sweepable_store`.
Sizes and offsets are in bytes throughout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from tornado_files.errors import InternalError
from tornado_files.models import StoredBlob


class BlobWriter(Protocol):
    """One blob being written. Nothing is visible to readers until ``commit``."""

    key: str

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``. Awaiting this is the back-pressure: a slow store slows the
        client. Raises ``InsufficientStorage`` / ``BackendUnavailable``; a store may
        pipeline its writes, so the error of one chunk can be raised by a later ``write`` or
        by ``commit`` — never lost. After an error the caller must ``abort``."""

    async def end(self) -> None:
        """No more writes: release what the writer holds — an open file, buffered chunks —
        so that a request of many files holds one writer's resources at a time. The blob
        stays invisible, committable and abortable. Raises like ``write`` (then the caller
        must ``abort``); idempotent; ``commit`` without ``end`` first is fine."""

    async def commit(self) -> StoredBlob:
        """Make the blob durable and visible under ``key``; afterwards ``abort`` is a
        no-op and the blob is removed only by ``BlobStore.delete``."""

    async def abort(self) -> None:
        """Remove everything this writer produced. Idempotent, never raises for a
        missing temp object, safe after a failed ``write`` or ``commit``."""


class BlobReader(Protocol):
    """A committed blob (or a partial's first bytes) opened for reading."""

    size: int

    def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Yield the bytes ``[start, end)`` in bounded chunks, seeking first: bytes before
        ``start`` are never read. Bytes that should be there and are not (a missing chunk,
        a file shorter than ``size``) and read failures are logged and raised as
        ``BackendUnavailable`` — a reader never ends a range early in silence."""

    async def close(self) -> None:
        """Release the reader; idempotent."""


class BlobStore(Protocol):
    """The core every backend has: ``disk``, ``gridfs``."""

    name: str

    async def open_writer(self, key: str) -> BlobWriter:
        """Start a new blob under the generated ``key`` (not visible until commit). Raises
        ``ValueError`` for a key that is not 32 lowercase hex."""

    async def open_reader(self, key: str) -> BlobReader:
        """Open a committed blob; raises ``BlobNotFound`` (also for a malformed key)."""

    async def delete(self, key: str) -> None:
        """Remove a committed blob; a missing key is success (idempotent)."""

    async def ping(self) -> None:
        """Raise ``BackendUnavailable`` unless the store can take writes."""

    async def startup(self) -> None:
        """Prepare the store and remove leftovers of a crash (stale temp objects)."""

    async def close(self) -> None:
        """Release resources at shutdown."""


class PartialWriter(Protocol):
    """Appends to a partial blob from a known durable offset."""

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk`` (awaited: back-pressure). Errors may surface at a later
        ``write`` or at ``settle``, never lost."""

    async def settle(self) -> int:
        """Make everything written so far durable; return the partial's durable length."""

    async def close(self) -> None:
        """Release the writer without any durability promise; idempotent."""


@runtime_checkable
class PartialBlobStore(Protocol):
    """Capability behind resumable uploads (tus): partial blobs whose durable length only
    grows, kept across restarts and continued by any process sharing the store.

    A partial may hold bytes past the offset its upload state records (a PATCH that died
    between writing and advancing the offset); ``resume`` drops them first."""

    async def create_partial(self, key: str) -> None:
        """An empty partial blob under ``key`` (a fresh key)."""

    async def resume(self, key: str, offset: int) -> PartialWriter:
        """Continue the partial at ``offset``: bytes stored past ``offset`` are gone when
        this returns. At offset 0 a missing partial is created, not an error (a crash
        between recording the upload and ``create_partial`` is harmless). At ``offset > 0``
        a partial that is missing or holds fewer than ``offset`` bytes raises
        ``BlobNotFound``."""

    async def open_partial_reader(self, key: str, length: int) -> BlobReader:
        """The partial's first ``length`` bytes, read by the same ranged reader as
        committed blobs: a missing chunk, a short file or a read error is logged and
        raised as ``BackendUnavailable`` while reading. May raise ``BlobNotFound`` at open
        where the backend can tell the partial is missing."""

    async def finalize(self, key: str, length: int) -> StoredBlob:
        """Turn the complete partial into a committed blob under the same ``key`` (durable
        and visible, as ``BlobWriter.commit``). Idempotent: finalizing an already final
        blob returns it, also when two callers race (the loser sees the final blob and
        succeeds). Raises ``InternalError`` when the stored size is not ``length`` and
        ``BlobNotFound`` when there is neither a partial nor a blob."""

    async def discard_partial(self, key: str) -> None:
        """Remove the partial; a missing one is success. Never touches a finalized blob."""


@runtime_checkable
class SweepableStore(Protocol):
    """Capability for the sweeper (an intent journal names the keys to look at): bounded
    work per key, never a listing of the whole store at once."""

    async def exists(self, key: str) -> bool:
        """Whether a committed blob is stored under ``key`` (False for a malformed key)."""

    async def remove_traces(self, key: str, quiet_before: datetime) -> bool:
        """Remove everything stored under ``key`` — committed blob, a writer's temp object,
        a partial — unless any of it changed at or after ``quiet_before`` (an upload still
        streaming): then nothing is removed and the answer is False. True when it removed
        everything or found nothing. Idempotent."""

    async def list_keys(self, after: str | None, limit: int) -> list[str]:
        """Committed keys in ascending order, strictly after ``after`` (from the start
        when None), at most ``limit`` of them; memory bounded by ``limit``. Only keys this
        server generates (32 lowercase hex) are listed."""


@runtime_checkable
class RedirectStore(Protocol):
    """Capability of stores that can serve a blob themselves (S3 presigned URLs)."""

    async def download_url(self, key: str, media_type: str, disposition: str) -> str | None:
        """A URL from which a client may GET the committed blob under ``key`` for a short
        while, answering with ``media_type`` and the ``Content-Disposition`` value
        ``disposition``; None when the store is configured to proxy the bytes instead."""


def partial_store(store: BlobStore) -> PartialBlobStore:
    """``store`` as a :class:`PartialBlobStore`; ``InternalError`` when it has no partial
    blobs (a route configured for resumable uploads on a store that cannot do them)."""
    if not isinstance(store, PartialBlobStore):
        raise InternalError(f"blob store {store.name!r} has no partial blobs")
    return store


def sweepable_store(store: BlobStore) -> SweepableStore:
    """``store`` as a :class:`SweepableStore`; ``InternalError`` when it cannot be swept."""
    if not isinstance(store, SweepableStore):
        raise InternalError(f"blob store {store.name!r} cannot be swept")
    return store
