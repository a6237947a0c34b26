"""One GCS object written through a resumable upload session, and one read by a ranged GET.

Writing (cloud.google.com/storage/docs/performing-resumable-uploads, "Upload in multiple
chunks"): ``open`` starts a JSON-API session; a ``PartPipeline`` cuts the bytes into chunks of
``part_size`` (a multiple of 256 KiB). A session takes its chunks strictly in order, so each
chunk's PUT waits for the previous one's answer; the next chunk still fills meanwhile, and
with two chunks queued ``write`` waits (back-pressure). Every chunk but the last says
``bytes a-b/*``; only the last names the total — and that finalizes the object. So ``end``
sends whatever 256 KiB multiple is left and keeps the last < 256 KiB for ``commit``: nothing
is visible before it. ``abort`` cancels the session (DELETE on its URI; GCS answers 499); a
session is not an object and Google drops unfinished ones after a week.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from tornado_files.errors import BackendUnavailable, BlobNotFound
from tornado_files.models import StoredBlob
from tornado_files.storage.gcs_client import TIMEOUT, GcsError
from tornado_files.storage.gcs_settings import CHUNK_UNIT
from tornado_files.storage.objects import READ_CHUNK
from tornado_files.storage.parts import PartPipeline

if TYPE_CHECKING:
    from tornado_files.storage.gcs import GcsBlobStore

log = logging.getLogger(__name__)
MAX_OBJECT = 5 * 1024 ** 4  # GCS's object size limit, 5 TiB (cloud.google.com quotas)
CANCELLED = (499, 404, 410)  # a cancelled session answers 499; a gone one 404/410


class GcsBlobWriter:
    """Implements ``BlobWriter`` as one resumable upload session (started in ``open``)."""

    def __init__(self, store: GcsBlobStore, key: str, session_uri: str) -> None:
        self.key = key
        self._store = store
        self._uri = session_uri
        self._parts: PartPipeline[int] = PartPipeline(
            lambda number: store.part_size, self._queue,
            max_parts=MAX_OBJECT // store.part_size + 1,
            too_large="The object is larger than GCS can store")
        self._queued = 0  # bytes handed to chunk sends so far
        self._last: asyncio.Task[int] | None = None  # the newest chunk send
        self._ending = False
        self._tail = b""  # the last < 256 KiB, sent by commit (it finalizes the object)
        self._finalizing = False  # a final request went out: an object may exist
        self._done = False  # committed or aborted

    @classmethod
    async def open(cls, store: GcsBlobStore, key: str) -> GcsBlobWriter:
        calls, name = store.calls, store.object_key(key)
        url = (f"{calls.base}/upload/storage/v1/b/{quote(calls.bucket.name, safe='')}/o"
               f"?uploadType=resumable&name={quote(name, safe='')}")
        answer = await calls.must("start upload", lambda: calls.raw(
            "start upload", "POST", url, (200,), json={"name": name},
            headers={"X-Upload-Content-Type": "application/octet-stream"}))
        location = answer.headers.get("Location")
        if not location:
            log.error("GCS answered a resumable upload without a session URI")
            raise BackendUnavailable()
        return cls(store, key, location)

    async def write(self, chunk: bytes) -> None:
        await self._parts.write(chunk)

    def _queue(self, number: int, data: bytes) -> Awaitable[int]:
        """Called in chunk order by the pipeline: the send is chained behind the previous."""
        if self._ending:  # the last, short part: its 256 KiB multiple now, the rest at commit
            cut = len(data) - len(data) % CHUNK_UNIT
            data, self._tail = data[:cut], data[cut:]
        start = self._queued
        self._queued += len(data)
        self._last = asyncio.ensure_future(self._put(self._last, start, data))
        return self._last

    async def _put(self, previous: asyncio.Task[int] | None, start: int, data: bytes) -> int:
        if previous is not None:
            await asyncio.wait([previous])  # never raises: the outcome is checked below
            if previous.cancelled() or previous.exception() is not None:
                raise BackendUnavailable()  # a session takes no chunk after a gap
        if not data:
            return start
        end = start + len(data) - 1
        calls = self._store.calls
        answer = await calls.must("upload chunk", lambda: calls.raw(
            "upload chunk", "PUT", self._uri, (308,), data=data, allow_redirects=False,
            headers={"Content-Range": f"bytes {start}-{end}/*"}))
        if answer.headers.get("Range") != f"bytes=0-{end}":
            log.warning("GCS kept %s of a chunk ending at %d", answer.headers.get("Range"), end)
            raise BackendUnavailable()
        return start

    async def end(self) -> None:
        self._ending = True
        await self._parts.finish()

    async def commit(self) -> StoredBlob:
        if self._done:
            raise RuntimeError("the writer is finished")
        await self.end()
        total = self._parts.size
        # The last bytes and the total; with nothing left, the total alone finalizes.
        span = f"bytes {self._queued}-{total - 1}/{total}" if self._tail else f"bytes */{total}"
        calls, tail = self._store.calls, self._tail
        self._finalizing = True
        try:
            answer = await calls.must("finish upload", lambda: calls.raw(
                "finish upload", "PUT", self._uri, (200, 201), data=tail,
                headers={"Content-Range": span}))
        except BlobNotFound:  # the session expired or was cancelled under us
            raise BackendUnavailable() from None
        stored = int(answer.json().get("size", -1))
        if stored != total:
            log.error("GCS stored %d bytes of %d for %s", stored, total, self.key)
            raise BackendUnavailable()
        self._done = True
        return StoredBlob(self.key, total)

    async def abort(self) -> None:
        if self._done:
            return
        # A chunk still sending would land after the cancel: wait for them first.
        await self._parts.drain()
        self._done = True
        calls = self._store.calls
        try:
            await calls.run("cancel upload", lambda: calls.raw(
                "cancel upload", "DELETE", self._uri, CANCELLED), missing_ok=True)
            if self._finalizing:  # a final request that failed on our side may have landed
                await self._store.delete(self.key)
        except BackendUnavailable:
            # The store is down. An unfinished session is no object (Google drops it after a
            # week); but a final request may have made one: raise, so the upload keeps the
            # key's journal entry and the sweeper removes that orphan once the store is back.
            if self._finalizing:
                raise
            log.warning("GCS upload of %s not cancelled (store unavailable)", self.key)


class GcsBlobReader:
    """Implements ``BlobReader``: each ``iter_range`` is one streaming GET of exactly
    ``[start, end)`` of the generation seen at open, read in ``READ_CHUNK`` pieces on the
    pool. One GET, not one per piece: a DELETE while it streams does not cut the download
    short (GCS serves a request under way from the generation it began on)."""

    def __init__(self, store: GcsBlobStore, blob: Any, size: int) -> None:
        self.size = size
        self._store = store
        self._blob = blob  # pinned to its generation
        self._http: Any = store.calls.session  # what a test's probe may wrap to count bytes
        self._answers: set[requests.Response] = set()  # open downloads, closed by close()

    def _open(self, start: int, end: int) -> requests.Response:
        """The media GET of the JSON API, as the SDK's own download builds it; blocking."""
        calls, blob = self._store.calls, self._blob
        url = (f"{calls.base}/download/storage/v1/b/{quote(calls.bucket.name, safe='')}/o/"
               f"{quote(blob.name, safe='')}?alt=media&generation={blob.generation}")
        # identity: the stored bytes as they are, never transcoded (their length is known).
        answer: requests.Response = self._http.request(
            "GET", url, stream=True, timeout=TIMEOUT,
            headers={"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"})
        if answer.status_code != 206 and not (answer.status_code == 200 and start == 0
                                              and end == self.size):
            answer.close()
            raise GcsError("download", answer.status_code)
        return answer

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        if start >= end:
            return
        calls, name = self._store.calls, self._blob.name
        answer = await calls.must("download", partial(self._open, start, end))
        self._answers.add(answer)
        # iter_content turns urllib3's errors into requests' ones, which gcs_errors knows.
        pieces = answer.iter_content(READ_CHUNK)
        try:
            left = end - start
            while left > 0:
                piece = (await calls.must("download", lambda: next(pieces, b"")))[:left]
                if not piece:
                    log.error("GCS object %s ended %d bytes early", name, left)
                    raise BackendUnavailable()
                left -= len(piece)
                yield piece
        finally:
            await self._release(answer)

    async def _release(self, answer: requests.Response) -> None:
        """Return (or drop) the download's pooled connection; idempotent."""
        if answer in self._answers:
            self._answers.discard(answer)
            await self._store.calls.offload(answer.close)

    async def close(self) -> None:
        """Also ends a download whose iteration was abandoned (a client gone mid-way)."""
        for answer in list(self._answers):
            await self._release(answer)
