"""Resumable uploads (the domain half of tus): create, append, complete, terminate, expire.

State lives in the metadata store only, so any process sharing it continues any upload; it is
also the upload's intent (the sweeper finds every partial through it). Every step is ordered so
that a crash between two of its writes leaves something the next request or the sweeper
finishes: creation stores the state before the partial; termination and expiry remove the
partial before the state; completion is a recorded state (``UploadState.completing``: every
byte durable, sha256 and type known) that HEAD, a retried PATCH or the sweeper drive to its
end — finalize the blob, insert the record, drop the state, each step idempotent — so HEAD
never reports an upload complete while its file does not exist.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from datetime import timedelta
from uuid import uuid4

from tornado_files.appends import Append
from tornado_files.deletion import delete_file
from tornado_files.errors import (
    BlobNotFound,
    DuplicateKey,
    InvalidParameter,
    NotFound,
    TooManyUploads,
    UploadConflict,
    UploadGone,
    UploadLocked,
)
from tornado_files.hooks.precreate import pre_create
from tornado_files.ingest import FileFacts, FileIngest, FileOrigin, build_record
from tornado_files.jsondata import check_data_keys
from tornado_files.models import FileRecord, UploadState, utcnow
from tornado_files.names import keep_original_filename
from tornado_files.policy import UploadPolicy, route_derives
from tornado_files.services import Services
from tornado_files.sniff import Sniffed
from tornado_files.sniff_window import SniffWindow
from tornado_files.storage.base import BlobReader, PartialBlobStore
from tornado_files.tus_protocol import upload_data

log = logging.getLogger("tornado_files.resumable")
# Sees an upload's creator and whether it is finished (a file) before anything is done to it;
# raises to refuse. None: no check (the sweeper, tests).
Allow = Callable[[str | None, bool], None] | None
DEFAULT_TYPE = "application/octet-stream"
# Completing uploads the sweeper drives per pass (each is a few idempotent steps).
REDRIVE_BATCH = 100
# Expired uploads removed per query: memory stays bounded however many there are.
EXPIRE_PAGE = 200


class Resumable:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.hashes = services.hashes
        self.expiry = timedelta(seconds=services.config.tus_expiry)
        # Short, and renewed on a timer while the PATCH lives (Append.keep_lease): a PATCH
        # whose process died stops renewing, and its upload is free again within a lease.
        self.lease = timedelta(seconds=services.config.tus_lease)
        self.idle_timeout = services.config.idle_timeout
        # A long PATCH makes its bytes durable and counted every this many (0: only at its
        # end), so a process that dies mid-PATCH loses at most that much.
        self.checkpoint_bytes = services.config.tus_checkpoint

    def policy_for(self, route: str | None) -> UploadPolicy:
        policies = self.services.policies
        if route is None:
            return policies[0]
        for policy in policies:
            if policy.path == route:
                return policy
        raise InvalidParameter(detail=f"no upload route {route!r}", meta={"parameter": "route"})

    def partials(self, storage: str) -> PartialBlobStore:
        return self.services.partial_store(storage)

    async def create(self, length: int, metadata: dict[str, str], owner: str | None
                     ) -> UploadState:
        """A new upload. The state goes in first: it is what finds the partial later. An
        empty upload is complete at once (its file exists when this returns). ``metadata``
        is Upload-Metadata decoded: ``route``, ``filename``, ``filetype``, and the file's
        data (:func:`tornado_files.tus_protocol.upload_data`: an unknown route or bad
        ``data`` is refused here, before anything is stored)."""
        meta = dict(metadata)
        policy = self.policy_for(meta.pop("route", None))
        if not isinstance(self.services.blob_store(policy.storage), PartialBlobStore):
            # A store without partial blobs: refused before anything is stored, instead of
            # an InternalError (500) from partial_store later.
            raise InvalidParameter(
                detail=f"route {policy.path} stores files in {policy.storage!r}, which takes "
                       "no resumable (tus) uploads yet: upload with POST to the route",
                meta={"parameter": "route"})
        if length > policy.max_file_size:
            raise policy.file_too_large(length, 0)
        filename = keep_original_filename(meta.pop("filename", "") or "unknown")
        declared_type = meta.pop("filetype", "") or DEFAULT_TYPE
        data = upload_data(meta, self.services.config.max_json_body)
        check_data_keys(data)
        await pre_create(self.services, route=policy.path, principal=owner, filename=filename,
                         size=length, data=data)
        now = utcnow()
        empty = self.services.sniffer.sniff_now(b"") if length == 0 else None
        state = UploadState(
            id=uuid4().hex, route=policy.path, storage=policy.storage, length=length,
            offset=0, created=now, expires=now + self.expiry,
            original_filename=filename, declared_type=declared_type, data=data, owner=owner,
            mime_type=empty.mime_type if empty else None,
            type_os=empty.type_os if empty else None,
            sha256=hashlib.sha256().hexdigest() if empty else None)
        if empty is not None:
            policy.check_mime(empty.mime_type)
        else:
            await self._check_room()
        await self.services.uploads.create_upload(state)
        try:
            await self.partials(state.storage).create_partial(state.id)
        except BaseException:
            await self.services.uploads.delete_upload(state.id)
            raise
        if state.completing:
            await self.complete(state)
        return state

    async def _check_room(self) -> None:
        """At most ``max_unfinished_uploads`` unfinished uploads, all routes together: each
        holds a state and a partial until it finishes or is swept. A count per creation,
        bounded by the cap; creations racing each other may pass it by as many as race."""
        cap = self.services.config.max_unfinished_uploads
        if await self.services.uploads.count_uploads(limit=cap) >= cap:
            raise TooManyUploads(meta={"max_unfinished_uploads": cap})

    async def get(self, upload_id: str) -> UploadState:
        state = await self.services.uploads.get_upload(upload_id)
        if state.expires < utcnow() and not state.completing and state.offset < state.length:
            raise UploadGone()
        return state

    async def progress(self, upload_id: str, allow: Allow = None) -> UploadState:
        """The state HEAD reports. A completing upload is driven to its file first (an error
        there is the answer: HEAD never says complete while the file does not exist); a
        finished one is reported from its file. ``allow(owner, finished)`` sees who created
        the upload before anything is done, and raises to refuse (``Forbidden``)."""
        try:
            state = await self.get(upload_id)
        except NotFound:
            finished = await self._finished_upload(upload_id)
            _check(allow, finished.owner, True)
            return finished
        _check(allow, state.owner, False)
        if state.completing:
            await self.complete(state)
        return state

    async def _finished_upload(self, upload_id: str) -> UploadState:
        """A finished upload's state, from its file (NotFound when there is none)."""
        record = await self.services.metadata.get(upload_id)
        return UploadState(
            id=record.id, route=record.route, storage=record.storage, length=record.size,
            offset=record.size, created=record.added, expires=utcnow(),
            original_filename=record.original_filename, declared_type=record.declared_type,
            sha256=record.sha256, owner=record.owner)

    async def begin(self, upload_id: str, offset: int,
                    checksum: tuple[str, bytes] | None, allow: Allow = None) -> Append:
        """Claim the upload's lease at ``offset`` (compare-and-set) and open its partial. A
        PATCH at the end of a completing or finished upload (a retried last PATCH) takes no
        bytes: it finishes the completion, or finds it done. ``allow`` as for ``progress``."""
        try:
            state = await self.get(upload_id)
            finished = False
        except NotFound:
            state, finished = await self._finished_upload(upload_id), True
        _check(allow, state.owner, finished)
        if state.offset != offset:
            raise UploadConflict(meta={"upload_offset": state.offset})
        if state.completing:
            return Append(self, state, None, None, None, checksum, finished=finished)
        now = utcnow()
        token = uuid4().hex
        claimed = await self.services.uploads.claim_upload(upload_id, offset, token,
                                                           now + self.lease, now)
        if claimed is None:
            # Lost the compare-and-set: the offset moved (409), or a live lease holds it (423).
            current = await self.get(upload_id)
            if current.offset != offset:
                raise UploadConflict(meta={"upload_offset": current.offset})
            left = (current.lease_until - utcnow()).total_seconds() if current.lease_until else 0
            raise UploadLocked(retry_after=max(1, math.ceil(left)))
        partials = self.partials(state.storage)
        writer = None
        try:
            writer = await partials.resume(upload_id, offset)
            window = await self._stored_window(claimed, partials)
        except BaseException as exc:
            # Refused before a byte was taken (507 below the floor, a store error): the lease
            # goes at once, or the next PATCH would wait for it (423) for nothing.
            if writer is not None:
                await writer.close()
            await self.release(claimed, token)
            if isinstance(exc, BlobNotFound):
                raise NotFound() from None
            raise
        known = Sniffed(claimed.mime_type, claimed.type_os or "") if claimed.mime_type else None
        policy = self.policy_for(state.route)
        ingest = FileIngest(
            sink=writer, sniffer=self.services.sniffer, lane=self.services.offload.lane(),
            sniff_bytes=self.services.config.sniff_bytes, check_type=policy.check_mime,
            limit=state.length,
            over_limit=lambda fed: policy.file_too_large(state.length, offset + fed),
            start=offset, window=window, sniffed=known, hasher=self.hashes.take(upload_id, offset),
            digest=hashlib.new(checksum[0]) if checksum else None,
            count_stored=self.services.metrics.stored("tus"))
        append = Append(self, claimed, token, writer, ingest, checksum)
        append.keep_lease()
        return append

    async def _stored_window(self, state: UploadState,
                             partials: PartialBlobStore) -> SniffWindow | None:
        """What of the stored bytes libmagic needs, when earlier PATCHes ended before the type
        was known: the head, and the bytes after a leading ID3v2 tag (``SniffWindow``)."""
        if state.mime_type is not None or state.offset == 0:
            return None
        window = SniffWindow(self.services.config.sniff_bytes)
        reader = await partials.open_partial_reader(state.id, state.offset)
        try:
            window.take(0, await _read(reader, 0, min(state.offset, window.size)))
            read_from = 0
            # After each tag (they may be stacked), what follows it, as far as it is stored.
            while window.tag_end and read_from < window.tag_end < state.offset:
                read_from = window.tag_end
                end = min(state.offset, read_from + window.size)
                window.take(read_from, await _read(reader, read_from, end))
        finally:
            await reader.close()
        return window

    async def release(self, state: UploadState, token: str) -> None:
        await self.services.uploads.advance_upload(
            state.id, token, state.offset, expires=state.expires, lease_until=None,
            mime_type=None, type_os=None)

    async def rehash(self, state: UploadState) -> str:
        """The sha256 of a durable partial, read once (an earlier PATCH of this upload ran in
        another process, so this one has no running hash)."""
        hasher = hashlib.sha256()
        reader = await self.partials(state.storage).open_partial_reader(state.id, state.length)
        try:
            async for chunk in reader.iter_range(0, state.length):
                await self.services.offload(hasher.update, chunk)
        finally:
            await reader.close()
        return hasher.hexdigest()

    async def complete(self, state: UploadState) -> FileRecord:
        """Drive a completing upload to its file; every step is idempotent, so any number of
        callers may run this at once or again after a crash."""
        assert state.sha256 is not None
        assert state.mime_type is not None
        blob = await self.partials(state.storage).finalize(state.id, state.length)
        origin = FileOrigin(id=state.id, original_filename=state.original_filename,
                            declared_type=state.declared_type, route=state.route,
                            storage=state.storage, owner=state.owner, data=state.data)
        facts = FileFacts(state.length, state.sha256,
                          Sniffed(state.mime_type, state.type_os or ""))
        derive = route_derives(self.services.policies, state.route)
        record = build_record(origin, facts, blob, derive=derive)
        try:
            await self.services.metadata.insert_many([record])
            self.services.metrics.upload_ended("tus", "created")
            await self.services.events.files("file.created", [record])
        except DuplicateKey:
            record = await self.services.metadata.get(state.id)  # another caller was first
        if record.processing == "pending":
            self.services.job_signals.queued()
        await self.services.uploads.delete_upload(state.id)
        self.hashes.forget(state.id)
        return record

    async def terminate(self, upload_id: str, allow: Allow = None,
                        outcome: str = "aborted") -> None:
        """Remove the upload: partial first, then the state (counted as ended with
        ``outcome``: "aborted" by its client, "rejected" by the server). A finished upload is
        its file, and the termination extension covers completed uploads (tus 1.0.0): the file is
        deleted as ``DELETE /api/files/{id}`` deletes it (a completing one is finished first).
        Raises ``NotFound`` when there is neither. ``allow`` as for ``progress``."""
        try:
            state = await self.services.uploads.get_upload(upload_id)
        except NotFound:
            await delete_file(self.services, upload_id,
                              lambda record: _check(allow, record.owner, True))
            return
        _check(allow, state.owner, bool(state.completing))
        if state.completing:
            await self.complete(state)
            await delete_file(self.services, upload_id)
            return
        await self.partials(state.storage).discard_partial(upload_id)
        await self.services.uploads.delete_upload(upload_id)
        self.hashes.forget(upload_id)
        self.services.metrics.upload_ended("tus", outcome)

    async def sweep(self) -> int:
        """For the sweeper: drive completing uploads to their file, then remove expired
        unfinished ones (partial first, then state). Returns how many were expired."""
        for state in await self.services.uploads.completing_uploads(REDRIVE_BATCH):
            try:
                await self.complete(state)
            except Exception:
                log.exception("completing upload %s failed; the next sweep tries again",
                              state.id)
        removed = 0
        while True:
            expired = await self.services.uploads.expired_uploads(utcnow(), EXPIRE_PAGE)
            for state in expired:
                if state.offset == state.length:
                    # Left by a version before completion was recorded: its blob may be final
                    # with no record. An intent lets the journal's sweep decide, after the grace.
                    await self.services.intents.add_intent(state.id, state.storage, utcnow())
                await self.partials(state.storage).discard_partial(state.id)
                await self.services.uploads.delete_upload(state.id)
                self.hashes.forget(state.id)
            await self.services.events.expired(expired)
            removed += len(expired)
            self.services.metrics.upload_ended("tus", "expired", len(expired))
            if len(expired) < EXPIRE_PAGE:
                return removed


async def _read(reader: BlobReader, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in reader.iter_range(start, end)])


def _check(allow: Allow, owner: str | None, finished: bool) -> None:
    if allow is not None:
        allow(owner, finished)
