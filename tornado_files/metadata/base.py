"""Metadata store interface. The same contract tests run against every implementation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from tornado_files.models import BlobRefs, FileRecord, ListQuery, Page, UploadState


class MetadataStore(Protocol):
    """File records. Order of operations (DESIGN.md): blob first, record second; on delete,
    record first. Backends raise ``BackendUnavailable`` for driver failures, never driver
    exceptions."""

    async def startup(self) -> None:
        """Create or migrate the schema and its indexes."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    async def ping(self) -> None:
        """Raise ``BackendUnavailable`` unless the store answers."""

    async def insert_many(self, records: Sequence[FileRecord]) -> None:
        """Insert all records atomically: either every one is stored or none is."""

    async def get(self, file_id: str) -> FileRecord:
        """Return the record; raises ``NotFound``."""

    async def update(
        self, file_id: str, *, filename: str | None, data: dict[str, Any], modified: datetime
    ) -> FileRecord:
        """Replace ``data`` (and ``filename`` unless None), set ``modified``; returns the new
        record; raises ``NotFound``. Merging is the caller's job."""

    async def delete(self, file_id: str) -> FileRecord:
        """Remove and return the record; raises ``NotFound``."""

    async def list(self, query: ListQuery) -> Page:
        """Records matching every filter of ``query``, ordered by ``query.sort`` with the id
        as tie-breaker (same direction), starting strictly after ``query.after``, at most
        ``query.limit``. ``Page.after`` is the (sort value, id) of the last record when more
        may follow, else None. Sort values: ``added`` → datetime, ``size`` → int,
        ``filename`` → str."""

    async def blob_keys(self, storage: str) -> set[str]:
        """Every blob key referenced by a record of that storage (for sweeping)."""

    async def blob_refs(self, storage: str, added_before: datetime) -> BlobRefs:
        """(file id, blob key) of every record of that storage added before a moment (for
        finding records whose blob is gone)."""


class UploadStateStore(Protocol):
    """Resumable-upload state (tus), in the same store as the records so that any process
    sharing it continues any upload. Offsets move only by compare-and-set under a lease."""

    async def startup(self) -> None:
        """Create what the store needs (indexes)."""

    async def create_upload(self, state: UploadState) -> None:
        """Store a new upload."""

    async def get_upload(self, upload_id: str) -> UploadState:
        """Raises ``NotFound``."""

    async def claim_upload(self, upload_id: str, offset: int, token: str, until: datetime,
                           now: datetime) -> UploadState | None:
        """Atomically take the lease iff the upload's offset is ``offset`` and no unexpired
        lease is held; returns the claimed state, or None (→ 409)."""

    async def advance_upload(self, upload_id: str, token: str, offset: int, *,
                             expires: datetime, lease_until: datetime | None,
                             mime_type: str | None, type_os: str | None,
                             sha256: str | None = None) -> bool:
        """Record a new durable ``offset`` (never smaller) iff ``token`` holds the lease;
        ``lease_until=None`` releases the lease. ``mime_type``/``type_os``/``sha256`` are set
        when given and kept when None; a ``sha256`` marks the upload completing (its offset is
        its length)."""

    async def delete_upload(self, upload_id: str) -> bool:
        """Remove the state; False when there was none."""

    async def expired_uploads(self, now: datetime) -> list[UploadState]:
        """Unfinished uploads whose expiry has passed and whose lease (if any) ran out; never
        a completing one (its bytes are all there: it is finished, not abandoned)."""

    async def completing_uploads(self, limit: int) -> list[UploadState]:
        """Up to ``limit`` uploads whose completion was recorded but not finished (the
        sweeper drives them to their file)."""

    async def upload_ids(self) -> set[str]:
        """Ids of every upload in progress (their partial blobs are not orphans)."""
