"""The write check and the store marker of the object stores (S3, GCS, Azure), written once
over two small calls each store provides: read an object's first bytes, write a small object.

The write check puts ``<prefix>.tornado-files-ping`` (reachable is not enough: the bucket
must take writes); the marker is ``<prefix>.tornado-files-store``, holding the store's id
(store_identity.py). Both are the start-up's first calls, so a bucket (container) that cannot
be reached, or does not exist, becomes the store's one start-up line (``unusable``).
"""

from __future__ import annotations

from typing import Protocol

from tornado_files.config import ConfigError
from tornado_files.errors import BackendUnavailable, BlobNotFound
from tornado_files.storage.disk import MARKER

PING = ".tornado-files-ping"
MARKER_BYTES = 256  # a marker holds a 32-hex id; more is never read


class SmallObjects(Protocol):
    """What an object store gives this module."""

    prefix: str

    def unusable(self) -> ConfigError:
        """The one start-up line for a bucket that cannot be reached or written."""

    async def read_small(self, name: str, limit: int) -> bytes | None:
        """The first ``limit`` bytes of object ``name``; None when it does not exist. Raises
        ``BackendUnavailable`` when the store cannot answer."""

    async def write_small(self, name: str, data: bytes) -> None:
        """Put ``data`` as object ``name`` (replacing it). Raises ``BackendUnavailable``, or
        ``BlobNotFound`` when the bucket itself does not exist."""


async def ping(store: SmallObjects) -> None:
    """One small write (``/readyz``); raises what ``write_small`` raises."""
    await store.write_small(store.prefix + PING, b"ok")


async def check_writable(store: SmallObjects) -> None:
    """``ping`` at start-up: any failure is ``store.unusable()`` (``ConfigError``)."""
    try:
        await ping(store)
    except (BackendUnavailable, BlobNotFound):
        raise store.unusable() from None


async def read_marker(store: SmallObjects) -> str | None:
    """The marker's id, None when there is none. The first call of start-up
    (store_identity runs before ``startup``): a store that cannot answer is ``unusable``."""
    try:
        data = await store.read_small(store.prefix + MARKER, MARKER_BYTES)
    except BackendUnavailable:
        raise store.unusable() from None
    if data is None:
        return None
    return data.decode("ascii", "replace").strip() or None


async def write_marker(store: SmallObjects, store_id: str) -> str:
    """Write the marker unless one exists; returns the id in place. A bucket that does not
    exist (the write's "not found") is ``unusable`` too."""
    present = await read_marker(store)
    if present is not None:
        return present
    try:
        await store.write_small(store.prefix + MARKER, store_id.encode("ascii"))
    except (BackendUnavailable, BlobNotFound):
        raise store.unusable() from None
    return store_id
