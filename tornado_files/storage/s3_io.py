"""One S3 object written as a multipart upload, and one read by ranged GETs.

Writing: bytes gather in a buffer until a part is full; the part is uploaded on the pool
while the next fills; with two parts in flight ``write`` waits for the older one
(back-pressure: at most ``part_size`` buffered plus two parts in flight per upload).
Nothing is visible before ``CompleteMultipartUpload``; ``abort`` waits for the parts in
flight and then aborts the upload, so no part is left stored (and billed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, Any

from tornado_files.errors import BackendUnavailable, BlobNotFound
from tornado_files.models import StoredBlob
from tornado_files.storage.s3_settings import MAX_PARTS, part_size_for

if TYPE_CHECKING:
    from tornado_files.storage.s3 import S3BlobStore

log = logging.getLogger(__name__)
IN_FLIGHT = 2  # parts uploading at once per upload (API.md §11)
READ_CHUNK = 1024 * 1024  # bytes handed to the client at a time


class S3BlobWriter:
    """Implements ``BlobWriter`` as one multipart upload (created in ``open``)."""

    def __init__(self, store: S3BlobStore, key: str, upload_id: str) -> None:
        self.key = key
        self._store = store
        self._object = store.object_key(key)
        self._upload_id = upload_id
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._flying: list[asyncio.Task[dict[str, Any]]] = []
        self._size = 0
        self._ended = False
        self._done = False  # committed or aborted

    @classmethod
    async def open(cls, store: S3BlobStore, key: str) -> S3BlobWriter:
        answer = await store.calls.call("create upload", "create_multipart_upload",
                                        Key=store.object_key(key))
        return cls(store, key, str(answer["UploadId"]))

    def _next_size(self) -> int:
        return part_size_for(self._store.part_size, len(self._parts) + len(self._flying) + 1)

    async def write(self, chunk: bytes) -> None:
        if self._ended:
            raise RuntimeError("write after end")
        self._buffer += chunk
        self._size += len(chunk)
        while len(self._buffer) >= (size := self._next_size()):
            part = bytes(self._buffer[:size])
            del self._buffer[:size]
            await self._send(part)

    async def _send(self, data: bytes) -> None:
        number = len(self._parts) + len(self._flying) + 1
        if number > MAX_PARTS:
            raise BackendUnavailable("The object is larger than S3 can store")
        self._flying.append(asyncio.ensure_future(self._upload(number, data)))
        while len(self._flying) >= IN_FLIGHT:
            await self._land_oldest()

    async def _upload(self, number: int, data: bytes) -> dict[str, Any]:
        try:
            answer = await self._store.calls.call(
                "upload part", "upload_part", Key=self._object, UploadId=self._upload_id,
                PartNumber=number, Body=data)
        except BlobNotFound:  # the upload was aborted under us (a sweeper, an operator)
            raise BackendUnavailable() from None
        return {"PartNumber": number, "ETag": answer["ETag"], "Size": len(data)}

    async def _land_oldest(self) -> None:
        task = self._flying[0]
        try:
            part = await task
        finally:
            self._flying.remove(task)
        self._parts.append(part)

    async def end(self) -> None:
        if self._ended and not self._flying and not self._buffer:
            return
        self._ended = True
        # The last part may be short (S3 allows it); an empty object has no part at all.
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer = bytearray()
            await self._send(data)
        while self._flying:
            await self._land_oldest()

    async def commit(self) -> StoredBlob:
        if self._done:
            raise RuntimeError("the writer is finished")
        await self.end()
        calls = self._store.calls
        if not self._parts:  # S3 refuses to complete an upload without parts
            await calls.call("put", "put_object", Key=self._object, Body=b"")
            await calls.call("abort upload", "abort_multipart_upload", missing_ok=True,
                             Key=self._object, UploadId=self._upload_id)
        else:
            parts = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in self._parts]
            try:
                await calls.call("complete upload", "complete_multipart_upload",
                                 Key=self._object, UploadId=self._upload_id,
                                 MultipartUpload={"Parts": parts})
            except BlobNotFound:
                raise BackendUnavailable() from None
        self._done = True
        return StoredBlob(self.key, self._size)

    async def abort(self) -> None:
        if self._done:
            return
        self._ended = True
        self._buffer = bytearray()
        # A part still uploading would land after the abort and be stored again (S3: "you
        # might need to abort a given multipart upload multiple times"): wait for them first.
        flying, self._flying = self._flying, []
        await asyncio.gather(*flying, return_exceptions=True)
        await self._store.calls.call("abort upload", "abort_multipart_upload", missing_ok=True,
                                     Key=self._object, UploadId=self._upload_id)
        self._done = True


class S3BlobReader:
    """Implements ``BlobReader``: each ``iter_range`` is one ranged GET, read in
    ``READ_CHUNK`` pieces on the pool (bytes before ``start`` never leave the store)."""

    def __init__(self, store: S3BlobStore, object_key: str, size: int) -> None:
        self.size = size
        self._store = store
        self._object = object_key
        self._client = store.calls.client  # what a test's probe may wrap to count bytes

    async def iter_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        if start >= end:
            return
        calls = self._store.calls
        answer = await calls.run("get", lambda: self._client.get_object(
            Bucket=calls.bucket, Key=self._object, Range=f"bytes={start}-{end - 1}"))
        body = answer["Body"]
        try:
            left = end - start
            while left > 0:
                want = min(READ_CHUNK, left)
                piece: bytes = await calls.run("read", partial(body.read, want))
                if not piece:
                    log.error("S3 object %s ended %d bytes early", self._object, left)
                    raise BackendUnavailable()
                left -= len(piece)
                yield piece
        finally:
            body.close()

    async def close(self) -> None:
        return None
