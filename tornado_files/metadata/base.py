"""Metadata store interface. The same contract tests run against every implementation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from tornado_files.models import BlobRefs, FileRecord, ListQuery, Page


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
