"""One PATCH (or creation-with-upload body) of a resumable upload, under the upload's lease.

The bytes go through the same ``FileIngest`` as a POST (caps, sniffing before writing, hashing
off the loop). When the body ends — or the client vanishes — what reached storage is made
durable and the offset advanced, so every byte that arrived counts; a long PATCH also does so
every ``tus_checkpoint`` bytes on its way (a checkpoint), so a process that dies mid-PATCH
loses at most that much; a chunk that carried an ``Upload-Checksum`` is all or nothing. The
PATCH that makes the upload whole records it as completing and drives it to its file
(``Resumable.complete``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from tornado_files.errors import ChecksumMismatch, NotFound
from tornado_files.ingest import FileIngest
from tornado_files.models import UploadState, utcnow
from tornado_files.sniff import Sniffed
from tornado_files.storage.base import PartialWriter

if TYPE_CHECKING:
    from tornado_files.resumable import Resumable

log = logging.getLogger("tornado_files.resumable")


class Append:
    """``token``, ``writer`` and ``ingest`` are None for a completing upload: a retried last
    PATCH has no bytes to take, only the completion to finish (nothing at all when
    ``finished``: the file exists)."""

    def __init__(self, owner: Resumable, state: UploadState, token: str | None,
                 writer: PartialWriter | None, ingest: FileIngest | None,
                 checksum: tuple[str, bytes] | None, *, finished: bool = False) -> None:
        self.finished = finished
        self.owner = owner
        self.state = state
        self.token = token
        self.writer = writer
        self.ingest = ingest
        self.checksum = checksum
        self.received = 0  # bytes fed past ``state.offset`` (a checkpoint moves both)
        # The body's room, fixed when the PATCH starts (checkpoints move the offset).
        self._room = state.length - state.offset
        self._since_checkpoint = 0
        # Serialises the lease's renewals with checkpoints: both compare-and-set the state.
        self._state_lock = asyncio.Lock()
        self.done = False
        self._renewer: asyncio.Task[None] | None = None
        self._active = time.monotonic()

    @property
    def remaining(self) -> int:
        """Bytes this PATCH may carry (the upload's length less its offset at the start)."""
        return self._room

    async def feed(self, chunk: bytes) -> None:
        assert self.ingest is not None  # a completing upload takes no bytes (remaining 0)
        self.received += len(chunk)
        self._since_checkpoint += len(chunk)
        self._active = time.monotonic()
        await self.ingest.feed(chunk)
        every = self.owner.checkpoint_bytes
        if (every and self._since_checkpoint >= every and self.checksum is None
                and self.token is not None and not self.done):
            self._since_checkpoint = 0
            await self._checkpoint()
        self._active = time.monotonic()

    async def _checkpoint(self) -> None:
        """Make what was written so far durable and count it — the offset advances, the lease
        is kept — while the PATCH goes on with the same writer."""
        assert self.writer is not None
        assert self.ingest is not None
        assert self.token is not None
        async with self._state_lock:
            state = self.state
            durable = await self.writer.settle()
            if not state.offset < durable < state.length:
                return  # nothing new, or the end: finish() takes it from here
            sniffed = self.ingest.sniffed if state.mime_type is None else None
            now = utcnow()
            advanced = replace(state, offset=durable, expires=now + self.owner.expiry,
                               mime_type=state.mime_type or (sniffed.mime_type if sniffed
                                                             else None),
                               type_os=state.type_os or (sniffed.type_os if sniffed else None))
            ok = await self.owner.services.uploads.advance_upload(
                state.id, self.token, durable, expires=advanced.expires,
                lease_until=now + self.owner.lease, mime_type=advanced.mime_type,
                type_os=advanced.type_os)
            if not ok:
                raise NotFound()  # terminated or expired while this request wrote
            self.received -= durable - state.offset
            self.state = advanced

    def keep_lease(self) -> None:
        """Renew the lease every third of its length until this append ends — also while
        the client is silent, until the idle timeout ends the request. A process that dies
        stops renewing, so its lease runs out within one lease time (issue 13)."""
        if self.token is not None and self._renewer is None:
            self._renewer = asyncio.create_task(self._keep_lease())

    async def _keep_lease(self) -> None:
        lease = self.owner.lease.total_seconds()
        # A guard, not the rule: an append nobody feeds or ends (a bug elsewhere) must not
        # hold its upload for ever.
        idle_limit = self.owner.idle_timeout + 2 * lease
        while not self.done:
            await asyncio.sleep(lease / 3)
            if self.done or time.monotonic() - self._active > idle_limit:
                return
            try:
                held = await self._renew()
            except Exception as exc:
                log.warning("upload %s: lease renewal failed (%s); trying again", self.state.id,
                            exc)
                continue
            if not held:
                log.warning("upload %s: the lease was lost (terminated, or taken over)",
                            self.state.id)
                return

    async def _stop_renewing(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None and renewer is not asyncio.current_task():
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew(self) -> bool:
        assert self.token is not None
        async with self._state_lock:
            return await self.owner.services.uploads.advance_upload(
                self.state.id, self.token, self.state.offset, expires=self.state.expires,
                lease_until=utcnow() + self.owner.lease, mime_type=None, type_os=None)

    def _whole(self) -> bool:
        return self.state.offset + self.received == self.state.length

    @property
    def completes(self) -> bool:
        """Whether the bytes received so far make the upload whole."""
        return self._whole()

    async def finish(self) -> UploadState:
        """The body ended: check the checksum, make it durable, advance, maybe complete."""
        if self.ingest is None:
            self.done = True
            if not self.finished:
                await self.owner.complete(self.state)
            return self.state
        try:
            sniffed = await self.ingest.finish(whole=self._whole())
        except BaseException:
            await self.discard()
            raise
        if self.checksum is not None and self.ingest.digest() != self.checksum[1]:
            await self.discard()
            raise ChecksumMismatch()
        return await self._conclude(sniffed)

    async def interrupted(self) -> None:
        """The client vanished (or went silent) mid-body: keep every byte that reached
        storage — unless the chunk carried a checksum, which makes it all or nothing."""
        if self.done or self.ingest is None:
            return
        if self.checksum is not None:
            await self.discard()
            return
        try:
            sniffed = await self.ingest.finish(whole=self._whole())
        except Exception:
            log.exception("upload %s: the interrupted PATCH's bytes could not be kept",
                          self.state.id)
            await self.discard()
            return
        await self._conclude(sniffed)

    async def _conclude(self, sniffed: Sniffed | None) -> UploadState:
        assert self.writer is not None
        assert self.token is not None
        assert self.ingest is not None
        self.done = True
        await self._stop_renewing()
        try:
            durable = await self.writer.settle()
        finally:
            # Also when the last appends failed (a full disk, the free-space floor): an open
            # file would hold its space after a DELETE until the garbage collector ran.
            await self.writer.close()
        state = self.state
        kinds = sniffed if state.mime_type is None else None
        now = utcnow()
        advanced = replace(
            state, offset=durable, expires=now + self.owner.expiry,
            mime_type=state.mime_type or (kinds.mime_type if kinds else None),
            type_os=state.type_os or (kinds.type_os if kinds else None))
        ours = durable == state.offset + self.received  # the running hash covers the bytes
        if durable == state.length:
            sha256 = self.ingest.sha256() if ours else None
            advanced = replace(advanced, sha256=sha256 or await self.owner.rehash(advanced))
        ok = await self.owner.services.uploads.advance_upload(
            state.id, self.token, durable, expires=advanced.expires, lease_until=None,
            mime_type=advanced.mime_type, type_os=advanced.type_os, sha256=advanced.sha256)
        if not ok:
            raise NotFound()  # terminated or expired while this request wrote
        if advanced.completing:
            await self.owner.complete(advanced)
        elif ours and self.ingest.running_hash() is not None:
            self.owner.hashes.keep(state.id, durable, self.ingest.running_hash())
        return advanced

    async def discard(self) -> None:
        """Throw this request's bytes away and release the lease: the offset stays where it
        was. The disk store cuts its file back at once (the space is free again); a store
        whose writer cannot, drops the bytes past the offset at the next resume."""
        if self.done:
            return
        self.done = True
        await self._stop_renewing()
        if self.ingest is not None:
            await self.ingest.abort()
        if self.writer is not None:
            await self.writer.close()
        if self.token is None:
            return
        try:
            await self.owner.release(self.state, self.token)
        except Exception:
            log.exception("could not release the lease of upload %s", self.state.id)
