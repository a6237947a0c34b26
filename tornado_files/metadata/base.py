"""Metadata store interface. The same contract tests run against every implementation."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from tornado_files.models import (
    BlobRef,
    Delivery,
    Derivative,
    FileRecord,
    Intent,
    JobClaim,
    ListQuery,
    Page,
    UploadState,
)

# Checks the current record inside an atomic change; raises to refuse it.
Precondition = Callable[[FileRecord], None]


# What ``JobQueue.finish_job`` may record: a run ended (PROCESSING_STATES less "pending").
FINISHED_STATES = ("done", "failed", "none")


def check_finished(processing: str) -> None:
    """``ValueError`` unless ``processing`` is one of ``FINISHED_STATES`` (every store's
    ``finish_job`` checks it before writing)."""
    if processing not in FINISHED_STATES:
        raise ValueError(f"a finished job is done, failed or none, not {processing!r}")


def replaced_derivatives(old: Iterable[Derivative], new: Iterable[Derivative]
                         ) -> tuple[Derivative, ...]:
    """Those of ``old`` whose blobs ``new`` no longer uses (the caller removes them)."""
    kept = {d.key for d in new}
    return tuple(d for d in old if d.key not in kept)


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
        self, file_id: str, *, filename: str | None, data: dict[str, Any], modified: datetime,
        precondition: Precondition | None = None,
    ) -> FileRecord:
        """Replace ``data`` (and ``filename`` unless None), set ``modified``; returns the new
        record; raises ``NotFound``. ``precondition(current)`` runs on the record the change
        applies to, atomically with it, and may raise (``If-Match`` → 412): the change is then
        not made."""

    async def merge(
        self, file_id: str, *, filename: str | None, changes: dict[str, Any], modified: datetime,
        precondition: Precondition | None = None,
    ) -> FileRecord:
        """Merge ``changes`` into ``data`` as one atomic operation of the store: each key is
        set to its value, or removed when the value is None (absent keys are no error);
        ``filename`` is set unless None; ``modified`` is set. Returns the new record; raises
        ``NotFound``. Concurrent merges never lose each other's keys (issue 13). Keys are
        non-empty, without ``.`` and not starting with ``$`` (the caller checks).
        ``precondition`` as for ``update``."""

    async def delete(self, file_id: str) -> FileRecord:
        """Remove and return the record (with its derivatives, whose blobs the caller then
        removes); raises ``NotFound``."""

    async def list(self, query: ListQuery) -> Page:
        """Records matching every filter of ``query``, ordered by ``query.sort`` with the id
        as tie-breaker (same direction), starting strictly after ``query.after``, at most
        ``query.limit``. ``Page.after`` is the (sort value, id) of the last record when more
        may follow, else None. Sort values: ``added`` → datetime, ``size`` → int,
        ``filename`` → str."""

    async def has_blob(self, storage: str, key: str) -> bool:
        """Whether a record points at blob ``key`` of that storage, as its content or as one
        of its derivatives (indexed lookups)."""

    async def referenced_blobs(self, storage: str, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` that a record of that storage points at, as content or as a
        derivative. Bounded queries per call (``keys`` is a page of a blob store listing),
        memory bounded by ``len(keys)``."""

    async def blob_refs_page(self, storage: str, after: str | None, limit: int
                             ) -> builtins.list[BlobRef]:
        """Records of that storage in ascending file id order, strictly after the file id
        ``after`` (from the start when None), at most ``limit`` (an indexed range read)."""

    async def store_id(self, storage: str) -> str | None:
        """The identity recorded for blob store ``storage`` (its marker's id), or None."""

    async def set_store_id(self, storage: str, store_id: str) -> None:
        """Record ``store_id`` as the identity of blob store ``storage`` (replaces one)."""


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

    async def count_uploads(self, limit: int) -> int:
        """How many uploads are stored (unfinished, expired or completing), counting at most
        ``limit`` of them: the work is bounded by ``limit``, not by the store."""

    async def delete_upload(self, upload_id: str) -> bool:
        """Remove the state; False when there was none."""

    async def expired_uploads(self, now: datetime, limit: int = 500) -> list[UploadState]:
        """Unfinished uploads whose expiry has passed and whose lease (if any) ran out, the
        earliest expiry first, at most ``limit`` (call again once they are removed); never a
        completing one (its bytes are all there: it is finished, not abandoned)."""

    async def completing_uploads(self, limit: int) -> list[UploadState]:
        """Up to ``limit`` uploads whose completion was recorded but not finished (the
        sweeper drives them to their file)."""


class IntentJournal(Protocol):
    """The intent journal: which blobs may exist without a record, so that the sweeper looks
    at those keys only and never lists a whole store. In the same store as the records.

    Writers keep this order: ``add_intent`` before the first byte of a blob is written (or
    before a record is deleted); ``clear_intents`` after the record insert (or after the
    blob delete, or after an abort that removed everything). A crash anywhere in between
    leaves the intent, and the sweeper finishes the work once it is older than the grace
    period. Backends raise ``BackendUnavailable`` for driver failures."""

    async def startup(self) -> None:
        """Create what the journal needs (tables come with the schema; indexes)."""

    async def add_intent(self, key: str, store: str, created: datetime) -> None:
        """Record that blob ``key`` of blob store ``store`` may exist without a record. At
        most one intent per (store, key): adding one that exists keeps the existing one and
        its ``created`` (idempotent)."""

    async def clear_intents(self, store: str, keys: Sequence[str]) -> None:
        """Remove the intents of ``keys`` in ``store``; missing ones are success
        (idempotent)."""

    async def old_intents(self, before: datetime, limit: int,
                          after: Intent | None = None) -> list[Intent]:
        """Intents created before ``before``, oldest first (ties by store, then key),
        strictly after ``after`` in that order (from the start when None), at most ``limit``:
        a caller pages through any number of them in bounded memory."""


