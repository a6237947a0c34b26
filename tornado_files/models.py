"""Frozen values passed between the pieces: stored blobs, file records, list queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SORT_KEYS: tuple[str, ...] = ("added", "-added", "size", "-size", "filename", "-filename")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
# Derivative images (docs/media.md), in the order the resource lists them.
DERIVATIVE_KINDS: tuple[str, ...] = ("thumbnail", "square_thumbnail", "fullsize")
# A file's ``processing``: a job is due or running, it ran, it could not, or nothing applies.
PROCESSING_STATES: tuple[str, ...] = ("pending", "done", "failed", "none")


def utcnow() -> datetime:
    """Now, in UTC, with microseconds (ordering needs them; the API shows seconds)."""
    return datetime.now(UTC)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: how stores keep times so ordering is exact.

    >>> to_micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
    1000005
    """
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The inverse of :func:`to_micros`, in UTC."""
    seconds, micros = divmod(value, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a ``Z``, to the second, as docs/api.md says.

    >>> iso(datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC))
    '2026-11-22T10:00:00Z'
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class StoredBlob:
    """What a blob store reports once a writer committed."""

    key: str
    size: int


@dataclass(frozen=True)
class Derivative:
    """A derivative image of a file, stored in the file's own blob store under ``key`` (a
    generated key, like the file's): ``size`` bytes of ``media_type`` (``image/webp`` or
    ``image/jpeg``), ``width`` by ``height`` pixels, hashed ``sha256`` (its ETag)."""

    kind: str  # one of DERIVATIVE_KINDS
    key: str
    size: int
    media_type: str
    width: int
    height: int
    sha256: str


@dataclass(frozen=True)
class FileRecord:
    """One stored file's metadata: the source of the API's file resource."""

    id: str
    filename: str
    original_filename: str
    size: int
    mime_type: str
    declared_type: str
    type_os: str
    sha256: str
    route: str
    storage: str
    blob_key: str
    added: datetime
    modified: datetime
    owner: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    # The media job's state (PROCESSING_STATES); "pending" makes the record a due job.
    processing: str = "none"
    derivatives: tuple[Derivative, ...] = ()

    def derivative(self, kind: str) -> Derivative | None:
        return next((d for d in self.derivatives if d.kind == kind), None)

    def to_resource(self) -> dict[str, Any]:
        """The file resource of docs/api.md."""
        url = f"/api/files/{self.id}"
        content = f"{url}/content"
        return {
            "id": self.id,
            "url": url,
            "download_url": content,
            "filename": self.filename,
            "original_filename": self.original_filename,
            "size": self.size,
            "mime_type": self.mime_type,
            "declared_type": self.declared_type,
            "type_os": self.type_os,
            "sha256": self.sha256,
            "route": self.route,
            "storage": self.storage,
            "owner": self.owner,
            "added": iso(self.added),
            "modified": iso(self.modified),
            "data": self.data,
            "metadata": self.metadata,
            "processing": self.processing,
            "has_derivative_images": bool(self.derivatives),
            "file_urls": {
                "original": content,
                **{kind: (f"{url}/derivatives/{kind}" if self.derivative(kind) else None)
                   for kind in DERIVATIVE_KINDS},
            },
        }


@dataclass(frozen=True)
class ListQuery:
    """A validated listing request (docs/api.md, Listing). ``cursor`` is already decoded."""

    mime_type: str | None = None  # exact, or "image/*"
    size_greater_than: int | None = None
    size_less_than: int | None = None
    added_since: datetime | None = None
    modified_since: datetime | None = None
    filename: str | None = None  # case-insensitive substring
    route: str | None = None
    owner: str | None = None
    sha256: str | None = None
    data_equals: tuple[tuple[str, str], ...] = ()
    processing: str | None = None  # one of PROCESSING_STATES
    has_derivative_images: bool | None = None
    sort: str = "-added"
    limit: int = DEFAULT_LIMIT
    # Keyset cursor: the sort value and id of the last item of the previous page.
    after: tuple[Any, str] | None = None


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``after`` is the keyset position of the next page, if any."""

    records: tuple[FileRecord, ...]
    after: tuple[Any, str] | None

    @classmethod
    def of(cls, fetched: list[FileRecord], query: ListQuery) -> Page:
        """A page from up to ``limit + 1`` fetched records: the extra one says more follow."""
        records = tuple(fetched[: query.limit])
        if len(fetched) <= query.limit:
            return cls(records, None)
        return cls(records, position_of(records[-1], query.sort))


def position_of(record: FileRecord, sort: str) -> tuple[Any, str]:
    """The keyset position of ``record`` in a listing sorted by ``sort`` (a page that ends
    with it continues after it)."""
    value: Any = {"added": record.added, "size": record.size,
                  "filename": record.filename}[sort.lstrip("-")]
    return value, record.id


@dataclass(frozen=True)
class JobClaim:
    """A media job taken under a lease: the file's record as it was claimed, the lease's
    ``token``, and ``attempt`` (1 for the first run; it counts every claim since the job was
    queued, so a job whose worker keeps dying stops being retried)."""

    record: FileRecord
    token: str
    attempt: int


@dataclass(frozen=True)
class BlobRef:
    """A record's file id and the key of its blob (for ``tornado-files fsck``)."""

    file_id: str
    blob_key: str


@dataclass(frozen=True)
class Intent:
    """A row of the intent journal: a blob under ``key`` in the blob store named ``store``
    may exist without a record. Written before the blob's first byte (or before a delete), it
    is removed once the record is in or everything under the key is gone; what a crash
    leaves behind, the sweeper finishes once ``created`` is older than the grace period."""

    key: str
    store: str
    created: datetime


@dataclass(frozen=True)
class UploadState:
    """A resumable (tus) upload in progress. ``offset`` only grows and never exceeds what the
    blob store durably holds; a PATCH holds the lease (``lease_token`` until ``lease_until``)
    while it writes, so two PATCHes can never write the same upload at once."""

    id: str
    route: str
    storage: str
    length: int
    offset: int
    created: datetime
    expires: datetime
    original_filename: str
    declared_type: str
    data: dict[str, Any] = field(default_factory=dict)
    owner: str | None = None
    mime_type: str | None = None  # set once the first bytes were sniffed
    type_os: str | None = None
    lease_token: str | None = None
    lease_until: datetime | None = None
    # Set together with ``offset == length``: every byte is durable and the upload is being
    # turned into its file. From then on anyone (HEAD, a retried PATCH, the sweeper) may drive
    # that to its end; the state goes only once the file exists.
    sha256: str | None = None

    @property
    def completing(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery in the outbox (docs/deploying.md, Webhooks): ``id`` (also the
    receiver's idempotency key), the ``event``, the hook's ``url``, the exact ``body`` bytes
    (signed when sent), when it was ``created``, when it is ``due`` next, and how many
    ``attempts`` were made so far; ``token`` is the lease's when it was claimed."""

    id: str
    event: str
    url: str
    body: bytes
    created: datetime
    due: datetime
    attempts: int = 0
    token: str | None = None
