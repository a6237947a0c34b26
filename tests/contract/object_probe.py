"""What the object-store contract tests (test_object_store.py) ask of a provider's probe: the
provider's real state read through its own SDK, never through the store under test.

S3Probe (boto3 on moto), AzureProbe (azure-storage-blob on Azurite) and GcsProbe
(google-cloud-storage on gcp-storage-emulator) implement it; a new provider's probe implements
it too and joins the ``object_store`` params there."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, Protocol

from tornado_files.blocking import Offload
from tornado_files.storage.parts import PartPipeline


class Unreachable(NamedTuple):
    """A store configured against a port where nothing listens, the logger its client warns
    on, and the start-up refusal (a ``ConfigError`` message regex)."""
    store: Any
    logger: str
    refusal: str


class ObjectProbe(Protocol):
    kind: ClassVar[str]
    part_size: int
    """Bytes per part (block, chunk) of the store the contract fixture builds."""
    end_keeps: int
    """Bytes a writer may still hold after ``end()`` until ``commit()`` (GCS: the last chunk
    finalizes the object, so a tail shorter than 256 KiB is sent with the commit); 0 when
    every byte is stored by ``end()``."""
    lists_unfinished: bool
    """Whether the provider lists what a writer holds before commit (S3 multipart uploads,
    Azure uncommitted blocks). GCS lists no unfinished resumable session, so no store — the
    sweeper included — can find one by its key (Google drops it a week after it began)."""

    def committed(self) -> set[str]:
        """Keys of the committed blobs under the prefix (ours only: 32 hex)."""
    def in_progress(self) -> list[str]:
        """Sorted keys holding data before commit (unfinished multipart uploads, blobs of
        uncommitted blocks)."""
    def staged(self, key: str) -> list[int]:
        """Sizes of ``key``'s parts stored but not committed, in part order."""
    def read(self, key: str) -> bytes:
        """The committed blob ``key``, whole."""
    def traces(self, key: str) -> list[str]:
        """Everything the provider holds for ``key``, described; [] when nothing."""
    def plant_in_progress(self, key: str, data: bytes) -> None:
        """A crashed writer's leftovers: ``data`` stored as one part, never committed."""
    def add_foreign(self) -> None:
        """Blobs other programs put there, inside and outside the prefix."""
    def pipeline(self, writer: Any) -> PartPipeline[Any]:
        """The writer's part pipeline (what it buffers and has in flight)."""
    def unreachable(self, offload: Offload) -> Unreachable:
        """The same kind of store, pointed at a port where nothing listens."""
