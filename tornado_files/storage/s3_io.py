"""One S3 object written as a multipart upload, and one read by ranged GETs.

Writing: a ``PartPipeline`` cuts the bytes into parts uploaded on the pool, at most two in
flight (back-pressure). Nothing is visible before ``CompleteMultipartUpload``; ``abort`` waits
for the parts in flight and then aborts the upload, so no part is left stored (and billed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, Any

from tornado_files.errors import BackendUnavailable, BlobNotFound
from tornado_files.models import StoredBlob
from tornado_files.storage.objects import READ_CHUNK
from tornado_files.storage.parts import PartPipeline
from tornado_files.storage.s3_settings import MAX_PARTS, part_size_for

if TYPE_CHECKING:
    from tornado_files.storage.s3 import S3BlobStore

log = logging.getLogger(__name__)


class S3BlobWriter:
    """Implements ``BlobWriter`` as one multipart upload (created in ``open``)."""

    def __init__(self, store: S3BlobStore, key: str, upload_id: str) -> None:
        self.key = key
        self._store = store
        self._object = store.object_key(key)
        self._upload_id = upload_id
        self._parts: PartPipeline[dict[str, Any]] = PartPipeline(
            lambda number: part_size_for(store.part_size, number), self._upload,
            max_parts=MAX_PARTS, too_large="The object is larger than S3 can store")
        self._done = False  # committed or aborted

    @classmethod
    async def open(cls, store: S3BlobStore, key: str) -> S3BlobWriter:
        answer = await store.calls.call("create upload", "create_multipart_upload",
                                        Key=store.object_key(key))
        return cls(store, key, str(answer["UploadId"]))

    async def write(self, chunk: bytes) -> None:
        await self._parts.write(chunk)

    async def _upload(self, number: int, data: bytes) -> dict[str, Any]:
        try:
            answer = await self._store.calls.call(
                "upload part", "upload_part", Key=self._object, UploadId=self._upload_id,
                PartNumber=number, Body=data)
        except BlobNotFound:  # the upload was aborted under us (a sweeper, an operator)
            raise BackendUnavailable() from None
        return {"PartNumber": number, "ETag": answer["ETag"]}

    async def end(self) -> None:
        # The last part may be short (S3 allows it); an empty object has no part at all.
        await self._parts.finish()

    async def commit(self) -> StoredBlob:
        if self._done:
            raise RuntimeError("the writer is finished")
        await self.end()
        calls = self._store.calls
        if not self._parts.landed:  # S3 refuses to complete an upload without parts
            await calls.call("put", "put_object", Key=self._object, Body=b"")
            await calls.call("abort upload", "abort_multipart_upload", missing_ok=True,
                             Key=self._object, UploadId=self._upload_id)
        else:
            try:
                await calls.call("complete upload", "complete_multipart_upload",
                                 Key=self._object, UploadId=self._upload_id,
                                 MultipartUpload={"Parts": self._parts.landed})
            except BlobNotFound:
                raise BackendUnavailable() from None
        self._done = True
        return StoredBlob(self.key, self._parts.size)

    async def abort(self) -> None:
        if self._done:
            return
        # A part still uploading would land after the abort and be stored again (S3: "you
        # might need to abort a given multipart upload multiple times"): wait for them first.
        await self._parts.drain()
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
