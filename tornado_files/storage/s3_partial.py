"""Partial blobs (tus) on S3, as numbered segment objects under ``<prefix>.partial/<key>/``.

An unfinished multipart upload cannot be read, nor a part cut short, so a partial is kept as
plain objects instead: segments ``00001``, ``00002`` … of ``part_size`` bytes each
(``part_size_for``: the same growth as parts), the last one possibly short. A short last
segment is read back by the next ``resume`` and rewritten as it grows (tusd's s3store keeps
its "incomplete part" the same way), so every segment but the last is a valid part size.
``finalize`` assembles the object server-side — one multipart upload with ``UploadPartCopy``
per segment, no byte through this server — and then deletes the segments. Any process on any
host continues a partial: everything about it is in the bucket.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from tornado_files.errors import BackendUnavailable, BlobNotFound, InternalError
from tornado_files.models import StoredBlob
from tornado_files.storage.objects import SegmentReader
from tornado_files.storage.parts import IN_FLIGHT
from tornado_files.storage.s3_settings import MAX_PARTS, part_size_for

if TYPE_CHECKING:
    from tornado_files.storage.s3 import S3BlobStore

log = logging.getLogger(__name__)
PARTIALS = ".partial/"


class Segments:
    """The segment objects of partials in one store."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store
        self.calls = store.calls

    def folder(self, key: str) -> str:
        return f"{self.store.prefix}{PARTIALS}{key}/"

    def name(self, key: str, index: int) -> str:
        return f"{self.folder(key)}{index:05d}"

    def size_of(self, index: int) -> int:
        return part_size_for(self.store.part_size, index)

    async def listing(self, key: str) -> list[dict[str, Any]]:
        """The segments of ``key`` in order (at most 10,000: a page per 1,000)."""
        found: list[dict[str, Any]] = []
        token: dict[str, Any] = {}
        while True:
            page = await self.calls.call("list segments", "list_objects_v2",
                                         Prefix=self.folder(key), **token)
            found += page.get("Contents", [])
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        found.sort(key=lambda item: item["Key"])
        for number, item in enumerate(found, 1):
            if item["Key"] != self.name(key, number):
                log.error("partial %s lacks segment %d", key, number)
                raise BackendUnavailable()
        return found

    async def put(self, key: str, index: int, data: bytes) -> None:
        if index > MAX_PARTS:
            raise BackendUnavailable("The upload is larger than S3 can store")
        await self.calls.call("put segment", "put_object", Key=self.name(key, index), Body=data)

    async def read(self, name: str, start: int, end: int) -> bytes:
        answer = await self.calls.call("read segment", "get_object", Key=name,
                                       Range=f"bytes={start}-{end - 1}")
        body = answer["Body"]
        try:
            data: bytes = await self.calls.run("read segment", partial(body.read, end - start))
        finally:
            body.close()
        return data

    async def drop(self, items: list[dict[str, Any]]) -> None:
        """Delete segments, the last first: a crash midway leaves a shorter, gapless run."""
        for item in reversed(items):
            await self.calls.call("delete segment", "delete_object", Key=item["Key"])

    # -- PartialBlobStore -----------------------------------------------------------------
    async def resume(self, key: str, offset: int) -> S3PartialWriter:
        items = await self.listing(key)
        if offset == 0:
            await self.drop(items)
            return S3PartialWriter(self, key, 1, 0, b"")
        start = 0
        for index, item in enumerate(items, 1):
            size = int(item["Size"])
            if start + size >= offset:
                await self.drop(items[index:])
                keep = offset - start
                full = keep >= self.size_of(index)  # then the next segment is a new one
                head = b""
                if keep < size or not full:  # read back only what is cut or continued
                    head = await self.read(item["Key"], 0, keep)
                    if len(head) != keep:
                        raise BlobNotFound()
                if keep < size:  # cut before returning: the bytes past offset are gone
                    await self.put(key, index, head)
                if full:
                    return S3PartialWriter(self, key, index + 1, offset, b"")
                return S3PartialWriter(self, key, index, start, head)
            start += size
        raise BlobNotFound()  # fewer bytes stored than the offset says

    async def open_reader(self, key: str, length: int) -> SegmentReader:
        items = await self.listing(key)
        return SegmentReader(self.read, [(i["Key"], int(i["Size"])) for i in items], length)

    async def finalize(self, key: str, length: int) -> StoredBlob:
        name = self.store.object_key(key)
        head = await self.calls.call("head", "head_object", missing_ok=True, Key=name)
        if head is None:
            items = await self.listing(key)
            stored = sum(int(i["Size"]) for i in items)
            if not items and length:
                raise BlobNotFound()
            if stored != length:
                raise InternalError(f"the partial blob holds {stored} bytes, not {length}")
            try:
                await self._assemble(name, items)
            except BlobNotFound:  # a racing finalizer finished first and took the segments
                head = await self.calls.call("head", "head_object", Key=name)
        if head is not None and int(head["ContentLength"]) != length:
            raise InternalError(f"the blob holds {head['ContentLength']} bytes, not {length}")
        await self.drop(await self.listing(key))
        return StoredBlob(key, length)

    async def _assemble(self, name: str, items: list[dict[str, Any]]) -> None:
        calls = self.calls
        if not items:
            await calls.call("put", "put_object", Key=name, Body=b"")
            return
        upload = await calls.call("create upload", "create_multipart_upload", Key=name)
        upload_id = upload["UploadId"]

        async def copy(number: int, item: dict[str, Any]) -> dict[str, Any]:
            answer = await calls.call(
                "copy segment", "upload_part_copy", Key=name, UploadId=upload_id,
                PartNumber=number, CopySource={"Bucket": calls.bucket, "Key": item["Key"]})
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        try:
            parts: list[dict[str, Any]] = []
            for first in range(0, len(items), IN_FLIGHT):
                batch = items[first:first + IN_FLIGHT]
                parts += await asyncio.gather(*(copy(first + n, item)
                                                for n, item in enumerate(batch, 1)))
            await calls.call("complete upload", "complete_multipart_upload", Key=name,
                             UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            await calls.call("abort upload", "abort_multipart_upload", missing_ok=True,
                             Key=name, UploadId=upload_id)
            raise


class S3PartialWriter:
    """Implements ``PartialWriter``: full segments go out as they fill (two at most in
    flight); ``settle`` writes the open, short one too — rewritten as it grows."""

    def __init__(self, segments: Segments, key: str, index: int, closed: int,
                 head: bytes) -> None:
        self._segments = segments
        self._key = key
        self._index = index  # the open segment's number
        self._closed = closed  # bytes in the segments before it
        self._buffer = bytearray(head)
        self._flying: list[asyncio.Task[None]] = []

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= (size := self._segments.size_of(self._index)):
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            self._flying.append(asyncio.ensure_future(
                self._segments.put(self._key, self._index, data)))
            self._index += 1
            self._closed += size
            while len(self._flying) >= IN_FLIGHT:
                await self._flying.pop(0)

    async def settle(self) -> int:
        while self._flying:
            await self._flying.pop(0)
        if self._buffer:
            await self._segments.put(self._key, self._index, bytes(self._buffer))
        return self._closed + len(self._buffer)

    async def close(self) -> None:
        flying, self._flying = self._flying, []
        await asyncio.gather(*flying, return_exceptions=True)
        self._buffer = bytearray()
