"""tus 1.0.0 at ``/api/tus/`` (docs/api.md, Resumable uploads): core, creation,
creation-with-upload, termination, checksum, expiration. The protocol's headers are parsed in
``tus_protocol``; uploads move in ``resumable``; this module is only HTTP. One handler per kind
of request: discovery (OPTIONS), creation (POST, maybe with the first chunk), the upload's state
(HEAD, DELETE), appends (PATCH)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tornado_files import errors as e
from tornado_files import tus_protocol as tus
from tornado_files.appends import Append
from tornado_files.auth.principal import Scope
from tornado_files.auth.rules import check_owner
from tornado_files.models import UploadState
from tornado_files.ranges import http_date
from tornado_files.resumable import Resumable
from tornado_files.web.access import authorize
from tornado_files.web.base import ApiHandler
from tornado_files.web.body import BodyHandler


class TusHandler(ApiHandler):
    """What every tus handler shares: the resumable service and the protocol's headers."""

    resumable: Resumable

    def initialize(self, resumable: Resumable) -> None:
        self.resumable = resumable

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Tus-Resumable", tus.VERSION)
        self.set_header("Cache-Control", "no-store")

    def compute_etag(self) -> None:
        return None  # tus answers have no body; an ETag of nothing would make HEAD 304

    def creator_only(self, scope: Scope = Scope.WRITE) -> Callable[[str | None, bool], None]:
        """The check ``Resumable`` runs on the upload it reads: only its creator (or an admin)
        may HEAD, PATCH or DELETE it; deleting a finished one deletes a file, which needs
        ``delete`` too."""
        def allow(owner: str | None, finished: bool) -> None:
            check_owner(self.principal, owner,
                        Scope.DELETE if finished and scope is Scope.DELETE else Scope.WRITE)
        return allow

    def respond(self, status: int, headers: dict[str, str]) -> None:
        """An answer with no body: the protocol's headers only (no Content-Type)."""
        for name, value in headers.items():
            self.set_header(name, value)
        self.clear_header("Content-Type")
        self.set_status(status)
        self.finish()


class TusBodyHandler(TusHandler, BodyHandler):
    """A tus request that may carry a chunk: streamed into an ``Append`` under its lease."""

    append: Append | None = None
    # What an error makes of this request's bytes (see fail).
    _outcome = "discard"

    def initialize(self, resumable: Resumable) -> None:
        super().initialize(resumable)
        # Serialises appends against cleanup: a disconnect never discards mid-write.
        self._lock = asyncio.Lock()

    def body_cap(self) -> int:
        return self.append.remaining if self.append is not None else super().body_cap()

    def too_large(self, declared: int | None, received: int) -> e.RequestTooLarge:
        if self.append is None:
            return super().too_large(declared, received)
        return e.RequestTooLarge(
            detail="The chunk goes past Upload-Length",
            meta={"maximum_content_length_allowed": self.append.remaining,
                  "request_content_length": declared, "received": received})

    def idle_error(self) -> e.RequestTimeout:
        return e.StalledAppend()

    def writes_file(self) -> bool:
        return self.append is not None

    async def start_append(self, upload_id: str, offset: int) -> None:
        checksum = tus.parse_checksum(self.request.headers.get("Upload-Checksum"))
        self.append = await self.resumable.begin(upload_id, offset, checksum,
                                                 self.creator_only())

    async def consume(self, chunk: bytes) -> None:
        if self.append is None:
            return  # a creation request without a chunk: its (small) body is ignored
        async with self._lock:
            await self.append.feed(chunk)

    async def fail(self, exc: BaseException, *, linger: bool = True) -> None:
        # A disallowed type ends the whole upload, not just this chunk (docs/api.md); a body
        # that went silent keeps what reached storage, as a disconnect does; any other error
        # discards this chunk.
        if isinstance(exc, e.UnsupportedMediaType):
            self._outcome = "terminate"
        elif isinstance(exc, e.StalledAppend):
            self._outcome = "keep"
        await super().fail(exc, linger=linger)

    async def cleanup(self) -> None:
        append = self.append
        if append is None:
            return
        outcome = self._outcome if self.failed else "keep"  # not failed: the client vanished
        async with self._lock:
            if outcome == "terminate":
                await append.discard()
                await self.resumable.terminate(append.state.id, outcome="rejected")
            elif outcome == "discard":
                await append.discard()
            else:
                await append.interrupted()

    async def finish_append(self) -> dict[str, str]:
        """The body is in: advance (and maybe complete); the headers to answer with."""
        assert self.append is not None
        async with self._lock:
            state = await self.append.finish()
        return {"Upload-Offset": str(state.offset), "Upload-Expires": http_date(state.expires)}


class TusDiscoveryHandler(TusHandler):
    """``OPTIONS /api/tus/``: the server's tus capabilities (and the CORS preflight)."""

    def options(self, *_args: str) -> None:
        route = self.get_query_argument("route", None)
        for name, value in tus.options_headers(self.resumable.policy_for(route)
                                               .max_file_size).items():
            self.set_header(name, value)
        super().options()


