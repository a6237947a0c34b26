"""Which blob store is this? A store that can be absent — a disk store whose volume is not
mounted yet — carries a marker with a random id, recorded in the metadata store too. Start-up
and fsck compare the two before they trust the store: an empty or foreign directory where
records expect blobs would otherwise take new uploads onto the wrong disk and make every
record's blob look missing (issue 13)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable
from uuid import uuid4

from tornado_files.config import ConfigError
from tornado_files.metadata.base import MetadataStore
from tornado_files.storage.disk import MARKER


class WrongStore(ConfigError):
    """The store is not the one the records point at: refuse to start (or to check)."""


@runtime_checkable
class MarkedStore(Protocol):
    name: str
    place: str
    """What holds it, for the refusal's hint: "volume" (disk), "bucket", "container"."""

    def where(self) -> str:
        """Where the store is, for the refusal's one line."""

    async def read_marker(self) -> str | None:
        """The marker's id, None when there is none; creates nothing."""

    async def write_marker(self, store_id: str) -> str:
        """Write the marker (durably) unless one exists; returns the id in place."""

    async def has_blobs(self) -> bool:
        """Whether at least one committed blob is there."""


def _hint(store: MarkedStore) -> str:
    if store.place == "volume":
        return "is its volume mounted?"
    return f"is it the right {store.place} and prefix?"


async def verify_store(store: MarkedStore, metadata: MetadataStore, *, write: bool) -> None:
    """Raise ``WrongStore`` unless ``store`` is the store the records of its name point at.
    With ``write`` (start-up), a store without a marker that may be used gets one and its id
    is recorded: a fresh data directory, or one from before markers that holds blobs."""
    marker = await store.read_marker()
    recorded = await metadata.store_id(store.name)
    if marker is not None and marker == recorded:
        return
    if await metadata.blob_refs_page(store.name, None, 1):
        if marker is None and recorded is None:
            if not await store.has_blobs():
                raise WrongStore(
                    f"{store.where()} holds no blobs and no {MARKER} while records point at "
                    f"store {store.name!r}: {_hint(store)} Refusing to use it")
        elif marker is None:
            raise WrongStore(
                f"{store.where()} has no {MARKER} (store {store.name!r} is {recorded}): "
                f"{_hint(store)} Refusing to use it")
        elif recorded is not None:
            raise WrongStore(
                f"{store.where()} is store {marker}, but the records of store {store.name!r} "
                f"are on store {recorded}: wrong {store.place}? Refusing to use it")
    elif marker is not None and await store.has_blobs():
        # Records that know nothing of a store holding blobs (a database file moved away, a
        # misspelt MongoDB database): adopting it would make every blob an orphan for the
        # sweeper and fsck --repair to delete.
        raise WrongStore(
            f"{store.where()} is store {marker} and holds blobs, but these records know "
            f"{'no' if recorded is None else 'another'} store {store.name!r}: wrong data "
            "directory or database (or lost records)? Refusing to use it; to start over, "
            "move the blobs away")
    if not write:
        return
    store_id = marker or await store.write_marker(uuid4().hex)
    await metadata.set_store_id(store.name, store_id)


async def verify_stores(stores: Iterable[Any], metadata: MetadataStore, *, write: bool) -> None:
    """``verify_store`` for each of ``stores`` that carries a marker (disk stores)."""
    for store in stores:
        if isinstance(store, MarkedStore):
            await verify_store(store, metadata, write=write)
