"""Resumable uploads (the domain half of tus): create, append under a lease, complete, expire.

State lives in the metadata store only, so any process sharing it continues any upload. A
PATCH first claims the upload's lease at its offset (compare-and-set: the loser of a race gets
409 before writing a byte), streams into the partial blob, then makes the bytes durable and
advances the offset — also when the client vanishes mid-body, so every byte that reached
storage counts. sha256 is kept in memory per process while the same process continues an
upload; otherwise the partial is re-read once at completion.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import uuid4

from tornado_files.errors import (
    BlobNotFound,
    ChecksumMismatch,
    InvalidParameter,
    NotFound,
    UploadConflict,
    UploadGone,
    UploadLocked,
)
from tornado_files.models import FileRecord, UploadState, utcnow
from tornado_files.names import safe_filename
from tornado_files.policy import UploadPolicy
from tornado_files.services import Services
from tornado_files.sniff import Sniffed
from tornado_files.storage.base import PartialBlobStore, PartialWriter, sweepable_store

log = logging.getLogger("tornado_files.resumable")
DEFAULT_TYPE = "application/octet-stream"
EXPIRE_PAGE = 200


@dataclass
class HashCache:
    """Per process: the running sha256 of uploads this process last appended to."""

    entries: dict[str, tuple[int, Any]] = field(default_factory=dict)

    def take(self, upload_id: str, offset: int) -> Any | None:
        entry = self.entries.pop(upload_id, None)
        if entry is None or entry[0] != offset:
            return hashlib.sha256() if offset == 0 else None
        return entry[1]

    def keep(self, upload_id: str, offset: int, hasher: Any) -> None:
        self.entries[upload_id] = (offset, hasher)


class Resumable:
    def __init__(self, services: Services, hashes: HashCache) -> None:
        self.services = services
        self.hashes = hashes
        self.expiry = timedelta(seconds=services.config.tus_expiry)
        self.lease = timedelta(seconds=max(60.0, 2 * services.config.idle_timeout))

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
        meta = dict(metadata)
        policy = self.policy_for(meta.pop("route", None))
        if length > policy.max_file_size:
            raise policy.file_too_large(length, 0)
        now = utcnow()
        state = UploadState(
            id=uuid4().hex, route=policy.path, storage=policy.storage, length=length,
            offset=0, created=now, expires=now + self.expiry,
            original_filename=meta.pop("filename", "") or "unknown",
            declared_type=meta.pop("filetype", "") or DEFAULT_TYPE, data=meta, owner=owner)
        await self.partials(state.storage).create_partial(state.id)
        try:
            await self.services.uploads.create_upload(state)
        except BaseException:
            await self.partials(state.storage).discard_partial(state.id)
            raise
        return state

    async def get(self, upload_id: str) -> UploadState:
        state = await self.services.uploads.get_upload(upload_id)
        if state.expires < utcnow() and state.offset < state.length:
            raise UploadGone()
        return state

    async def begin(self, upload_id: str, offset: int,
                    checksum: tuple[str, bytes] | None) -> Append:
        state = await self.get(upload_id)
        if state.offset != offset:
            raise UploadConflict(meta={"upload_offset": state.offset})
        now = utcnow()
        token = uuid4().hex
        claimed = await self.services.uploads.claim_upload(upload_id, offset, token,
                                                           now + self.lease, now)
        if claimed is None:
            # Lost the compare-and-set: the offset moved (409), or a live lease holds it (423).
            current = await self.get(upload_id)
            if current.offset != offset:
                raise UploadConflict(meta={"upload_offset": current.offset})
            raise UploadLocked()
        try:
            writer = await self.partials(state.storage).resume(upload_id, offset)
        except BlobNotFound:
            await self._release(claimed, token)
            raise NotFound() from None
        head = b""
        if claimed.mime_type is None and offset:
            reader = await self.partials(state.storage).open_partial_reader(upload_id, offset)
            try:
                head = b"".join([c async for c in reader.iter_range(
                    0, min(offset, self.services.config.sniff_bytes))])
            finally:
                await reader.close()
        return Append(self, claimed, token, writer, checksum,
                      self.hashes.take(upload_id, offset), bytearray(head))

    async def _release(self, state: UploadState, token: str) -> None:
        await self.services.uploads.advance_upload(
            state.id, token, state.offset, expires=state.expires, lease_until=None,
            mime_type=None, type_os=None)

    async def terminate(self, upload_id: str) -> None:
        await self._forget(await self.services.uploads.get_upload(upload_id))

    async def _forget(self, state: UploadState) -> None:
        """Remove the upload's state and partial. The upload state was its intent: an intent
        takes over first, so a crash half-way — or a blob finalized by a completion whose
        record never went in — is finished by the sweeper."""
        intents = self.services.intents
        await intents.add_intent(state.id, state.storage, utcnow())
        await self.services.uploads.delete_upload(state.id)
        self.hashes.entries.pop(state.id, None)
        await self.partials(state.storage).discard_partial(state.id)
        if not await sweepable_store(self.services.blob_store(state.storage)).exists(state.id):
            await intents.clear_intents(state.storage, [state.id])

    async def complete(self, state: UploadState, hasher: Any | None) -> FileRecord:
        """Last byte arrived: the partial becomes the file with the same id."""
        partials = self.partials(state.storage)
        if hasher is None:  # another process began it: re-read once
            hasher = hashlib.sha256()
            reader = await partials.open_partial_reader(state.id, state.length)
            try:
                async for chunk in reader.iter_range(0, state.length):
                    await self.services.offload(hasher.update, chunk)
            finally:
                await reader.close()
        blob = await partials.finalize(state.id, state.length)
        now = utcnow()
        record = FileRecord(
            id=state.id, filename=safe_filename(state.original_filename),
            original_filename=state.original_filename, size=state.length,
            mime_type=state.mime_type or "application/x-empty",
            declared_type=state.declared_type, type_os=state.type_os or "empty",
            sha256=hasher.hexdigest(), route=state.route, storage=state.storage,
            blob_key=blob.key, added=now, modified=now, owner=state.owner, data=state.data)
        await self.services.metadata.insert_many([record])
        await self.services.uploads.delete_upload(state.id)
        self.hashes.entries.pop(state.id, None)
        return record

    async def expire(self) -> int:
        """Remove expired unfinished uploads and their partial data (for the sweeper), a
        page at a time: memory stays bounded however many there are."""
        removed = 0
        while True:
            expired = await self.services.uploads.expired_uploads(utcnow(), EXPIRE_PAGE)
            for state in expired:
                await self._forget(state)
            removed += len(expired)
            if len(expired) < EXPIRE_PAGE:
                return removed


class Append:
    """One PATCH (or creation-with-upload body) into an upload it holds the lease of."""

    def __init__(self, owner: Resumable, state: UploadState, token: str, writer: PartialWriter,
                 checksum: tuple[str, bytes] | None, hasher: Any | None, head: bytearray
                 ) -> None:
        self.owner = owner
        self.state = state
        self.token = token
        self.writer = writer
        self.checksum = checksum
        self.digest = hashlib.new(checksum[0]) if checksum else None
        self.hasher = hasher
        self.head = head
        self.sniffed: Sniffed | None = None
        self.received = 0
        self.done = False
        self._renewed = utcnow()
        self._hashing = owner.services.offload.lane()

    @property
    def remaining(self) -> int:
        return self.state.length - self.state.offset

    async def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.digest is not None:
            self.digest.update(chunk)
        if self.hasher is not None:
            # On the pool while the loop reads on, as POST uploads hash (session.py).
            await self._hashing.put(partial(self.hasher.update, chunk), len(chunk))
        await self.writer.write(chunk)
        await self._sniff_when_ready(chunk)
        if utcnow() - self._renewed > self.owner.lease / 3:
            await self._renew()

    async def _sniff_when_ready(self, chunk: bytes) -> None:
        if self.state.mime_type is not None or self.sniffed is not None:
            return
        limit = self.owner.services.config.sniff_bytes
        self.head += chunk[: max(0, limit - len(self.head))]
        whole = self.state.offset + self.received >= self.state.length
        if len(self.head) >= limit or whole:
            self.sniffed = await self.owner.services.sniffer.sniff(bytes(self.head))
            self.head = bytearray()
            self.owner.policy_for(self.state.route).check_mime(self.sniffed.mime_type)

    async def _renew(self) -> None:
        self._renewed = utcnow()
        await self.owner.services.uploads.advance_upload(
            self.state.id, self.token, self.state.offset, expires=self.state.expires,
            lease_until=self._renewed + self.owner.lease, mime_type=None, type_os=None)

    async def finish(self) -> tuple[UploadState, FileRecord | None]:
        """The body ended: check the checksum, make it durable, advance, maybe complete."""
        if self.digest is not None and self.checksum and \
                self.digest.digest() != self.checksum[1]:
            await self.discard()
            raise ChecksumMismatch()
        if self.state.mime_type is None and self.sniffed is None and \
                self.state.offset + self.received >= self.state.length:
            await self._sniff_when_ready(b"")
        state = await self._advance(release=True)
        if state.offset < state.length:
            return state, None
        return state, await self.owner.complete(state, self.hasher)

    async def interrupted(self) -> None:
        """The client vanished mid-body: keep every byte that reached storage."""
        if self.done:
            return
        if self.checksum is not None:
            await self.discard()  # a chunk with a checksum is all or nothing
            return
        await self._advance(release=True)

    async def _advance(self, release: bool) -> UploadState:
        self.done = True
        await self._hashing.drain()  # the hasher is kept or completed below
        durable = await self.writer.settle()
        await self.writer.close()
        now = utcnow()
        state = replace(self.state, offset=durable, expires=now + self.owner.expiry,
                        mime_type=self.state.mime_type or (
                            self.sniffed.mime_type if self.sniffed else None),
                        type_os=self.state.type_os or (
                            self.sniffed.type_os if self.sniffed else None))
        ok = await self.owner.services.uploads.advance_upload(
            state.id, self.token, durable, expires=state.expires, lease_until=None,
            mime_type=state.mime_type, type_os=state.type_os)
        if not ok:
            raise NotFound()  # terminated or expired while this request wrote
        if self.hasher is not None and durable == self.state.offset + self.received:
            self.owner.hashes.keep(state.id, durable, self.hasher)
        return state

    async def discard(self) -> None:
        """Throw this request's bytes away: the offset stays where it was."""
        if self.done:
            return
        self.done = True
        await self._hashing.stop()
        await self.writer.close()
        try:
            await self.owner._release(self.state, self.token)
        except Exception:
            log.exception("could not release the lease of upload %s", self.state.id)