class TusCreationHandler(TusBodyHandler):
    """``POST /api/tus/``: creation, and creation-with-upload when a chunk comes along."""

    access = {"POST": Scope.WRITE}

    created: UploadState

    async def prepare_request(self) -> None:
        tus.check_version(self.request.headers.get("Tus-Resumable"))
        if "Upload-Defer-Length" in self.request.headers:
            raise e.InvalidParameter(detail="Upload-Defer-Length is not supported",
                                     meta={"parameter": "Upload-Defer-Length"})
        length = tus.parse_length(self.request.headers.get("Upload-Length"), "Upload-Length")
        metadata = tus.parse_metadata(self.request.headers.get("Upload-Metadata"))
        # Every header is judged before the upload exists: a refusal leaves nothing.
        tus.parse_checksum(self.request.headers.get("Upload-Checksum"))
        declared = self.declared_length()
        if self._carries_chunk() and declared is not None and declared > length:
            raise e.RequestTooLarge(  # refused before anything is created
                detail="The chunk goes past Upload-Length",
                meta={"maximum_content_length_allowed": length,
                      "request_content_length": declared, "received": 0})
        self.created = await self.resumable.create(length, metadata, owner=self.principal.name)
        if self._carries_chunk():
            await self.start_append(self.created.id, 0)
        await super().prepare_request()

    async def fail(self, exc: BaseException, *, linger: bool = True) -> None:
        # A chunk that goes past the Upload-Length it came with (chunked, so it could not be
        # refused up front) makes an upload no client can finish: it is ended, as the same
        # request with a Content-Length is refused before anything exists.
        if isinstance(exc, e.RequestTooLarge):
            self._outcome = "terminate"
        await super().fail(exc, linger=linger)

    def upload_protocol(self) -> str | None:
        # Until the upload exists, an error refuses it; after, it has a life of its own.
        return "tus" if getattr(self, "created", None) is None else None

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # Once the upload exists, every answer names it — an error too (a chunk that stalled
        # is kept, and the client resumes at this address).
        created = getattr(self, "created", None)
        if created is not None and self._outcome != "terminate":
            self.set_header("Location", f"/api/tus/{created.id}")

    def _carries_chunk(self) -> bool:
        headers = self.request.headers
        typed = headers.get("Content-Type", "").split(";")[0].strip() == tus.CHUNK_TYPE
        return typed and ((self.declared_length() or 0) > 0 or "Transfer-Encoding" in headers)

    async def post(self) -> None:
        if self.failed:
            return
        headers = {"Location": f"/api/tus/{self.created.id}",
                   "Upload-Expires": http_date(self.created.expires)}
        if self.append is not None:
            try:
                headers.update(await self.finish_append())
            except Exception as exc:
                await self.fail(exc)
                return
        self.respond(201, headers)


class TusUploadHandler(TusHandler):
    """``HEAD /api/tus/{id}`` (the offset) and ``DELETE`` (termination): the creator's (or
    an admin's), checked once the upload's state is read."""

    access = {"HEAD": Scope.WRITE, "DELETE": Scope.WRITE}

    async def prepare_request(self) -> None:
        tus.check_version(self.request.headers.get("Tus-Resumable"))
        await super().prepare_request()

    async def head(self, upload_id: str) -> None:  # type: ignore[override]
        # A finished upload is reported complete (a client whose last PATCH's answer was lost
        # learns it is done), but only once its file exists: a completing one is finished
        # first, and a failure there is the answer (503), never a premature "complete".
        state = await self.resumable.progress(upload_id, self.creator_only())
        headers = {"Upload-Offset": str(state.offset), "Upload-Length": str(state.length)}
        if state.offset < state.length:
            headers["Upload-Expires"] = http_date(state.expires)
        self.respond(200, headers)

    async def delete(self, upload_id: str) -> None:
        await self.resumable.terminate(upload_id, self.creator_only(Scope.DELETE))
        self.respond(204, {})


class TusPatchHandler(TusBodyHandler):
    """``PATCH /api/tus/{id}``: one chunk at the upload's offset, under its lease."""

    access = {"PATCH": Scope.WRITE}

    async def prepare_request(self) -> None:
        tus.check_version(self.request.headers.get("Tus-Resumable"))
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type != tus.CHUNK_TYPE:
            raise e.UnsupportedMediaType(
                detail=f"PATCH bodies must be {tus.CHUNK_TYPE}",
                meta={"allowed_mime_types": [tus.CHUNK_TYPE], "instance_mime_type": content_type})
        offset = tus.parse_length(self.request.headers.get("Upload-Offset"), "Upload-Offset")
        await self.start_append(self.path_args[0], offset)
        await super().prepare_request()

    async def patch(self, upload_id: str) -> None:
        if self.failed:
            return
        try:
            if self.append is not None and self.append.completes:
                # The grant is checked again at completion: a credential that expired, or a
                # principal that lost the upload, while a long PATCH ran cannot finish it.
                self.principal = authorize(self.access, self.services.auth, self.request)
                check_owner(self.principal, self.append.state.owner, Scope.WRITE)
            headers = await self.finish_append()
        except Exception as exc:
            await self.fail(exc)
            return
        self.respond(204, headers)
