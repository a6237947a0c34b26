"""``tornado-files fsck``: a full reconciliation of blobs, records and the intent journal,
page by page, for operators to run from cron (as tusd's operators run their own checks).

The periodic sweeper only looks at the keys the journal names. fsck looks at everything:

1. intents older than the grace period (the sweeper has not finished them yet);
2. for each blob store, its keys in order, a page at a time, and for each page one query for
   the records pointing at them: a key without a record is an *orphan blob*;
3. for each blob store, its records in file id order, a page at a time, each blob checked:
   a record whose blob is absent is a *missing blob*.

Memory is bounded by the page size whatever the number of files. With ``repair``, old
intents are settled as the sweeper settles them and orphan blobs quiet for the grace period
are removed (``remove_traces``); a record is never deleted because its blob is absent (a
volume may simply not be mounted), it is only reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from tornado_files.errors import NotFound
from tornado_files.metadata.base import IntentJournal, MetadataStore, UploadStateStore
from tornado_files.models import Intent, iso, utcnow
from tornado_files.storage.base import BlobStore, SweepableStore
from tornado_files.sweeper import Sweeper, SweepReport

PAGE_SIZE = 1000
_SETTLED = {
    "removed": "no record; every trace removed",
    "recorded": "its record is in; intent cleared",
    "writing": "changed within sweep_grace (still writing?); kept",
    "failed": "could not be settled; kept",
}


@dataclass
class FsckReport:
    blobs: int = 0  # blob keys listed
    records: int = 0  # records checked
    orphans: int = 0  # blobs no record points at
    missing: int = 0  # records whose blob is absent
    intents: int = 0  # intents older than the grace period
    repaired: int = 0  # findings mended by --repair
    left: int = 0  # findings still there

    @property
    def clean(self) -> bool:
        """Nothing was found, or everything found was repaired."""
        return self.left == 0

    def summary(self) -> str:
        checked = f"fsck: {self.blobs} blob(s), {self.records} record(s) checked"
        if not (self.orphans or self.missing or self.intents):
            return f"{checked}: clean"
        return (f"{checked}: {self.orphans} orphan blob(s), {self.missing} record(s) without "
                f"a blob, {self.intents} old intent(s); {self.repaired} repaired, "
                f"{self.left} left")


class Fsck:
    def __init__(self, metadata: MetadataStore, intents: IntentJournal,
                 uploads: UploadStateStore, blob_stores: Mapping[str, BlobStore], grace: float,
                 emit: Callable[[str], None], clock: Callable[[], datetime] = utcnow,
                 page_size: int = PAGE_SIZE) -> None:
        """``emit`` gets one line per finding and the summary line."""
        self._metadata = metadata
        self._intents = intents
        self._uploads = uploads
        self._blob_stores = blob_stores
        self._stores = {name: store for name, store in sorted(blob_stores.items())
                        if isinstance(store, SweepableStore)}
        self._grace = grace
        self._emit = emit
        self._clock = clock
        self._page = page_size

    async def run(self, repair: bool) -> FsckReport:
        report = FsckReport()
        cutoff = self._clock() - timedelta(seconds=self._grace)
        if repair:
            await self._settle_intents(report)
        else:
            await self._list_intents(report, cutoff)
        for name, store in self._stores.items():
            await self._check_blobs(name, store, report, cutoff if repair else None)
        for name, store in self._stores.items():
            await self._check_records(name, store, report)
        self._emit(report.summary())
        return report

    async def _list_intents(self, report: FsckReport, cutoff: datetime) -> None:
        after: Intent | None = None
        while page := await self._intents.old_intents(cutoff, self._page, after):
            for intent in page:
                report.intents += 1
                report.left += 1
                self._emit(f"old intent {intent.store}/{intent.key} (since "
                           f"{iso(intent.created)}): not settled by the sweeper yet")
            if len(page) < self._page:
                return
            after = page[-1]

    async def _settle_intents(self, report: FsckReport) -> None:
        def settled(intent: Intent, outcome: str) -> None:
            report.intents += 1
            if outcome in ("removed", "recorded"):
                report.repaired += 1
            else:
                report.left += 1
            self._emit(f"old intent {intent.store}/{intent.key} (since "
                       f"{iso(intent.created)}): {_SETTLED[outcome]}")

        sweeper = Sweeper(self._intents, self._metadata, self._blob_stores, self._grace,
                          clock=self._clock, page_size=self._page)
        await sweeper.settle_old_intents(SweepReport(), on_settled=settled)

    async def _check_blobs(self, name: str, store: SweepableStore, report: FsckReport,
                           remove_before: datetime | None) -> None:
        """Orphan blobs of one store; removed when quiet since ``remove_before`` (repair)."""
        after: str | None = None
        while keys := await store.list_keys(after, self._page):
            report.blobs += len(keys)
            referenced = await self._metadata.referenced_blobs(name, keys)
            for key in keys:
                if key in referenced or await self._completing(name, key):
                    continue
                report.orphans += 1
                if remove_before is None:
                    outcome = "no record points at it"
                    report.left += 1
                elif await store.remove_traces(key, remove_before):
                    outcome = "no record points at it; removed"
                    report.repaired += 1
                else:
                    outcome = "no record points at it; changed within sweep_grace, kept"
                    report.left += 1
                self._emit(f"orphan blob {name}/{key}: {outcome}")
            if len(keys) < self._page:
                return
            after = keys[-1]

    async def _completing(self, name: str, key: str) -> bool:
        """A tus upload whose completion is recorded but not carried out yet: its blob is
        final before its record goes in (HEAD, a PATCH or the sweeper finish it). Not an
        orphan, and never removed."""
        try:
            state = await self._uploads.get_upload(key)
        except NotFound:
            return False
        if state.storage != name or not state.completing:
            return False
        self._emit(f"completing upload {name}/{key}: its file is not recorded yet; the "
                   "sweeper (or the next HEAD) finishes it")
        return True

    async def _check_records(self, name: str, store: SweepableStore,
                             report: FsckReport) -> None:
        after: str | None = None
        while refs := await self._metadata.blob_refs_page(name, after, self._page):
            for ref in refs:
                report.records += 1
                if await store.exists(ref.blob_key):
                    continue
                if not await self._metadata.has_blob(name, ref.blob_key):
                    continue  # the record was deleted meanwhile
                report.missing += 1
                report.left += 1
                self._emit(f"missing blob {name}/{ref.blob_key} of file {ref.file_id}: the "
                           "record stays (is the store mounted?); not repaired")
            if len(refs) < self._page:
                return
            after = refs[-1].file_id
