"""The sweeper: finishes what the intent journal names, and expires unfinished tus uploads.

Every blob that may exist without a record has an intent (``metadata/base.py``
``IntentJournal``): written before the blob's first byte or before a delete, cleared once
the record is in or the blob is gone. A crash, a lost connection or a failed delete leaves
the intent behind. Each pass pages through the intents older than the grace period, oldest
first: a key that a record points at is fine (the intent just goes); any other key has
every trace removed from its blob store — unless something under it changed within the
grace period (an upload still writing), then the intent stays for the next pass.

Work per pass is bounded by the number of old intents, memory by the page size: the
sweeper never lists a blob store or the records. Records whose blob is gone, and blobs
nobody journaled (older versions, files copied in by hand), are ``tornado-files fsck``'s
job. Unfinished tus uploads need no intent: their upload state is one, and ``expire``
removes those past their expiry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from tornado_files.metadata.base import IntentJournal, MetadataStore
from tornado_files.models import Intent, utcnow
from tornado_files.storage.base import BlobStore, SweepableStore

log = logging.getLogger("tornado_files.sweeper")
PAGE_SIZE = 500
# A pass stops after this many intents failed (a store down would fail every one of them).
MAX_FAILURES = 10


@dataclass
class SweepReport:
    expired: int = 0  # unfinished tus uploads past their expiry
    removed: int = 0  # intents whose key had no record: every trace removed
    recorded: int = 0  # intents whose record is in: nothing to remove
    writing: int = 0  # changed within the grace period: left for a later pass
    failed: int = 0  # could not be settled (logged); tried again next pass

    def count(self, outcome: str) -> None:
        """One more intent with that outcome (``removed``, ``recorded``, ...)."""
        setattr(self, outcome, getattr(self, outcome) + 1)


class Sweeper:
    def __init__(self, intents: IntentJournal, metadata: MetadataStore,
                 blob_stores: Mapping[str, BlobStore], grace: float,
                 clock: Callable[[], datetime] = utcnow,
                 expire: Callable[[], Awaitable[int]] | None = None,
                 page_size: int = PAGE_SIZE) -> None:
        self._intents = intents
        self._metadata = metadata
        self._stores = blob_stores
        self._grace = timedelta(seconds=grace)
        self._clock = clock
        self._expire = expire
        self._page_size = page_size

    async def sweep_once(self) -> SweepReport:
        report = SweepReport()
        if self._expire is not None:
            report.expired = await self._expire()
        await self.settle_old_intents(report)
        if report.expired or report.removed or report.failed:
            log.warning("sweeper: %d expired tus upload(s), %d key(s) without a record "
                        "removed, %d settled, %d still writing, %d failed", report.expired,
                        report.removed, report.recorded, report.writing, report.failed)
        return report

    async def settle_old_intents(self, report: SweepReport,
                                 on_settled: Callable[[Intent, str], None] | None = None
                                 ) -> None:
        """Page through every intent older than the grace period, oldest first, and settle
        each one. ``on_settled(intent, outcome)`` hears of each (``removed``, ``recorded``,
        ``writing``, ``failed``); fsck reports with it."""
        cutoff = self._clock() - self._grace
        after: Intent | None = None
        while report.failed < MAX_FAILURES:
            page = await self._intents.old_intents(cutoff, self._page_size, after)
            done: dict[str, list[str]] = {}
            for intent in page:
                outcome = await self._settle(intent, cutoff)
                report.count(outcome)
                if outcome in ("removed", "recorded"):
                    done.setdefault(intent.store, []).append(intent.key)
                if on_settled is not None:
                    on_settled(intent, outcome)
                if report.failed >= MAX_FAILURES:
                    log.error("sweeper: stopped this pass after %d failures", report.failed)
                    break
            for store, keys in done.items():
                await self._intents.clear_intents(store, keys)
            if len(page) < self._page_size:
                return
            after = page[-1]

    async def _settle(self, intent: Intent, cutoff: datetime) -> str:
        store = self._stores.get(intent.store)
        if not isinstance(store, SweepableStore):
            log.error("sweeper: intent for %s names blob store %r, which is not configured "
                      "or cannot be swept; left in place", intent.key, intent.store)
            return "failed"
        try:
            if await self._metadata.has_blob(intent.store, intent.key):
                return "recorded"
            if await store.remove_traces(intent.key, cutoff):
                return "removed"
        except Exception:
            log.exception("sweeper: could not settle %s in %s", intent.key, intent.store)
            return "failed"
        return "writing"

    async def sweep_safely(self) -> None:
        """For the periodic timer: a failed sweep is logged and tried again next time."""
        try:
            await self.sweep_once()
        except Exception:
            log.exception("sweep failed; trying again at the next interval")
