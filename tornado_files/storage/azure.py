"""Blobs in an Azure Storage container: ``AzureBlobStore`` with the core, partial blobs (tus),
sweeping, SAS redirects and a store marker, one block blob per file under ``prefix + key``.

Writes stage blocks and commit a block list (azure_io.py). What a crash leaves is a blob name
with uncommitted blocks only — invisible to readers, and discarded by Azure itself after 7
days; ``remove_traces`` (the sweeper) discards them sooner for a key it settles. Partial blobs
(tus) are block blobs under ``<prefix>.partial/<key>`` (azure_partial.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobClient, BlobSasPermissions, generate_blob_sas

from tornado_files.blocking import Offload
from tornado_files.config import ConfigError
from tornado_files.errors import BlobNotFound
from tornado_files.models import StoredBlob
from tornado_files.storage import object_marker
from tornado_files.storage.azure_client import AzureCalls, make_container
from tornado_files.storage.azure_io import AzureBlobReader, AzureBlobWriter
from tornado_files.storage.azure_partial import AzurePartialWriter, PartialBlobs
from tornado_files.storage.azure_settings import AzureCredentials, AzureSettings, credentials_from
from tornado_files.storage.objects import OUR_KEY, our_key

log = logging.getLogger(__name__)
URL_LIFETIME = 300  # seconds a SAS download URL stays valid (as S3's presigned URLs)
LIST_PAGE = 1000
AZURE_THREADS = 16  # eight uploads each with two blocks in flight


class AzureBlobStore:
    """Implements ``BlobStore``, ``PartialBlobStore``, ``SweepableStore``, ``RedirectStore`` and
    the store marker on one container and prefix. Credentials come from ``environ``
    (``credentials_from``; raises ``ConfigError`` when it names no account); ``owns_pool``:
    ``close`` shuts ``offload``."""

    place = "container"  # what holds it (store_identity.py's hints)

    def __init__(self, settings: AzureSettings, offload: Offload, *,
                 environ: Mapping[str, str] | None = None, name: str = "azure",
                 owns_pool: bool = False) -> None:
        self.name = name
        self.settings = settings
        self.prefix = settings.prefix
        self.part_size = settings.part_size
        try:
            self.creds: AzureCredentials = credentials_from(
                os.environ if environ is None else environ)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.calls = AzureCalls(make_container(settings, self.creds, AZURE_THREADS), offload)
        self._owns_pool = owns_pool
        self.partials = PartialBlobs(self)

    def object_key(self, key: str) -> str:
        return self.prefix + key

    def _blob(self, key: str) -> BlobClient:
        return self.calls.container.get_blob_client(self.object_key(key))

    def unusable(self) -> ConfigError:
        """The one start-up line for a container that cannot be reached or written."""
        return ConfigError(f"cannot write to {self.where()}: check the endpoint, the container "
                           "and the AZURE_STORAGE_* credentials")

    def where(self) -> str:
        url = self.calls.container.url
        return f"azure container {url} (prefix {self.prefix!r})"

    # -- BlobStore ------------------------------------------------------------------------
    async def open_writer(self, key: str) -> AzureBlobWriter:
        if not OUR_KEY.match(key):
            raise ValueError("blob keys are 32 lowercase hex characters")
        return AzureBlobWriter(self, key)

    async def open_reader(self, key: str) -> AzureBlobReader:
        if not OUR_KEY.match(key):
            raise BlobNotFound()
        blob = self._blob(key)
        props = await self.calls.must("open", blob.get_blob_properties)
        return AzureBlobReader(self, blob.blob_name, int(props.size))

    async def delete(self, key: str) -> None:
        if OUR_KEY.match(key):
            await self.calls.run("delete", self._blob(key).delete_blob, missing_ok=True)

    async def discard_uncommitted(self, blob: BlobClient) -> None:
        """Drop a fresh blob's uncommitted blocks: committing a block list discards every block
        not in it (Put Block List), then the empty blob is deleted."""
        await self.calls.run("discard", lambda: blob.commit_block_list([]))
        await self.calls.run("discard", blob.delete_blob, missing_ok=True)

    async def download_url(self, key: str, media_type: str, disposition: str) -> str | None:
        """A read-only SAS URL (``URL_LIFETIME`` seconds) whose answer carries the file's type
        and name (``rsct`` / ``rscd``), or None with ``download = "proxy"`` or without an
        account key to sign with. Signed locally: no request to Azure."""
        if self.settings.download != "redirect" or not self.creds.key:
            return None
        blob = self._blob(key)
        sas = generate_blob_sas(
            self.creds.account, self.settings.container, blob.blob_name,
            account_key=self.creds.key, permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + timedelta(seconds=URL_LIFETIME),
            content_type=media_type, content_disposition=disposition)
        return f"{blob.url}?{sas}"

    async def ping(self) -> None:
        await object_marker.ping(self)

    async def startup(self) -> None:
        await object_marker.check_writable(self)

    async def read_small(self, name: str, limit: int) -> bytes | None:
        blob = self.calls.container.get_blob_client(name)
        data = await self.calls.run(
            "read", lambda: blob.download_blob(offset=0, length=limit).readall(),
            missing_ok=True)
        return None if data is None else bytes(data)

    async def write_small(self, name: str, data: bytes) -> None:
        blob = self.calls.container.get_blob_client(name)
        await self.calls.must("write", lambda: blob.upload_blob(data, overwrite=True))

    async def close(self) -> None:
        self.calls.container.close()
        if self._owns_pool:
            self.calls.offload.shutdown()

    # -- PartialBlobStore (azure_partial.py) ----------------------------------------------
    async def create_partial(self, key: str) -> None:
        await self.partials.create(our_key(key))

    async def resume(self, key: str, offset: int) -> AzurePartialWriter:
        return await self.partials.resume(our_key(key), offset)

    async def open_partial_reader(self, key: str, length: int) -> AzureBlobReader:
        return await self.partials.open_reader(our_key(key), length)

    async def finalize(self, key: str, length: int) -> StoredBlob:
        return await self.partials.finalize(our_key(key), length)

    async def discard_partial(self, key: str) -> None:
        """Only the partial blob: a finalized blob is another blob, never touched here."""
        if OUR_KEY.match(key):
            await self.partials.discard(key)

    # -- SweepableStore -------------------------------------------------------------------
    async def exists(self, key: str) -> bool:
        if not OUR_KEY.match(key):
            return False
        props = await self.calls.run("exists", self._blob(key).get_blob_properties,
                                     missing_ok=True)
        return props is not None

    async def remove_traces(self, key: str, quiet_before: datetime) -> bool:
        if not OUR_KEY.match(key):
            return True
        blob = self._blob(key)
        # A partial's time is its last commit: a PATCH commits at least every tus_checkpoint.
        partial = await self.calls.run("head partial", self.partials.blob(key).get_blob_properties,
                                       missing_ok=True)
        if partial is not None and partial.last_modified >= quiet_before:
            return False
        props = await self.calls.run("head", blob.get_blob_properties, missing_ok=True)
        found = []
        if props is None:
            name = blob.blob_name
            found = await self.calls.must("list", lambda: [
                item for item in self.calls.container.list_blobs(
                    name_starts_with=name, include=["uncommittedblobs"]) if item.name == name])
        # Uncommitted blocks carry no time of their own; the listing's is the blob's newest.
        changed = [p.last_modified for p in (props, *found) if p is not None]
        if any(when is not None and when >= quiet_before for when in changed):
            return False
        if partial is not None:
            await self.partials.discard(key)
        if props is not None:
            await self.calls.run("delete", blob.delete_blob, missing_ok=True)
        elif found:
            await self.discard_uncommitted(blob)
        return True

    async def list_keys(self, after: str | None, limit: int) -> list[str]:
        if limit <= 0:
            return []
        start = self.prefix + (after or "")
        container, prefix = self.calls.container, self.prefix

        def page() -> list[str]:
            keys: list[str] = []
            # Azure lists in name order; no "start after", so skip up to ``start`` as we go.
            for item in container.walk_blobs(name_starts_with=prefix, delimiter="/",
                                             results_per_page=LIST_PAGE):
                name = str(item.name)
                if name <= start or name.endswith("/"):
                    continue
                key = name[len(prefix):]
                if OUR_KEY.fullmatch(key):
                    keys.append(key)
                    if len(keys) >= limit:
                        break
            return keys

        return await self.calls.must("list", page)

    # -- MarkedStore (store_identity.py) --------------------------------------------------
    async def read_marker(self) -> str | None:
        return await object_marker.read_marker(self)

    async def write_marker(self, store_id: str) -> str:
        return await object_marker.write_marker(self, store_id)

    async def has_blobs(self) -> bool:
        return bool(await self.list_keys(None, 1))


