"""What the Azure backend really holds, read with azure-storage-blob (the provider's own SDK)
straight from the container — committed blobs and blobs holding only uncommitted blocks —
never through the store."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, ContainerClient

from tests.azure_support import Azurite
from tests.contract.object_probe import Unreachable
from tests.serverproc import free_port
from tornado_files.blocking import Offload
from tornado_files.storage.azure import AzureBlobStore
from tornado_files.storage.azure_settings import AzureSettings
from tornado_files.storage.parts import PartPipeline

_OURS = re.compile(r"^[0-9a-f]{32}$")
BLOCK = 1024 * 1024  # the contract fixture's part_size


def container_client(azurite: Azurite, container: str) -> ContainerClient:
    return ContainerClient.from_connection_string(azurite.connection_string, container)


class AzureProbe:
    """Implements ``ObjectProbe`` (tests/contract/object_probe.py) on a container."""

    kind = "azure"
    part_size = BLOCK
    read_slack = 0  # a ranged download asks for exactly the bytes wanted
    end_keeps = 0  # every byte is stored by end()
    lists_unfinished = True
    flush_bytes = 2 * BLOCK  # the first block has landed once a second one is sent

    def __init__(self, azurite: Azurite, container: str, prefix: str) -> None:
        self.azurite = azurite
        self.client = container_client(azurite, container)
        self.prefix = prefix

    def _ours(self, name: str) -> str | None:
        key = name[len(self.prefix):]
        return key if name.startswith(self.prefix) and _OURS.match(key) else None

    def committed(self) -> set[str]:
        names = (self._ours(b.name) for b in self.client.list_blobs(name_starts_with=self.prefix))
        return {n for n in names if n}

    def in_progress(self) -> list[str]:
        """Keys of blobs that hold uncommitted blocks (what a writer stages before commit)."""
        found = self.client.list_blobs(name_starts_with=self.prefix,
                                       include=["uncommittedblobs"])
        return sorted(k for b in found if (k := self._ours(b.name)) and self.blocks(k)[1])

    def blocks(self, key: str) -> tuple[list[int], list[int]]:
        """Sizes of ``key``'s committed blocks (in list order) and uncommitted blocks (in the
        order of their decoded ids: the writer numbers its blocks, so that is part order)."""
        committed, uncommitted = self.client.get_blob_client(self.prefix + key).get_block_list(
            "all")
        return ([b.size for b in committed],
                [b.size for b in sorted(uncommitted, key=lambda b: base64.b64decode(b.id))])

    def staged(self, key: str) -> list[int]:
        listed = self.client.list_blobs(name_starts_with=self.prefix + key,
                                        include=["uncommittedblobs"])
        return self.blocks(key)[1] if any(b.name == self.prefix + key for b in listed) else []

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_blob_client(self.prefix + key).download_blob().readall())

    def pipeline(self, writer: Any) -> PartPipeline[Any]:
        return writer._blocks

    def unreachable(self, offload: Offload) -> Unreachable:
        endpoint = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
        environ = {"AZURE_STORAGE_CONNECTION_STRING": self.azurite.connection_string}
        store = AzureBlobStore(AzureSettings(container="media", endpoint=endpoint), offload,
                               environ=environ)
        return Unreachable(store, "tornado_files.storage.azure_client",
                           r"cannot write to azure container http://127")

    def held(self, key: str) -> int:
        """An Azure writer holds no descriptor (the client's connection pool is shared)."""
        return 0

    def stored_bytes(self, key: str) -> int:
        return sum(self.blocks(key)[1])

    def partial_blob(self, key: str) -> Any:
        """The blob client of ``key``'s partial (tus), ``<prefix>.partial/<key>``."""
        return self.client.get_blob_client(f"{self.prefix}.partial/{key}")

    def partial_blocks(self, key: str) -> tuple[list[int], list[int]] | None:
        """Sizes of the partial's committed and uncommitted blocks; None when there is none."""
        try:
            committed, uncommitted = self.partial_blob(key).get_block_list("all")
        except ResourceNotFoundError:
            return None
        return [b.size for b in committed], [b.size for b in uncommitted]

    def partial(self, key: str) -> bytes | None:
        try:
            return bytes(self.partial_blob(key).download_blob().readall())
        except ResourceNotFoundError:
            return None

    def traces(self, key: str) -> list[str]:
        found = []
        name = self.prefix + key
        if [b.name for b in self.client.list_blobs(name_starts_with=name,
                                                   include=["uncommittedblobs"])
                if b.name == name]:
            found = [f"blob {k}" for k in self.committed() if k == key]
            if self.blocks(key)[1]:
                found.append(f"uncommitted blocks of {key}")
            found = found or [f"blob {key} listed, with no block"]
        if self.partial_blocks(key) is not None:
            found.append(f"partial blob of {key}")
        return found

    def plant_in_progress(self, key: str, data: bytes) -> None:
        """A crashed writer's leftovers: one staged block, never committed."""
        self.client.get_blob_client(self.prefix + key).stage_block("MDAwMDAx", data)

    def damage(self, key: str) -> None:
        """Cut the committed blob, or else the partial blob, to half its size."""
        blob = self.client.get_blob_client(self.prefix + key)
        if not blob.exists():
            blob = self.partial_blob(key)
        data = blob.download_blob().readall()
        blob.stage_block("aGFsZg==", data[:len(data) // 2])
        blob.commit_block_list([BlobBlock(block_id="aGFsZg==")])

    def add_foreign(self) -> None:
        """Blobs other programs put in the container, inside and outside the prefix."""
        for name in ("README", "F" * 32, "0" * 31, "sub/" + "0" * 32):
            self.client.upload_blob(self.prefix + name, b"x", overwrite=True)
        self.client.upload_blob("elsewhere-" + "1" * 32, b"x", overwrite=True)

    def spy_reads(self, reader: Any) -> Callable[[], int]:
        """Count the bytes the store really sent: wrap the reader's blob client so every
        download counts the chunks read from it."""
        counter = _Counting(reader._blob)
        reader._blob = counter
        return lambda: counter.bytes_read


class _Counting:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bytes_read = 0

    def download_blob(self, **kwargs: Any) -> Any:
        stream = self.inner.download_blob(**kwargs)
        outer = self

        class Stream:
            def chunks(self) -> Any:
                for piece in stream.chunks():
                    outer.bytes_read += len(piece)
                    yield piece

        return Stream()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
