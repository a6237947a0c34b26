"""The one object handlers get their dependencies from (through application settings)."""

from __future__ import annotations

from dataclasses import dataclass

from tornado_files.blocking import Offload
from tornado_files.config import Config
from tornado_files.errors import InternalError
from tornado_files.metadata.base import MetadataStore
from tornado_files.policy import UploadPolicy
from tornado_files.sniff import Sniffer
from tornado_files.storage.base import BlobStore


@dataclass(frozen=True)
class Services:
    config: Config
    policies: tuple[UploadPolicy, ...]  # default route first
    blob_stores: dict[str, BlobStore]
    metadata: MetadataStore
    sniffer: Sniffer
    offload: Offload

    def blob_store(self, name: str) -> BlobStore:
        try:
            return self.blob_stores[name]
        except KeyError:
            raise InternalError(f"no blob store named {name!r}") from None

    async def startup(self) -> None:
        for store in self.blob_stores.values():
            await store.startup()
        await self.metadata.startup()

    async def close(self) -> None:
        await self.metadata.close()
        for store in self.blob_stores.values():
            await store.close()
        self.offload.shutdown()
