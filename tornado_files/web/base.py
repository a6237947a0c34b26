"""The base of every handler: services, CORS, JSON, and the one exit every error leaves by.

Handlers that take a body derive ``web.body.BodyHandler``; every other handler takes none: a
request that declares one is answered 413 (``maximum_content_length_allowed: 0``) before any of
it is read. Every handler streams (``@stream_request_body``) so Tornado never buffers a body
and never answers with its own bare 400.

**The one error exit.** Tornado reports an error raised by ``prepare`` or a handler method by
calling ``log_exception`` and then ``send_error``; errors outside that flow (in
``data_received``, the idle timer, after the body) go through ``fail``, which calls the same
two. So every error is logged once with its id — server faults at ERROR with their cause — and
answered once: a JSON:API document, lingering over the rest of the body when it still arrives
(as nginx's lingering close), or, when the headers already went out (a read error mid-download),
by closing the connection so the client sees the response cut short.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import uuid
from asyncio import Future
from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar

from tornado import web
from tornado.ioloop import IOLoop
from tornado.web import HTTPError, RequestHandler

from tornado_files import errors as e
from tornado_files.auth.principal import Principal
from tornado_files.numbers import saturated
from tornado_files.services import Services
from tornado_files.web import cors, edge
from tornado_files.web.access import ANONYMOUS, Rule, authorize
from tornado_files.web.errors import FROM_STATUS, error_document, error_headers, status_of

log = logging.getLogger("tornado_files.web")
JSON_TYPE = "application/json; charset=UTF-8"
# Room for one read past any cap we count, so Tornado's own body limit never fires first.
READ_SLACK = 4 * 1024 * 1024
# Seconds an error answer waits for the request's clean-up (aborting what it wrote).
CLEANUP_WAIT = 5.0


@web.stream_request_body
class ApiHandler(RequestHandler):
    """No handler writes an error any other way than through ``log_exception``/``send_error``.

    ``access`` says what each method needs (``web.access``; undeclared methods are refused);
    ``principal`` is who the request acts for, known before ``prepare_request`` runs."""

    access: ClassVar[Mapping[str, Rule]] = {}
    principal: Principal = ANONYMOUS
    # Answered while a shutdown drains (the probes); every other request is refused then.
    serves_while_draining = False
    bytes_out = 0

    _failed = False
    _cleanup_task: Future[None] | None = None
    _cleaned = False
    _cleaning = False
    _cleanup_done = False
    _connection_lost = False
    _lingered = 0
    _linger_timer: object | None = None
    _exit: tuple[BaseException | None, e.TornadoFilesError, str] | None = None

    @property
    def failed(self) -> bool:
        """An error was answered (the rest of the body may still be discarded): a handler
        method that Tornado calls once the body has ended must do nothing."""
        return self._failed

    @property
    def server_fault(self) -> bool:
        """Whether the answer was a fault of the server (for the access log's level): a 503
        for a client that went silent is not one."""
        if self._exit is not None:
            return self._exit[1].server_fault
        return self.get_status() >= 500

    @property
    def services(self) -> Services:
        services: Services = self.settings["services"]
        return services

    # -- CORS and methods ---------------------------------------------------------------
    @functools.cached_property
    def request_id(self) -> str:
        """This request's id: in its access line and its ``X-Request-Id`` answer header."""
        return uuid.uuid4().hex

    def flush(self, include_footers: bool = False) -> Future[None]:
        # Body bytes sent, for the access line (``bytes_out``).
        self.bytes_out += sum(len(part) for part in getattr(self, "_write_buffer", ()))
        return super().flush(include_footers)

    def set_default_headers(self) -> None:
        # Called again by clear(), so error responses keep CORS headers and a browser can
        # read a 413.
        self.set_header("X-Request-Id", self.request_id)
        origin = self.request.headers.get("Origin")
        if origin and origin in self.services.config.cors_origins:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", ", ".join(cors.EXPOSED_HEADERS))
        self.add_header("Vary", "Origin")
        self.set_header("X-Content-Type-Options", "nosniff")

    def allowed_methods(self) -> list[str]:
        """Every method this path answers (for preflight and 405's ``Allow``)."""
        table = self.settings.get("route_table")
        return list(table.allowed(self.request.path)) if table is not None else ["OPTIONS"]

    def options(self, *_args: str) -> None:
        if self.request.headers.get("Origin") in self.services.config.cors_origins:
            self.set_header("Access-Control-Allow-Methods", ", ".join(self.allowed_methods()))
            self.set_header("Access-Control-Allow-Headers", ", ".join(cors.ALLOWED_REQUEST_HEADERS))
            self.set_header("Access-Control-Max-Age", str(cors.PREFLIGHT_MAX_AGE))
        self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.set_status(204)
        self.finish()

    async def head(self, *args: str) -> None:
        """RFC 9110 §9.3.2: HEAD wherever GET is, with the same header fields (Tornado sends
        no body for HEAD and keeps the Content-Length the body would have had)."""
        result: Any = self.get(*args)
        if result is not None:
            await result

    # -- no body ------------------------------------------------------------------------
    def body_cap(self) -> int:
        """Bytes of content this request may carry (none here; BodyHandler says more)."""
        return 0

    def received(self) -> int:
        """Body bytes read so far (BodyHandler counts them)."""
        return 0

    def open_body_limit(self) -> None:
        """Tornado's limit on this body: room for our cap (or what already came), the
        lingering discard and one read, so that its bare 400 never follows our answer."""
        room = max(self.declared_length() or 0, self.body_cap(), self.received())
        edge.set_body_limit(self.request, room + self.services.config.linger_bytes + READ_SLACK)

    def declared_length(self) -> int | None:
        """The declared ``Content-Length`` as Tornado reads it: one value, or the same value
        repeated (RFC 9110 §8.6); a value past 2**63 - 1 counts as 2**63 - 1 (over every cap).
        None when absent or unreadable (``check_framing`` refuses those)."""
        value = self.request.headers.get("Content-Length")
        if value is None:
            return None
        pieces = set(re.split(r",[ \t]*", value.strip()))
        piece = pieces.pop()
        if pieces or not piece.isascii() or not piece.isdigit():
            return None
        return saturated(piece)

    def check_framing(self) -> None:
        """Refuse, before any work starts and with a JSON:API answer rather than Tornado's bare
        400, the framing Tornado refuses to read once the handler has prepared
        (``HTTP1Connection._read_body``): a Content-Length that is not one whole number,
        Transfer-Encoding with Content-Length (RFC 9112 §6.3: a smuggling vector) or any
        Transfer-Encoding but chunked."""
        headers = self.request.headers
        length = headers.get("Content-Length")
        coding = headers.get("Transfer-Encoding")
        if length is not None and self.declared_length() is None:
            raise e.MalformedRequest(
                detail="Content-Length must be one whole number (repeated only with that value)",
                meta={"parameter": "Content-Length"})
        if coding is not None and (length is not None or coding.strip().lower() != "chunked"):
            raise e.MalformedRequest(
                detail="Transfer-Encoding must be chunked alone, without Content-Length",
                meta={"parameter": "Transfer-Encoding"})

    async def prepare(self) -> None:
        """Every request: its framing, then who is asking and whether they may
        (``web.access``), then the handler's own ``prepare_request``. Handlers override that,
        never this, so none can skip the access check."""
        self.ready_for_body()
        self.check_framing()
        if self.services.lifecycle.draining and not self.serves_while_draining:
            # Kept-alive connections still bring requests: only those already in flight get
            # the shutdown's grace (an idle tus client must not go on PATCHing for its length).
            edge.close_after_answer(self.request)
            raise e.ShuttingDown()
        self.principal = authorize(self.access_rules(), self.services.auth, self.request)
        await self.prepare_request()

    def access_rules(self) -> Mapping[str, Rule]:
        """The rules this request is checked against: ``access``, unless a setting changes
        them (``MetricsHandler`` under ``metrics_public``)."""
        return self.access

    def ready_for_body(self) -> None:
        """Before any check may answer (BodyHandler lets the body be read)."""

    async def prepare_request(self) -> None:
        """What a handler checks or starts before the body: here, that there is none."""
        self.open_body_limit()
        chunked = "chunked" in self.request.headers.get("Transfer-Encoding", "").lower()
        declared = self.declared_length()
        if chunked or (declared or 0) > 0:
            raise e.RequestTooLarge(
                detail=f"{self.request.method} {self.request.path} takes no request content",
                meta={"maximum_content_length_allowed": 0, "request_content_length": declared,
                      "received": 0})

    def data_received(self, chunk: bytes) -> None:
        """Only reached after an error answered while the body still arrives: discard it."""
        self.discard(len(chunk))

    # -- JSON ---------------------------------------------------------------------------
    def write_json(self, payload: Any, status: int = 200) -> None:
        self.write_json_text(compact_json(payload), status)

    def write_json_text(self, text: str, status: int = 200) -> None:
        """An answer already encoded (``compact_json``), e.g. assembled from parts."""
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(text)

    # -- the one error exit -------------------------------------------------------------
    async def cleanup(self) -> None:
        """Undo everything the request wrote; idempotent. Handlers that write override it."""

    async def fail(self, exc: BaseException, *, linger: bool = True) -> None:
        """The exit for errors outside Tornado's own flow: undo the request's writes, then log
        and answer exactly as for an error raised by a handler method."""
        self._failed = True
        # Wait for the clean-up, but not for as long as a stalled store would hold it: the
        # answer goes out after ``CLEANUP_WAIT`` s and the clean-up goes on (shutdown waits for
        # it: ``settled``); what it cannot undo keeps its intent for the sweeper.
        self._cleanup_task = asyncio.ensure_future(self._cleanup_once())
        try:
            async with asyncio.timeout(CLEANUP_WAIT):
                await asyncio.shield(self._cleanup_task)
        except TimeoutError:
            log.warning("answering %s %s before its clean-up ended", self.request.method,
                        self.request.path)
        self.log_exception(type(exc), exc, exc.__traceback__)
        self.send_error(status_of(self._error_of(exc)), exc_info=(type(exc), exc, None),
                        linger=linger)

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None,
                      tb: TracebackType | None) -> None:
        """Log an error once, with the id its answer carries: server faults at ERROR with
        their cause, client errors at INFO."""
        error = self._error_of(value)
        error_id = error_document(error)[1]
        self._exit = (value, error, error_id)
        where = f"{self.request.method} {self.request.path}"
        status = status_of(error)
        self.services.metrics.rejections.labels(error.code).inc()
        if error.server_fault:
            # The cause (with its traceback) unless it is one of ours: those were logged, with
            # the driver's words, where they were raised.
            cause = value if not isinstance(value, e.TornadoFilesError | HTTPError) else None
            log.error("error %s %d %s %s: %s", error_id, status, error.code, where, error.detail,
                      exc_info=cause)
        else:
            log.info("error %s %d %s %s: %s", error_id, status, error.code, where, error.detail)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        if self._exit is None or self._exit[0] is not exc:
            # Tornado's own send_error(500) (a cancelled handler task): not logged yet.
            reported = exc if exc is not None else HTTPError(status_code)
            self.log_exception(type(reported), reported, None)
        assert self._exit is not None
        _, error, error_id = self._exit
        self._failed = True
        if edge.finished(self):
            return
        IOLoop.current().add_callback(self._cleanup_once)
        if edge.headers_written(self):
            edge.close_connection(self.request)  # the client sees the response cut short
            return
        self._answer(error, error_id, linger=kwargs.get("linger", True))

    def _error_of(self, exc: BaseException | None) -> e.TornadoFilesError:
        if isinstance(exc, e.TornadoFilesError):
            return exc
        if isinstance(exc, HTTPError):
            return FROM_STATUS.get(exc.status_code, e.InternalError)()
        return e.InternalError()

    def _answer(self, error: e.TornadoFilesError, error_id: str, *, linger: bool) -> None:
        """Send the JSON:API document. While the body still arrives the response goes out at
        once with ``Connection: close`` and input is discarded for a bounded time and amount
        (the linger), so the client reads the answer before the socket closes."""
        status, _, document = error_document(error, error_id)
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        if status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        for name, value in error_headers(error).items():
            self.set_header(name, value)
        # A client waiting for "100 Continue" sends no body: answer and close, and never let
        # Tornado send it a 100 after the error.
        expects_continue = self.request.headers.get("Expect", "").lower() == "100-continue"
        if isinstance(error, e.MalformedRequest):
            # Nobody knows where its body ends: answer, say so, and close.
            edge.close_after_answer(self.request)
            self.finish(body)
            return
        if not linger or edge.body_complete(self.request) or (
                expects_continue and not self.received()):
            self.finish(body)
            return
        self.open_body_limit()
        self.set_header("Content-Length", str(len(body)))
        edge.close_after_answer(self.request)  # says Connection: close, and does it
        self.write(body)
        self.flush()
        self._linger_timer = IOLoop.current().call_later(
            self.services.config.linger_seconds, self._end_linger)
        # Whole body discarded before the linger ran out: the answer is done.
        edge.when_body_complete(self.request, self._end_linger)

    def discard(self, size: int) -> None:
        self._lingered += size
        if self._lingered > self.services.config.linger_bytes:
            self._end_linger()

    def _end_linger(self) -> None:
        if not edge.finished(self):
            # If the body was not read to its end, Tornado closes the connection.
            self.finish()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._connection_lost = True
        self.stop_timers()
        IOLoop.current().add_callback(self._cleanup_once)

    def on_finish(self) -> None:
        self.stop_timers()

    def stop_timers(self) -> None:
        if self._linger_timer is not None:
            IOLoop.current().remove_timeout(self._linger_timer)
            self._linger_timer = None

    async def _cleanup_once(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        self._cleaning = True
        try:
            await self.cleanup()
        except Exception:
            log.exception("cleanup failed for %s %s", self.request.method, self.request.path)
        finally:
            self._cleaning = False
            self._cleanup_done = True

    def settled(self) -> bool:
        """Answered, or cleaned up after the connection went (shutdown waits for this)."""
        if self._cleaning:
            return False
        return self._cleanup_done or (edge.finished(self) and not self._connection_lost)


def compact_json(payload: Any) -> str:
    """How every JSON answer is written: UTF-8 as is, no spaces."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
