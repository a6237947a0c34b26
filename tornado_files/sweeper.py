"""Orphan sweeping: blobs without a record and records without a blob.

Orphans come from crashes between the two writes of an upload (blob first, record second)
or between the two deletes (record first, blob second), and from writers whose cleanup could
not reach their store. Only objects older than the grace period are touched, so in-flight
uploads — whose blob exists before their record — are never harmed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from tornado_files.errors import NotFound
from tornado_files.metadata.base import MetadataStore, UploadStateStore
from tornado_files.models import utcnow
from tornado_files.storage.base import BlobStore

log = logging.getLogger("tornado_files.sweeper")


@dataclass
class SweepReport:
    expired: int = 0  # unfinished tus uploads past their expiry
    incomplete: int = 0  # temp files / chunk documents of dead writers
    blobs: int = 0  # committed blobs no record points at
    records: int = 0  # records whose blob is gone

    def total(self) -> int:
        return self.expired + self.incomplete + self.blobs + self.records


class Sweeper:
    def __init__(self, metadata: MetadataStore, blob_stores: Mapping[str, BlobStore],
                 grace: float, clock: Callable[[], datetime] = utcnow,
                 uploads: UploadStateStore | None = None,
                 expire: Callable[[], Awaitable[int]] | None = None) -> None:
        self._metadata = metadata
        self._uploads = uploads
        self._expire = expire
        self._stores = blob_stores
        self._grace = timedelta(seconds=grace)
        self._clock = clock

    async def sweep_once(self) -> SweepReport:
        cutoff = self._clock() - self._grace
        report = SweepReport()
        if self._expire is not None:
            report.expired = await self._expire()
        # Partial blobs of tus uploads in progress are not orphans, however quiet.
        live = await self._uploads.upload_ids() if self._uploads is not None else set()
        for name, store in self._stores.items():
            report.incomplete += await store.sweep_incomplete(cutoff, keep=live)
            referenced = await self._metadata.blob_keys(name)
            for key in await store.committed_keys(cutoff):
                if key not in referenced:
                    await store.delete(key)
                    report.blobs += 1
            for file_id, key in await self._metadata.blob_refs(name, cutoff):
                if not await store.exists(key):
                    with contextlib.suppress(NotFound):  # deleted meanwhile: fine
                        await self._metadata.delete(file_id)
                        report.records += 1
        if report.total():
            log.warning("sweeper removed %d expired tus upload(s), %d incomplete upload "
                        "object(s), %d orphan blob(s), %d record(s) without a blob",
                        report.expired, report.incomplete, report.blobs, report.records)
        return report

    async def sweep_safely(self) -> None:
        """For the periodic timer: a failed sweep is logged and tried again next time."""
        try:
            await self.sweep_once()
        except Exception:
            log.exception("sweep failed; trying again at the next interval")
