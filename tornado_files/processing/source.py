"""The file a worker process reads: the committed blob itself where the store keeps it as a
local file (disk), else a copy streamed into the job's folder (GridFS, object stores)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from tornado_files.models import FileRecord
from tornado_files.services import Services


@runtime_checkable
class LocalBlobs(Protocol):
    """Capability of a blob store whose committed blobs are local files."""

    def path_of(self, key: str) -> Path:
        """The committed blob's file; ``BlobNotFound`` for a malformed key."""


async def job_source(services: Services, record: FileRecord, folder: Path) -> Path:
    """A local file holding ``record``'s bytes, readable by a worker process, by its
    absolute path. A copy goes to
    ``folder/source`` (removed with the folder) in bounded chunks. Raises ``BlobNotFound`` /
    ``BackendUnavailable`` from the store, ``OSError`` from the local disk."""
    store = services.blob_store(record.storage)
    if isinstance(store, LocalBlobs):
        return store.path_of(record.blob_key).absolute()  # the worker takes absolute paths
    target = folder / "source"
    reader = await store.open_reader(record.blob_key)
    try:
        handle: BinaryIO = await services.offload(target.open, "xb")
        try:
            async for chunk in reader.iter_range(0, record.size):
                await services.offload(handle.write, chunk)
        finally:
            await services.offload(handle.close)
    finally:
        await reader.close()
    return target
