"""File content and derivative images: streamed with bounded memory, Range and conditional
requests (docs/api.md, docs/media.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tornado.iostream import StreamClosedError

from tornado_files import errors as e
from tornado_files.auth.principal import Scope
from tornado_files.auth.rules import check_read
from tornado_files.models import DERIVATIVE_KINDS
from tornado_files.names import content_disposition, inline_allowed
from tornado_files.ranges import decide, http_date, not_modified, strong_etag
from tornado_files.sniff import media_type_with_charset
from tornado_files.storage.base import RedirectStore
from tornado_files.web.base import ApiHandler

# Derivatives are replaced only when a file is processed again: browsers may keep them an
# hour without asking (a listing page shows many); ``private`` as they follow the file's
# access rules.
DERIVATIVE_CACHE_CONTROL = "private, max-age=3600"


@dataclass(frozen=True)
class Blob:
    """What a response needs to know about the stored bytes it sends."""

    storage: str
    key: str
    size: int
    sha256: str
    last_modified: datetime | None  # None: no Last-Modified, only the ETag
    media_type: str
    disposition: str
    cache_control: str | None = None


async def send_file(handler: ApiHandler, file_id: str) -> None:
    """The content of a file, ``disposition`` (``attachment`` or ``inline``) as asked."""
    services = handler.services
    record = await services.metadata.get(file_id)
    check_read(handler.principal, record.owner, services.config.auth.private_reads)
    disposition = handler.get_query_argument("disposition", "attachment")
    if disposition not in ("attachment", "inline"):
        raise e.InvalidParameter(detail="disposition must be 'attachment' or 'inline'",
                                 meta={"parameter": "disposition"})
    inline = disposition == "inline" and inline_allowed(record.mime_type)
    blob = Blob(record.storage, record.blob_key, record.size, record.sha256, record.added,
                media_type_with_charset(record.mime_type, record.type_os),
                content_disposition(record.filename, inline))
    store = services.blob_store(blob.storage)
    # HEAD is answered here as in proxy mode (headers, no bytes read): the signed URLs of S3
    # and GCS cover the method, so a HEAD sent on to one signed for GET would be refused.
    if isinstance(store, RedirectStore) and handler.request.method != "HEAD":
        url = await store.download_url(blob.key, blob.media_type, blob.disposition)
        if url is not None:
            redirect_blob(handler, blob, url)
            return
    await send_blob(handler, blob)


def redirect_blob(handler: ApiHandler, blob: Blob, url: str) -> None:
    """302 to ``url``, where the store serves the bytes (Range included) — unless the
    request's conditions say the client's copy is current: then the same 304 as proxy mode
    (RFC 9110 §13.2.2: conditions are evaluated before anything else, and the
    representation behind the redirect is the same one)."""
    etag = strong_etag(blob.sha256)
    if not_modified(handler.request.method or "GET", etag, blob.last_modified,
                    handler.request.headers):
        _validators(handler, blob, etag, 304)
        handler.finish()
        return
    # The URL expires, so the redirect is never cached.
    handler.set_header("Cache-Control", "private, no-store")
    handler.redirect(url, status=302)


def _validators(handler: ApiHandler, blob: Blob, etag: str, status: int) -> None:
    """The status and the headers every answer about the representation carries, a 304's
    included (RFC 9110 §15.4.5: the ETag and Last-Modified a 200 would have)."""
    handler.set_status(status)
    handler.set_header("ETag", etag)
    if blob.last_modified is not None:
        handler.set_header("Last-Modified", http_date(blob.last_modified))
    handler.set_header("Accept-Ranges", "bytes")
    if blob.cache_control is not None:
        handler.set_header("Cache-Control", blob.cache_control)


async def send_blob(handler: ApiHandler, blob: Blob) -> None:
    """Decide (pure, ``ranges.decide``), then render: headers, then the bytes in chunks, each
    flushed before the next is read so memory stays bounded whatever the size."""
    reader = await handler.services.blob_store(blob.storage).open_reader(blob.key)
    try:
        etag = strong_etag(blob.sha256)
        decision = decide(handler.request.method or "GET", blob.size, etag, blob.last_modified,
                          handler.request.headers)
        if decision.status == 416:
            raise e.RangeNotSatisfiable(meta={"size": blob.size})
        _validators(handler, blob, etag, decision.status)
        if decision.status == 304:
            handler.finish()
            return
        handler.set_header("Content-Type", blob.media_type)
        handler.set_header("X-Content-Type-Options", "nosniff")
        handler.set_header("Content-Disposition", blob.disposition)
        for name, value in decision.headers.items():
            handler.set_header(name, value)
        if handler.request.method == "HEAD":
            handler.finish()
            return
        try:
            async for chunk in reader.iter_range(decision.start, decision.end):
                handler.write(chunk)
                await handler.flush()
                handler.services.metrics.download_bytes.inc(len(chunk))
        except StreamClosedError:
            return  # the client went away; nothing to clean up on a read
        handler.finish()
    finally:
        await reader.close()


class ContentHandler(ApiHandler):
    """``/api/files/{id}/content``: GET and HEAD."""

    access = {"GET": Scope.READ}

    async def get(self, file_id: str) -> None:
        await send_file(self, file_id)


class DerivativeHandler(ApiHandler):
    """``/api/files/{id}/derivatives/{kind}``: GET and HEAD of a derivative image, inline,
    under the file's read rules; 404 for an unknown kind or one not made (yet)."""

    access = {"GET": Scope.READ}

    async def get(self, file_id: str, kind: str) -> None:
        services = self.services
        record = await services.metadata.get(file_id)
        check_read(self.principal, record.owner, services.config.auth.private_reads)
        derivative = record.derivative(kind) if kind in DERIVATIVE_KINDS else None
        if derivative is None:
            raise e.NotFound(detail=f"This file has no {kind} derivative"
                             if kind in DERIVATIVE_KINDS else
                             f"Derivatives are {', '.join(DERIVATIVE_KINDS)}")
        extension = "webp" if derivative.media_type == "image/webp" else "jpg"
        stem = record.filename.rsplit(".", 1)[0] or "file"
        # No Last-Modified: a derivative made again replaces it under the same URL at a time
        # the record does not keep; its ETag (its SHA-256) tells the versions apart.
        await send_blob(self, Blob(
            record.storage, derivative.key, derivative.size, derivative.sha256, None,
            derivative.media_type,
            content_disposition(f"{stem}-{kind}.{extension}", inline=True),
            DERIVATIVE_CACHE_CONTROL))
