"""File content: streamed with bounded memory, Range and conditional requests (docs/api.md)."""

from __future__ import annotations

from tornado.iostream import StreamClosedError

from tornado_files import errors as e
from tornado_files.auth.principal import Scope
from tornado_files.auth.rules import check_read
from tornado_files.names import content_disposition, inline_allowed
from tornado_files.ranges import decide, http_date, strong_etag
from tornado_files.sniff import media_type_with_charset
from tornado_files.web.base import ApiHandler


async def send_file(handler: ApiHandler, file_id: str) -> None:
    """Decide (pure, ``ranges.decide``), then render: headers, then the bytes in chunks, each
    flushed before the next is read so memory stays bounded whatever the size."""
    services = handler.services
    record = await services.metadata.get(file_id)
    check_read(handler.principal, record.owner, services.config.auth.private_reads)
    disposition = handler.get_query_argument("disposition", "attachment")
    if disposition not in ("attachment", "inline"):
        raise e.InvalidParameter(detail="disposition must be 'attachment' or 'inline'",
                                 meta={"parameter": "disposition"})
    reader = await services.blob_store(record.storage).open_reader(record.blob_key)
    try:
        etag = strong_etag(record.sha256)
        decision = decide(handler.request.method or "GET", record.size, etag, record.added,
                          handler.request.headers)
        if decision.status == 416:
            raise e.RangeNotSatisfiable(meta={"size": record.size})
        handler.set_status(decision.status)
        handler.set_header("ETag", etag)
        handler.set_header("Last-Modified", http_date(record.added))
        handler.set_header("Accept-Ranges", "bytes")
        if decision.status == 304:
            handler.finish()
            return
        inline = disposition == "inline" and inline_allowed(record.mime_type)
        media_type = media_type_with_charset(record.mime_type, record.type_os)
        handler.set_header("Content-Type", media_type)
        handler.set_header("X-Content-Type-Options", "nosniff")
        handler.set_header("Content-Disposition", content_disposition(record.filename, inline))
        for name, value in decision.headers.items():
            handler.set_header(name, value)
        if handler.request.method == "HEAD":
            handler.finish()
            return
        try:
            async for chunk in reader.iter_range(decision.start, decision.end):
                handler.write(chunk)
                await handler.flush()
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
