"""Upload routes: multipart and raw bodies streamed into an UploadSession (docs/api.md)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from tornado_files import errors as e
from tornado_files.auth.principal import Scope
from tornado_files.hooks.precreate import pre_create
from tornado_files.ingest import build_record
from tornado_files.models import FileRecord
from tornado_files.multipart import MultipartBridge
from tornado_files.names import raw_upload_filename
from tornado_files.policy import UploadPolicy
from tornado_files.processing.prefer import preferred_wait, wait_for_jobs
from tornado_files.session import DEFAULT_DECLARED_TYPE, FilePart, UploadSession
from tornado_files.web import edge
from tornado_files.web.body import BodyHandler
from tornado_files.web.links import link_grant

RAW_FIELD = "body"
# Room an upload link's body has beyond its max_size: the multipart framing, part headers and
# a few small fields (the link's own data comes in its URL).
LINK_FRAMING_SLACK = 64 * 1024


class Sink(Protocol):
    async def feed(self, chunk: bytes) -> None: ...
    async def end(self) -> tuple[bool, dict[str, Any]]: ...


class RawSink:
    """A raw body is one file (docs/api.md, Raw body)."""

    def __init__(self, session: UploadSession, declared_type: str) -> None:
        self._session = session
        self._declared_type = declared_type

    async def feed(self, chunk: bytes) -> None:
        await self._session.feed(chunk)

    async def end(self) -> tuple[bool, dict[str, Any]]:
        await self._session.end_file(self._declared_type)
        return True, {}


class MultipartSink:
    def __init__(self, bridge: MultipartBridge) -> None:
        self._bridge = bridge

    async def feed(self, chunk: bytes) -> None:
        await self._bridge.feed(chunk)

    async def end(self) -> tuple[bool, dict[str, Any]]:
        return self._bridge.finish()


class UploadHandler(BodyHandler):
    """POST on an upload route. ``policy`` comes from the route table (``initialize``)."""

    access = {"POST": Scope.WRITE}

    policy: UploadPolicy
    session: UploadSession | None = None
    sink: Sink | None = None

    def initialize(self, policy: UploadPolicy) -> None:
        self.policy = policy
        self.link_data: dict[str, Any] = {}  # what an upload link adds to the upload's data
        # Serialises the parser against cleanup: a disconnect never aborts mid-write.
        self._lock = asyncio.Lock()

    async def prepare_request(self) -> None:
        if self.principal.source == "link":
            # An upload link: its max_size narrows the route's caps, its data joins the
            # upload's (docs/security.md).
            self.policy, self.link_data = link_grant(self.principal, self.policy,
                                                     LINK_FRAMING_SLACK)
        await super().prepare_request()

    def body_cap(self) -> int:
        return self.policy.max_body_size

    def upload_protocol(self) -> str | None:
        if self.request.method != "POST":
            return None
        return "multipart" if self._media_type() == "multipart/form-data" else "raw"

    def writes_file(self) -> bool:
        return True

    def _media_type(self) -> str:
        content_type = self.request.headers.get("Content-Type", "")
        return content_type.split(";", 1)[0].strip().lower()

    def too_large(self, declared: int | None, received: int) -> e.RequestTooLarge:
        return self.policy.body_too_large(declared, received)

    async def begin(self) -> None:
        services = self.services
        self.session = UploadSession(
            policy=self.policy,
            store=services.blob_store(self.policy.storage),
            intents=services.intents,
            sniffer=services.sniffer,
            offload=services.offload,
            sniff_bytes=services.config.sniff_bytes,
            declared_length=self.declared_length(),
            received=self.received,
            count_stored=services.metrics.stored(self.upload_protocol() or "raw"),
        )
        async with self._lock:  # a cleanup (timeout, disconnect) waits for the file it opens
            self.sink = await self._open_sink(self.session)

    async def _open_sink(self, session: UploadSession) -> Sink:
        media_type = self._media_type()
        if media_type == "multipart/form-data":
            edge.hand_over_reads(self.request, False)  # the parser takes bytes
            config = self.services.config
            bridge = MultipartBridge(self.request.headers, session, config.max_field_size,
                                     config.max_json_body, config.max_parts,
                                     config.max_part_header_size,
                                     before_file=lambda name, data: self._pre_create(
                                         name, None, data))
            return MultipartSink(bridge)
        if media_type == "application/x-www-form-urlencoded":
            raise e.UnsupportedMediaType(
                detail="A form-urlencoded body cannot carry a file: use multipart/form-data",
                meta={"allowed_mime_types": ["multipart/form-data", "application/octet-stream"],
                      "instance_mime_type": media_type},
            )
        declared = self.declared_length()
        if declared is not None and declared > self.policy.max_file_size:
            # A raw body is the file: its declared length is the file's (before any byte).
            raise self.policy.file_too_large(declared, 0)
        name = raw_upload_filename(
            self.request.headers.get("X-Filename"),
            self.request.headers.get("Content-Disposition"),
        )
        await self._pre_create(name or "unknown", declared, {})
        await session.start_file(RAW_FIELD, name or "unknown")
        return RawSink(session, media_type or DEFAULT_DECLARED_TYPE)

    async def _pre_create(self, filename: str, size: int | None, data: dict[str, Any]) -> None:
        """The ``upload.pre_create`` hook, before the file's first byte is stored."""
        await pre_create(self.services, route=self.policy.path, principal=self.principal.name,
                         filename=filename, size=size, data={**data, **self.link_data})

    async def consume(self, chunk: bytes) -> None:
        assert self.sink is not None  # begin() made it
        async with self._lock:
            await self.sink.feed(chunk)

    async def cleanup(self) -> None:
        if self.session is not None:
            async with self._lock:
                await self.session.abort()

    async def post(self, *_args: str) -> None:
        if self.failed or self.session is None or self.sink is None:
            return
        try:
            async with self._lock:
                single, data = await self.sink.end()
                parts = await self.session.commit()
                records = [self._record(part, data) for part in parts]
                await self.services.metadata.insert_many(records)
                await self.session.settle()
        except Exception as exc:
            await self.fail(exc)
            return
        self.count_upload("created")
        await self.services.events.files("file.created", records)
        if any(r.processing == "pending" for r in records):
            self.services.job_signals.queued()
            # Prefer: wait (RFC 7240): the 201 may carry the derivatives' URLs.
            records = await wait_for_jobs(self.services, records,
                                          preferred_wait(self.request.headers))
        if single:
            self.set_header("Location", f"/api/files/{records[0].id}")
            self.write_json(records[0].to_resource(), status=201)
        else:
            self.write_json({"files": [r.to_resource() for r in records]}, status=201)

    def _record(self, part: FilePart, data: dict[str, Any]) -> FileRecord:
        assert part.facts is not None
        assert part.blob is not None
        data = {**data, **self.link_data}
        origin = part.origin(self.policy.path, self.policy.storage, data, self.principal.name)
        return build_record(origin, part.facts, part.blob, derive=self.policy.derivatives)