class JobQueue(Protocol):
    """Media jobs (docs/media.md), kept on the file records themselves: a record inserted or
    requeued with ``processing == "pending"`` is a due job, so a job exists exactly when its
    file does and is gone with it. Jobs are claimed under a lease (as tus PATCHes are): any
    process sharing the store runs any job, and one whose process died is claimed again once
    its lease ran out. Backends raise ``BackendUnavailable`` for driver failures."""

    async def startup(self) -> None:
        """Create what the queue needs (indexes)."""

    async def claim_job(self, token: str, until: datetime, now: datetime) -> JobClaim | None:
        """Atomically take the lease (``token`` until ``until``) of one pending file whose job
        is due (its due time ≤ ``now``) and holds no unexpired lease, the earliest due first;
        counts the attempt. None when no job is due."""

    async def renew_job(self, file_id: str, token: str, until: datetime) -> bool:
        """Extend the lease iff ``token`` still holds it (False: requeued, or the file is
        gone)."""

    async def finish_job(self, file_id: str, token: str, *, processing: str,
                         metadata: dict[str, Any], derivatives: Sequence[Derivative]
                         ) -> tuple[FileRecord, tuple[Derivative, ...]] | None:
        """Iff ``token`` holds the lease: set ``processing`` ("done" or "failed"),
        ``metadata`` and ``derivatives`` (replacing the old ones) and release the lease, in
        one atomic change. Returns the new record and the derivatives it replaced (whose
        blobs the caller removes), or None when the lease was lost or the file is gone (the
        caller removes the blobs it wrote). ``modified`` is not changed: it tracks the
        client's changes."""

    async def retry_job(self, file_id: str, token: str, due: datetime) -> bool:
        """Iff ``token`` holds the lease: release it and make the job due again at ``due``
        (a transient failure, retried with back-off). False when the lease was lost."""

    async def requeue_job(self, file_id: str, now: datetime) -> FileRecord:
        """Make the file's job pending and due at ``now`` with no attempt counted, dropping
        any lease (a job still running under it cannot finish). Metadata and derivatives stay
        until the new run replaces them. Returns the record; raises ``NotFound``."""

    async def count_jobs(self, limit: int) -> int:
        """Pending jobs, counting at most ``limit`` (bounded work)."""


class Outbox(Protocol):
    """Webhook deliveries waiting to be sent (docs/deploying.md, Webhooks), in the same store
    as the records, so that they survive restarts and any process sharing the store sends
    them. Deliveries are claimed under a lease, as media jobs are: a delivery is never sent by
    two processes at once, and one whose process died is claimed again once its lease ran
    out. Backends raise ``BackendUnavailable`` for driver failures."""

    async def startup(self) -> None:
        """Create what the outbox needs (tables come with the schema; indexes)."""

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Store the deliveries (SQLite: all or none; MongoDB: one by one, so a failure midway
        may leave some stored, and the caller's retry with the same ids completes them); an id
        that exists already is kept as it is (idempotent)."""

    async def claim_deliveries(self, token: str, until: datetime, now: datetime, limit: int
                               ) -> builtins.list[Delivery]:
        """Take the lease (``token`` until ``until``) of at most ``limit`` deliveries that are
        due (due time ≤ ``now``) and hold no unexpired lease, the earliest due first; each is
        claimed atomically on its own (two claimers never share one)."""

    async def finish_delivery(self, delivery_id: str, token: str) -> bool:
        """Remove the delivery iff ``token`` holds its lease (it was answered 2xx, or given
        up); False when the lease was lost."""

    async def retry_delivery(self, delivery_id: str, token: str, due: datetime) -> bool:
        """Iff ``token`` holds the lease: release it, count the attempt and make the delivery
        due again at ``due``. False when the lease was lost."""

    async def count_deliveries(self, limit: int) -> int:
        """Deliveries waiting, counting at most ``limit`` (bounded work)."""


class LeaseStore(Protocol):
    """Named leases: at most one holder per name at a time, for work that must run in one
    process of all those sharing the store (the sweeper, ``singleton.py``), on one host or
    many. A lease held past its ``until`` is free for anyone; nothing removes it before. Times
    are UTC ``datetime``s from the caller's clock; every process sharing a store must agree on
    the time within a small fraction of the TTLs used (NTP). Backends raise
    ``BackendUnavailable`` for driver failures."""

    async def startup(self) -> None:
        """Create the table / collection (idempotent)."""

    async def acquire_lease(self, name: str, holder: str, until: datetime, now: datetime
                            ) -> bool:
        """Hold ``name`` until ``until`` if nobody holds it at ``now`` (never held, released,
        or its lease ran out) or ``holder`` already does (then it is extended); whether
        ``holder`` holds it now. Atomic: of concurrent callers at most one gets ``True``."""

    async def renew_lease(self, name: str, holder: str, until: datetime, now: datetime
                          ) -> bool:
        """Extend ``holder``'s lease on ``name`` to ``until``; ``False`` (and nothing changed)
        if ``holder`` does not hold it at ``now`` (never did, released, or it ran out)."""

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give ``name`` up if ``holder`` holds it (whether it did); idempotent."""
