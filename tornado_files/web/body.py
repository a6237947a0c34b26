"""The request-body guard, for the handlers that take a body: counted, capped, timed.

Only handlers whose method carries content derive ``BodyHandler`` (uploads, tus creation and
PATCH, metadata changes); every other handler refuses a body outright (``web.base``). The guard
checks a declared ``Content-Length`` before any byte is read, counts what arrives against the
cap while it streams, and drops a body that stays silent for ``idle_timeout`` — silence of the
client only: time spent waiting for our own store does not count.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

from tornado.ioloop import IOLoop

from tornado_files import errors as e
from tornado_files.jsondata import parse_object
from tornado_files.web import edge
from tornado_files.web.base import ApiHandler

log = logging.getLogger("tornado_files.web")


class BodyHandler(ApiHandler):
    """Subclasses say how much they take (``body_cap``), what to do first (``begin``) and with
    each chunk (``consume``), and how to undo it (``cleanup``)."""

    _received = 0
    _busy = False
    _idle_timer: object | None = None
    _last_activity = 0.0
    _upload_counted = False
    _writing = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.services.in_flight.add(self)  # shutdown lets its clean-up run (Services.settle)

    def body_cap(self) -> int:
        return self.services.config.max_json_body

    def received(self) -> int:
        return self._received

    def too_large(self, declared: int | None, received: int) -> e.RequestTooLarge:
        return e.RequestTooLarge(meta={"maximum_content_length_allowed": self.body_cap(),
                                       "request_content_length": declared,
                                       "received": received})

    def idle_error(self) -> e.RequestTimeout:
        """The answer to a body that went silent (408; tus PATCH answers 503, see errors)."""
        return e.RequestTimeout()

    async def begin(self) -> None:
        """Called once the pre-checks passed, before any body byte."""

    async def consume(self, chunk: bytes) -> None:
        """One chunk of the body (awaited: back-pressure)."""

    # -- uploads (metrics) ---------------------------------------------------------------
    def upload_protocol(self) -> str | None:
        """The protocol of the upload this request is (``tornado_files_uploads_total``), or
        None: upload routes and tus creation say, other bodies are no upload."""
        return None

    def writes_file(self) -> bool:
        """Whether this request writes file content (``tornado_files_active_uploads``)."""
        return False

    def count_upload(self, outcome: str) -> None:
        """Count this request's upload as ended with ``outcome``, once (the first wins)."""
        protocol = self.upload_protocol()
        if protocol is not None and not self._upload_counted:
            self._upload_counted = True
            self.services.metrics.upload_ended(protocol, outcome)

    def _count_writing(self, writing: bool) -> None:
        if writing != self._writing:
            self._writing = writing
            self.services.metrics.active_uploads.inc(1 if writing else -1)

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        super().log_exception(typ, value, tb)
        # A body that went silent was left by its client; any other error refused the upload.
        self.count_upload("aborted" if isinstance(value, e.RequestTimeout) else "rejected")

    def on_connection_close(self) -> None:
        self.count_upload("aborted")
        super().on_connection_close()

    # -- Tornado hooks ------------------------------------------------------------------
    def ready_for_body(self) -> None:
        edge.hand_over_reads(self.request, True)  # the connection's last request may have said no

    async def prepare_request(self) -> None:
        self.open_body_limit()
        declared = self.declared_length()
        if declared is not None and declared > self.body_cap():
            raise self.too_large(declared, 0)
        self._touch()
        self._schedule_idle_check()
        # Time our own store takes in begin() (opening the first file) is not the client's
        # silence: a slow open must not become a 408 that aborts a session mid-open.
        self._count_writing(self.writes_file())
        self._busy = True
        try:
            await self.begin()
        finally:
            self._busy = False
            self._touch()

    async def data_received(self, chunk: bytes) -> None:  # type: ignore[override]
        if self._failed:
            self.discard(len(chunk))
            return
        self._received += len(chunk)
        self._touch()
        self._busy = True
        try:
            if self._received > self.body_cap():
                raise self.too_large(self.declared_length(), self._received)
            await self.consume(chunk)
        except Exception as exc:  # raising here would drop the connection without an answer
            await self.fail(exc)
        finally:
            self._busy = False

    # -- idle body timeout --------------------------------------------------------------
    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _schedule_idle_check(self) -> None:
        timeout = self.services.config.idle_timeout
        self._idle_timer = IOLoop.current().call_later(min(timeout, 5.0), self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if edge.finished(self) or self._failed or edge.body_complete(self.request):
            return
        timeout = self.services.config.idle_timeout
        if self._busy or time.monotonic() - self._last_activity < timeout:
            self._schedule_idle_check()
            return
        log.info("request body idle for %ss: dropping %s %s", timeout, self.request.method,
                 self.request.path)
        IOLoop.current().add_callback(self.fail, self.idle_error(), linger=False)

    def stop_timers(self) -> None:
        super().stop_timers()
        self._count_writing(False)  # answered, or the connection went
        if self._idle_timer is not None:
            IOLoop.current().remove_timeout(self._idle_timer)
            self._idle_timer = None


class JsonBodyHandler(BodyHandler):
    """A small JSON object as the body, within ``max_json_body``."""

    _body: bytearray

    async def begin(self) -> None:
        self._body = bytearray()

    async def consume(self, chunk: bytes) -> None:
        self._body += chunk

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object (``jsondata.parse_object``: 400 ``invalid_json``)."""
        return parse_object(bytes(self._body), "The request body")
