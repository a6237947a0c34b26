"""One upload request's files: writers, budgets, sniffing, hashing, and all-or-nothing.

The session owns DESIGN.md invariant 2: either ``commit`` made every file durable, or
``abort`` removed everything any writer produced. ``abort`` is idempotent because Tornado
may report a closed connection after we already answered with an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import uuid4

from tornado_files.blocking import Offload
from tornado_files.errors import (
    BackendTimedOut,
    BackendUnavailable,
    EmptySelection,
    TooManyFiles,
)
from tornado_files.ingest import FileFacts, FileIngest, FileOrigin, new_hasher
from tornado_files.metadata.base import IntentJournal
from tornado_files.models import StoredBlob, utcnow
from tornado_files.names import keep_original_filename
from tornado_files.policy import UploadPolicy
from tornado_files.sniff import Sniffer
from tornado_files.storage.base import BlobStore, BlobWriter

log = logging.getLogger("tornado_files.session")

DEFAULT_DECLARED_TYPE = "application/octet-stream"


@dataclass
class FilePart:
    """One file of the request, from its first byte to its committed blob."""

    id: str
    field_name: str
    original_filename: str
    writer: BlobWriter
    ingest: FileIngest
    declared_type: str = DEFAULT_DECLARED_TYPE
    facts: FileFacts | None = None
    blob: StoredBlob | None = None

    def origin(self, route: str, storage: str, data: dict[str, object],
               owner: str | None) -> FileOrigin:
        return FileOrigin(id=self.id, original_filename=self.original_filename,
                          declared_type=self.declared_type, route=route, storage=storage,
                          owner=owner, data=dict(data))


class UploadSession:
    """Everything one request writes. Call order: (``start_file`` ``feed``* ``end_file``)*
    then ``commit`` — or ``abort`` at any point, any number of times."""

    def __init__(
        self,
        *,
        policy: UploadPolicy,
        store: BlobStore,
        intents: IntentJournal,
        sniffer: Sniffer,
        offload: Offload,
        sniff_bytes: int,
        declared_length: int | None,
        received: Callable[[], int],
        count_stored: Callable[[int], None] = lambda _size: None,
        new_id: Callable[[], str] = lambda: uuid4().hex,
    ) -> None:
        self.policy = policy
        self.store = store
        self._intents = intents
        self._journaled: list[str] = []  # keys with an intent, in order
        self._unsure = False  # a store call timed out: what the store will hold is unknown
        self._sniffer = sniffer
        self._offload = offload
        self._sniff_bytes = sniff_bytes
        self._declared = declared_length
        self._received = received
        self._count_stored = count_stored  # bytes of file content written (metrics)
        self._new_id = new_id
        self.files: list[FilePart] = []
        self._current: FilePart | None = None
        self._aborted = False
        self._committed = False
        self._settled = False

    @property
    def aborted(self) -> bool:
        return self._aborted

    async def start_file(self, field: str, filename: str) -> None:
        """Open a writer for the next file; over ``max_files`` → TooManyFiles at once."""
        self._check_open()
        limit = self.policy.max_files
        if len(self.files) >= limit:
            noun = "file" if limit == 1 else "files"
            raise TooManyFiles(
                detail=f"At most {limit} {noun} may be uploaded per request here",
                meta={"max_files": limit},
            )
        file_id = self._new_id()
        # The intent goes in before the first byte: a crash from here on leaves something the
        # sweeper finds (tornado_files/sweeper.py), without ever listing the store.
        await self._intents.add_intent(file_id, self.store.name, utcnow())
        self._journaled.append(file_id)
        with self._watch():
            writer = await self.store.open_writer(file_id)
        ingest = FileIngest(
            sink=writer, sniffer=self._sniffer, lane=self._offload.lane(),
            sniff_bytes=self._sniff_bytes, check_type=self.policy.check_mime,
            limit=self.policy.max_file_size,
            over_limit=lambda _fed: self.policy.file_too_large(self._declared, self._received()),
            hasher=new_hasher(), count_stored=self._count_stored)
        part = FilePart(file_id, field, keep_original_filename(filename), writer, ingest)
        self.files.append(part)
        self._current = part

    async def feed(self, chunk: bytes) -> None:
        """Count, sniff, hash and write one chunk of the current file (``FileIngest``)."""
        with self._watch():
            await self._require_current().ingest.feed(chunk)

    async def end_file(self, declared_type: str | None) -> None:
        """Close the current file (its writer ``end``s: nothing stays open until commit); a
        nameless empty part is a browser's "no file chosen"."""
        part = self._require_current()
        self._current = None
        if declared_type:
            part.declared_type = declared_type
        if part.original_filename == "" and part.ingest.size == 0:
            raise EmptySelection()
        with self._watch():
            sniffed = await part.ingest.finish(whole=True)
        # Release the part's file (or buffered chunks) now, not at commit: a request of many
        # parts then holds one writer's resources at a time (DESIGN.md invariant 7).
        with self._watch():
            await part.writer.end()
        sha256 = part.ingest.sha256()
        assert sniffed is not None
        assert sha256 is not None
        part.facts = FileFacts(part.ingest.size, sha256, sniffed)

    async def commit(self) -> list[FilePart]:
        """Make every file durable. On any failure every blob (committed or not) is removed."""
        self._check_open()
        if self._current is not None:
            raise RuntimeError("commit with a file still open")
        try:
            for part in self.files:
                with self._watch():
                    part.blob = await part.writer.commit()
        except BaseException:
            await self.abort()
            raise
        self._committed = True
        return list(self.files)

    async def settle(self) -> None:
        """The records are stored: from now on ``abort`` must leave the blobs alone, and the
        intents can go (if clearing them fails, the sweeper finds the records and does it)."""
        self._settled = True
        await self._clear_intents()

    async def _clear_intents(self) -> None:
        try:
            await self._intents.clear_intents(self.store.name, self._journaled)
        except Exception:
            log.exception("intents of %s left for the sweeper", self._journaled)

    async def abort(self) -> None:
        """Remove everything this request wrote, including blobs already committed (a record
        insert failed after commit). Idempotent; never raises; a no-op once settled."""
        if self._aborted or self._settled:
            return
        self._aborted = True
        self._current = None
        removed = True
        for part in self.files:
            try:
                await part.ingest.abort()
                await part.writer.abort()
                if part.blob is not None:
                    await self.store.delete(part.blob.key)
            except BackendUnavailable:
                removed = False
                log.warning("cleanup of blob %s failed (store unavailable); its intent stays "
                            "for the sweeper", part.id)
            except Exception:
                removed = False
                log.exception("cleanup of blob %s failed; its intent stays for the sweeper",
                              part.id)
        if removed and not self._unsure:
            await self._clear_intents()

    @contextmanager
    def _watch(self) -> Iterator[None]:
        """A store call that timed out (``BackendTimedOut``: the store stalled and we gave up)
        may still take effect later — a part landing after our abort: the intents then stay,
        and the sweeper settles those keys after its grace period."""
        try:
            yield
        except BackendTimedOut:
            self._unsure = True
            raise

    def _require_current(self) -> FilePart:
        self._check_open()
        if self._current is None:
            raise RuntimeError("no file is open")
        return self._current

    def _check_open(self) -> None:
        if self._aborted or self._committed:
            raise RuntimeError("the upload session is finished")
