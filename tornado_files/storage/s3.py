"""Blobs in an S3 bucket (or MinIO, Ceph RGW, SeaweedFS): ``S3BlobStore`` with the core,
sweeping and a store marker, one object per blob under ``prefix + key``.

Writes are multipart uploads (s3_io.py). What a crash leaves is an unfinished multipart
upload, invisible to readers but stored and billed: ``startup`` aborts those quiet for longer
than ``stale_after``, and ``remove_traces`` (the sweeper) aborts those of a key it settles.
Partial blobs (tus) are segment objects under ``<prefix>.partial/<key>/`` (s3_partial.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from tornado_files.blocking import Offload
from tornado_files.config import ConfigError
from tornado_files.errors import BlobNotFound
from tornado_files.models import StoredBlob, utcnow
from tornado_files.storage import object_marker
from tornado_files.storage.objects import OUR_KEY, SegmentReader, our_key
from tornado_files.storage.s3_client import S3Calls, make_client
from tornado_files.storage.s3_io import S3BlobReader, S3BlobWriter
from tornado_files.storage.s3_partial import S3PartialWriter, Segments
from tornado_files.storage.s3_settings import S3Settings

log = logging.getLogger(__name__)
# Seconds a presigned download URL stays valid: long enough for a client to follow the 302,
# short so that a URL seen in a log or a history soon stops working.
URL_LIFETIME = 300
LIST_PAGE = 1000  # S3's own page size for listings
# Threads of the store's own pool (and connections of its client): eight uploads each with
# two parts in flight.
S3_THREADS = 16
# Keys this server generates (not gridfs_io's: importing it would load PyMongo).


class S3BlobStore:
    """Implements ``BlobStore``, ``PartialBlobStore``, ``SweepableStore``, ``RedirectStore``
    and the store marker (``MarkedStore``) on
    one bucket and prefix. ``client`` is a botocore S3 client (``make_client``) or None to make
    one from ``settings``; ``stale_after`` is in seconds; ``owns_pool``: ``close`` shuts
    ``offload`` down (a pool made for this store)."""

    place = "bucket"  # what holds it (store_identity.py's hints)

    def __init__(self, settings: S3Settings, offload: Offload, *, client: Any = None,
                 stale_after: float = 120.0, name: str = "s3", owns_pool: bool = False) -> None:
        self.name = name
        self.settings = settings
        self.prefix = settings.prefix
        self.part_size = settings.part_size
        self.stale_after = stale_after
        self.calls = S3Calls(client or make_client(settings, S3_THREADS), offload,
                             settings.bucket)
        self._owns_pool = owns_pool
        self.segments = Segments(self)

    def object_key(self, key: str) -> str:
        return self.prefix + key

    def unusable(self) -> ConfigError:
        """The one start-up line for a bucket that cannot be reached or written."""
        return ConfigError(f"cannot write to {self.where()}: check the endpoint, the bucket "
                           "and the AWS credentials")

    def where(self) -> str:
        endpoint = self.settings.endpoint or "AWS"
        return f"s3://{self.settings.bucket}/{self.prefix} at {endpoint}"

    # -- BlobStore ------------------------------------------------------------------------
    async def open_writer(self, key: str) -> S3BlobWriter:
        if not OUR_KEY.match(key):
            raise ValueError("blob keys are 32 lowercase hex characters")
        return await S3BlobWriter.open(self, key)

    async def open_reader(self, key: str) -> S3BlobReader:
        if not OUR_KEY.match(key):
            raise BlobNotFound()
        head = await self.calls.call("open", "head_object", Key=self.object_key(key))
        return S3BlobReader(self, self.object_key(key), int(head["ContentLength"]))

    async def delete(self, key: str) -> None:
        if OUR_KEY.match(key):  # S3 answers a missing key with success too
            await self.calls.call("delete", "delete_object", Key=self.object_key(key))

    async def download_url(self, key: str, media_type: str, disposition: str) -> str | None:
        """A presigned GET URL (``URL_LIFETIME`` seconds) whose answer carries the file's type
        and name (S3's ``response-content-type`` / ``response-content-disposition``), or None
        with ``download = "proxy"``. Signed locally: no request to S3."""
        if self.settings.download != "redirect":
            return None
        params = {"Bucket": self.settings.bucket, "Key": self.object_key(key),
                  "ResponseContentType": media_type,
                  "ResponseContentDisposition": disposition}
        client = self.calls.client
        url: str = await self.calls.run("sign", lambda: client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=URL_LIFETIME))
        return url

    async def ping(self) -> None:
        await object_marker.ping(self)

    async def read_small(self, name: str, limit: int) -> bytes | None:
        answer = await self.calls.call("read", "get_object", missing_ok=True, Key=name)
        if answer is None:
            return None
        body = answer["Body"]
        try:
            data: bytes = await self.calls.run("read", lambda: body.read(limit))
        finally:
            body.close()
        return data

    async def write_small(self, name: str, data: bytes) -> None:
        await self.calls.call("write", "put_object", Key=name, Body=data)

    async def startup(self) -> None:
        await object_marker.check_writable(self)
        await self.abort_stale_uploads(utcnow() - timedelta(seconds=self.stale_after))

    async def close(self) -> None:
        self.calls.client.close()
        if self._owns_pool:
            self.calls.offload.shutdown()

    # -- PartialBlobStore (s3_partial.py) -------------------------------------------------
    async def create_partial(self, key: str) -> None:
        our_key(key)  # an empty partial has no segments

    async def resume(self, key: str, offset: int) -> S3PartialWriter:
        return await self.segments.resume(our_key(key), offset)

    async def open_partial_reader(self, key: str, length: int) -> SegmentReader:
        return await self.segments.open_reader(our_key(key), length)

    async def finalize(self, key: str, length: int) -> StoredBlob:
        return await self.segments.finalize(our_key(key), length)

    async def discard_partial(self, key: str) -> None:
        """Only the segments: a finalized blob is another object, never touched here."""
        if OUR_KEY.match(key):
            await self.segments.drop(await self.segments.listing(key))

    # -- unfinished multipart uploads -----------------------------------------------------
    async def uploads(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        """Unfinished multipart uploads whose key starts with ``prefix``, a page at a time."""
        marker: dict[str, Any] = {}
        while True:
            page = await self.calls.call("list uploads", "list_multipart_uploads",
                                         Prefix=prefix, MaxUploads=LIST_PAGE, **marker)
            for upload in page.get("Uploads", []):
                yield upload
            if not page.get("IsTruncated"):
                return
            marker = {"KeyMarker": page["NextKeyMarker"],
                      "UploadIdMarker": page["NextUploadIdMarker"]}

    async def _last_change(self, upload: dict[str, Any]) -> datetime:
        """When the upload last changed: its newest part, else its initiation."""
        newest: datetime = upload["Initiated"]
        marker = 0
        while True:
            page = await self.calls.call("list parts", "list_parts", missing_ok=True,
                                         Key=upload["Key"], UploadId=upload["UploadId"],
                                         PartNumberMarker=marker)
            if page is None:
                return newest
            for part in page.get("Parts", []):
                newest = max(newest, part["LastModified"])
            if not page.get("IsTruncated"):
                return newest
            marker = int(page["NextPartNumberMarker"])

    async def _abort(self, upload: dict[str, Any]) -> None:
        await self.calls.call("abort upload", "abort_multipart_upload", missing_ok=True,
                              Key=upload["Key"], UploadId=upload["UploadId"])

    async def abort_stale_uploads(self, quiet_before: datetime) -> int:
        """Abort our unfinished uploads unchanged since before ``quiet_before`` (a crashed
        writer's, on any host); how many. Memory: one page of the listing."""
        aborted = 0
        async for upload in self.uploads(self.prefix):
            key = upload["Key"][len(self.prefix):]
            if OUR_KEY.fullmatch(key) and await self._last_change(upload) < quiet_before:
                await self._abort(upload)
                aborted += 1
        if aborted:
            log.info("aborted %d unfinished S3 uploads of crashed writers", aborted)
        return aborted

    # -- SweepableStore -------------------------------------------------------------------
    async def exists(self, key: str) -> bool:
        if not OUR_KEY.match(key):
            return False
        head = await self.calls.call("exists", "head_object", missing_ok=True,
                                     Key=self.object_key(key))
        return head is not None

    async def remove_traces(self, key: str, quiet_before: datetime) -> bool:
        if not OUR_KEY.match(key):
            return True
        name = self.object_key(key)
        head = await self.calls.call("head", "head_object", missing_ok=True, Key=name)
        if head is not None and head["LastModified"] >= quiet_before:
            return False
        ours = [u async for u in self.uploads(name) if u["Key"] == name]
        for upload in ours:
            if await self._last_change(upload) >= quiet_before:
                return False  # still streaming
        segments = await self.segments.listing(key)
        if any(item["LastModified"] >= quiet_before for item in segments):
            return False  # a tus upload still being written
        for upload in ours:
            await self._abort(upload)
        await self.segments.drop(segments)
        if head is not None:
            await self.calls.call("delete", "delete_object", Key=name)
        return True

    async def list_keys(self, after: str | None, limit: int) -> list[str]:
        keys: list[str] = []
        start = self.prefix + (after or "")
        token: dict[str, Any] = {}
        while len(keys) < limit:
            page = await self.calls.call(
                "list", "list_objects_v2", Prefix=self.prefix, StartAfter=start,
                MaxKeys=min(LIST_PAGE, limit - len(keys)), Delimiter="/", **token)
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                if OUR_KEY.fullmatch(key):
                    keys.append(key)
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        return keys[:limit]

    # -- MarkedStore (store_identity.py) --------------------------------------------------
    async def read_marker(self) -> str | None:
        return await object_marker.read_marker(self)

    async def write_marker(self, store_id: str) -> str:
        return await object_marker.write_marker(self, store_id)

    async def has_blobs(self) -> bool:
        return bool(await self.list_keys(None, 1))
