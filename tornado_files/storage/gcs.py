"""Blobs in a Google Cloud Storage bucket: ``GcsBlobStore`` with the core, partial blobs,
sweeping, signed-URL redirects and a store marker, one object per blob under ``prefix + key``.

Writes are resumable upload sessions (gcs_io.py). What a crash leaves is an unfinished
session: it is no object — nothing lists it, reads it or bills it as one — and Google drops
it a week after it began (cloud.google.com/storage/docs/resumable-uploads), so there is
nothing for ``startup`` to abort, unlike S3's multipart uploads. Partial blobs (tus) are
segment objects under ``<prefix>.partial/<key>/`` (gcs_partial.py); the sweeper removes a
settled key's segments and orphan object.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from tornado_files.blocking import Offload
from tornado_files.config import ConfigError
from tornado_files.errors import BlobNotFound
from tornado_files.models import StoredBlob
from tornado_files.storage import object_marker
from tornado_files.storage.gcs_client import RETRY, TIMEOUT, GcsCalls, make_client
from tornado_files.storage.gcs_io import GcsBlobReader, GcsBlobWriter
from tornado_files.storage.gcs_partial import GcsPartialWriter, Segments
from tornado_files.storage.gcs_settings import GcsSettings, credentials_from, emulator_endpoint
from tornado_files.storage.objects import OUR_KEY, SegmentReader, our_key

log = logging.getLogger(__name__)
URL_LIFETIME = 300  # seconds a signed download URL stays valid (as S3's presigned URLs)
LIST_PAGE = 1000  # GCS's own largest page for listings
GCS_THREADS = 16  # eight uploads each with two chunks in flight


class GcsBlobStore:
    """Implements ``BlobStore``, ``PartialBlobStore``, ``SweepableStore``, ``RedirectStore``
    and the store marker on one bucket and prefix. Credentials come from ``environ``
    (``credentials_from``; raises ``ConfigError`` with one line when there are none, or none
    that can sign for ``download = "redirect"``); ``owns_pool``: ``close`` shuts ``offload``."""

    place = "bucket"  # what holds it (store_identity.py's hints)

    def __init__(self, settings: GcsSettings, offload: Offload, *,
                 environ: Mapping[str, str] | None = None, name: str = "gcs",
                 owns_pool: bool = False) -> None:
        self.name = name
        self.settings = settings
        self.prefix = settings.prefix
        self.part_size = settings.part_size
        environ = os.environ if environ is None else environ
        try:
            self.creds = credentials_from(settings, environ)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.endpoint = emulator_endpoint(settings, environ)
        client, session = make_client(settings, self.creds, self.endpoint, GCS_THREADS)
        self.calls = GcsCalls(client, session, offload, settings.bucket, self.endpoint)
        self.segments = Segments(self)
        self._owns_pool = owns_pool

    def object_key(self, key: str) -> str:
        return self.prefix + key

    def _blob(self, key: str) -> Any:
        return self.calls.bucket.blob(self.object_key(key))

    def unusable(self) -> ConfigError:
        """The one start-up line for a bucket that cannot be reached or written."""
        return ConfigError(f"cannot write to {self.where()}: check the endpoint, the bucket "
                           "and the Google credentials (GOOGLE_APPLICATION_CREDENTIALS)")

    def where(self) -> str:
        return f"gs://{self.settings.bucket}/{self.prefix} at {self.endpoint or 'Google'}"

    # -- BlobStore ------------------------------------------------------------------------
    async def open_writer(self, key: str) -> GcsBlobWriter:
        if not OUR_KEY.match(key):
            raise ValueError("blob keys are 32 lowercase hex characters")
        return await GcsBlobWriter.open(self, key)

    async def open_reader(self, key: str) -> GcsBlobReader:
        head = await self.segments.head(self.object_key(our_key(key)))
        if head is None:
            raise BlobNotFound()
        pinned = self.calls.bucket.blob(head.name, generation=head.generation)
        return GcsBlobReader(self, pinned, int(head.size))

    async def delete(self, key: str) -> None:
        if OUR_KEY.match(key):
            blob = self._blob(key)
            await self.calls.run("delete", lambda: blob.delete(retry=RETRY, timeout=TIMEOUT),
                                 missing_ok=True)

    async def download_url(self, key: str, media_type: str, disposition: str) -> str | None:
        """A V4 signed GET URL (``URL_LIFETIME`` seconds) whose answer carries the file's type
        and name (``response-content-type`` / ``response-content-disposition``), or None with
        ``download = "proxy"``. Signed locally with the service account's key."""
        if self.settings.download != "redirect":
            return None
        blob, signer, base = self._blob(key), self.creds.signer, self.calls.base
        url: str = await self.calls.must("sign", lambda: blob.generate_signed_url(
            version="v4", expiration=timedelta(seconds=URL_LIFETIME), method="GET",
            response_type=media_type, response_disposition=disposition,
            credentials=signer, api_access_endpoint=base))
        return url

    async def ping(self) -> None:
        await object_marker.ping(self)

    async def startup(self) -> None:
        await object_marker.check_writable(self)

    async def read_small(self, name: str, limit: int) -> bytes | None:
        blob = self.calls.bucket.blob(name)
        data = await self.calls.run("read", lambda: blob.download_as_bytes(
            start=0, end=limit - 1, raw_download=True, checksum=None, retry=RETRY,
            timeout=TIMEOUT), missing_ok=True)
        return None if data is None else bytes(data)

    async def write_small(self, name: str, data: bytes) -> None:
        blob = self.calls.bucket.blob(name)
        await self.calls.must("write", lambda: blob.upload_from_string(
            data, content_type="text/plain", retry=RETRY, timeout=TIMEOUT))

    async def close(self) -> None:
        self.calls.client.close()
        self.calls.session.close()
        if self._owns_pool:
            self.calls.offload.shutdown()

    # -- PartialBlobStore (gcs_partial.py) ------------------------------------------------
    async def create_partial(self, key: str) -> None:
        our_key(key)  # an empty partial has no segments

    async def resume(self, key: str, offset: int) -> GcsPartialWriter:
        return await self.segments.resume(our_key(key), offset)

    async def open_partial_reader(self, key: str, length: int) -> SegmentReader:
        return await self.segments.open_reader(our_key(key), length)

    async def finalize(self, key: str, length: int) -> StoredBlob:
        return await self.segments.finalize(our_key(key), length)

    async def discard_partial(self, key: str) -> None:
        """Only the segments: a finalized blob is another object, never touched here."""
        if OUR_KEY.match(key):
            await self.segments.drop(await self.segments.everything(key))

    # -- SweepableStore -------------------------------------------------------------------
    async def exists(self, key: str) -> bool:
        if not OUR_KEY.match(key):
            return False
        return await self.segments.head(self.object_key(key)) is not None

    async def remove_traces(self, key: str, quiet_before: datetime) -> bool:
        """The object and the partial's folder; an unfinished resumable session cannot be
        found (GCS lists none) and is no object: Google drops it after a week."""
        if not OUR_KEY.match(key):
            return True
        head = await self.segments.head(self.object_key(key))
        if head is not None and head.updated >= quiet_before:
            return False
        folder = await self.segments.everything(key)
        if any(blob.updated >= quiet_before for blob in folder):
            return False  # a tus upload still being written
        await self.segments.drop(folder)
        if head is not None:
            await self.delete(key)
        return True

    async def list_keys(self, after: str | None, limit: int) -> list[str]:
        if limit <= 0:
            return []
        start = self.prefix + (after or "")
        calls, prefix = self.calls, self.prefix

        def page() -> list[str]:
            keys: list[str] = []
            # Pages of at most LIST_PAGE names from ``start`` on (GCS's startOffset is
            # inclusive); the iterator holds one page at a time.
            for blob in calls.client.list_blobs(
                    calls.bucket, prefix=prefix, delimiter="/", start_offset=start,
                    page_size=min(LIST_PAGE, limit), retry=RETRY, timeout=TIMEOUT):
                name = str(blob.name)
                if name <= start:
                    continue
                key = name[len(prefix):]
                if OUR_KEY.fullmatch(key):
                    keys.append(key)
                    if len(keys) >= limit:
                        break
            return keys

        return await self.calls.must("list", page)

    # -- MarkedStore (store_identity.py) --------------------------------------------------
    async def read_marker(self) -> str | None:
        return await object_marker.read_marker(self)

    async def write_marker(self, store_id: str) -> str:
        return await object_marker.write_marker(self, store_id)

    async def has_blobs(self) -> bool:
        return bool(await self.list_keys(None, 1))
