"""Request bodies on every handler: streamed, counted, capped, and rejected the way nginx does.

Every API handler streams its body (``@stream_request_body``) so that Tornado's own size limit,
which answers a bare 400, never fires and no body is buffered whole. An early rejection is
answered at once and then the connection *lingers*: incoming bytes are discarded for a short,
bounded time or amount so the client reads the error before the socket closes; closing while
the client still sends makes the kernel reset the connection and the client never sees it.
"""

from __future__ import annotations

import logging
import time
from asyncio import Future

from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.ioloop import IOLoop

from tornado_files import errors as e
from tornado_files.web.base import BaseHandler
from tornado_files.web.server import hand_over_reads

log = logging.getLogger("tornado_files.web")
# Tornado reads at most this much per data_received; our caps are counted on top of it.
_SLACK = 4 * 1024 * 1024


@web.stream_request_body
class StreamingHandler(BaseHandler):
    """Collects small bodies (JSON) within ``body_cap``; subclasses override ``consume``."""

    _received = 0
    _failed = False
    _busy = False
    _cleaned = False
    _lingered = 0
    _linger_timer: object | None = None
    _idle_timer: object | None = None

    def body_cap(self) -> int:
        return self.services.config.max_json_body

    def declared_length(self) -> int | None:
        value = self.request.headers.get("Content-Length")
        return int(value) if value is not None else None

    def received(self) -> int:
        return self._received

    # -- hooks for subclasses -----------------------------------------------------------
    async def begin(self) -> None:
        """Called once the pre-checks passed, before any body byte."""
        self._body = bytearray()

    async def consume(self, chunk: bytes) -> None:
        self._body += chunk

    async def cleanup(self) -> None:
        """Undo everything the request wrote. Must be idempotent."""

    @property
    def body(self) -> bytes:
        return bytes(getattr(self, "_body", b""))

    # -- Tornado hooks ------------------------------------------------------------------
    def _open_body_limit(self) -> None:
        """Room for our own cap, the lingering discard and one read, so that Tornado's size
        limit (a bare 400 written after our answer) never fires."""
        declared = self.declared_length() or 0
        room = max(declared, self.body_cap()) + self.services.config.linger_bytes + _SLACK
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.set_max_body_size(room)

    async def prepare(self) -> None:
        hand_over_reads(self.request, True)  # the connection's previous request may have said no
        declared = self.declared_length()
        cap = self.body_cap()
        self._open_body_limit()
        if self.request.method not in self.allowed_methods():
            raise e.MethodNotAllowed()  # before any size check: 405 says more than 413
        if declared is not None and declared > cap:
            raise self.too_large(declared, 0)
        self._touch()
        self._schedule_idle_check()
        await self.begin()

    def too_large(self, declared: int | None, received: int) -> e.RequestTooLarge:
        return e.RequestTooLarge(meta={"maximum_content_length_allowed": self.body_cap(),
                                       "request_content_length": declared,
                                       "received": received})

    async def data_received(self, chunk: bytes) -> None:
        if self._failed:
            self._discard(len(chunk))
            return
        self._received += len(chunk)
        self._touch()
        self._busy = True
        try:
            if self._received > self.body_cap():
                raise self.too_large(self.declared_length(), self._received)
            await self.consume(chunk)
        except Exception as exc:  # raising here would drop the connection silently
            await self.fail(exc)
        finally:
            self._busy = False

    def body_complete(self) -> bool:
        """Whether Tornado has delivered the whole request body."""
        future = getattr(self.request, "_body_future", None)
        return future is not None and future.done()

    def _handle_request_exception(self, exc: BaseException) -> None:
        # An error raised by prepare() (or Tornado's 405 before it) comes before the body:
        # answer it with a linger too.
        if not self._finished and not self._failed and not self.body_complete():
            self._open_body_limit()
            IOLoop.current().add_callback(self._cleanup_once)
            self._reject(exc)
            return
        super()._handle_request_exception(exc)

    async def fail(self, exc: BaseException, *, linger: bool = True) -> None:
        """Abort the request's writes, then answer with the error at once. While the body is
        still arriving the connection stays open to discard input (the linger) and closes
        after it; without ``linger`` it closes right after the answer."""
        self._failed = True
        await self._cleanup_once()
        self._reject(exc, linger=linger)

    def _reject(self, exc: BaseException, *, linger: bool = True) -> None:
        self._failed = True
        if self._finished:
            return
        error = self.domain_error(exc, 500)
        cause = None if isinstance(exc, e.TornadoFilesError) else exc
        # A client waiting for "100 Continue" sends no body: answer and close, and never let
        # Tornado send it a 100 after the error.
        expects_continue = self.request.headers.get("Expect", "").lower() == "100-continue"
        if not linger or self.body_complete() or (expects_continue and self._received == 0):
            self.render_error(error, cause=cause)
            return
        self.render_error(error, finish=False, cause=cause)
        seconds = self.services.config.linger_seconds
        self._linger_timer = IOLoop.current().call_later(seconds, self._end_linger)
        future = getattr(self.request, "_body_future", None)
        if future is not None:
            future.add_done_callback(self._body_ended)

    def _body_ended(self, future: Future[None]) -> None:
        # Whole body discarded before the linger ran out: answer done, keep-alive is safe.
        if not future.cancelled() and future.exception() is None:
            self._end_linger()

    def _discard(self, size: int) -> None:
        self._lingered += size
        if self._lingered > self.services.config.linger_bytes:
            self._end_linger()

    def _end_linger(self) -> None:
        if not self._finished:
            # If the body was not read to its end, Tornado closes the connection.
            self.finish()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._stop_timers()
        IOLoop.current().add_callback(self._cleanup_once)

    def on_finish(self) -> None:
        self._stop_timers()

    async def _cleanup_once(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        try:
            await self.cleanup()
        except Exception:
            log.exception("cleanup failed for %s %s", self.request.method, self.request.path)

    # -- idle body timeout --------------------------------------------------------------
    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _schedule_idle_check(self) -> None:
        timeout = self.services.config.idle_timeout
        self._idle_timer = IOLoop.current().call_later(min(timeout, 5.0), self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._finished or self._failed or self.body_complete():
            return
        if self._busy or time.monotonic() - self._last_activity < \
                self.services.config.idle_timeout:
            # A slow store is not an idle client: only silence from the client counts.
            self._schedule_idle_check()
            return
        log.info("request body idle for %ss: dropping %s %s",
                 self.services.config.idle_timeout, self.request.method, self.request.path)
        IOLoop.current().add_callback(self.fail, e.RequestTimeout(), linger=False)

    def _stop_timers(self) -> None:
        loop = IOLoop.current()
        for timer in (self._linger_timer, self._idle_timer):
            if timer is not None:
                loop.remove_timeout(timer)
        self._linger_timer = self._idle_timer = None


class NotFoundHandler(StreamingHandler):
    """Unknown paths: a JSON:API 404 for every method (streaming, so a large body to an
    unknown path is answered and lingered over like any other)."""

    async def prepare(self) -> None:
        self._open_body_limit()
        raise e.NotFound()
