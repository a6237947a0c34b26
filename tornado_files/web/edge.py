"""Every use of a Tornado private name, in one module, for a checked range of Tornado versions.

tornado-files leans on Tornado in five places its public API does not reach:

1. ``BodyStream`` overrides ``IOStream._read_to_buffer`` / ``_consume`` so large body reads are
   handed to ``data_received`` uncopied (below).
2. A streamed request's body state: ``request._body_future`` says whether the whole body has
   arrived (an early rejection lingers only while it has not) and calls back when it does.
3. A handler's ``_finished`` and ``_headers_written`` flags: the error exit needs to know
   whether an answer can still be sent, or only the connection closed.
4. ``HTTP1Connection._disconnect_on_finish``: an answer sent while the body still arrives says
   ``Connection: close`` and must close the connection once it is out (RFC 9112 §9.6), even
   when the rest of the body arrives during the linger.
5. ``HTTP1Connection._read_finished`` and ``_response_start_line``: when Tornado cannot read a
   request's framing (a header line with a NUL or no colon, a bad request line, chunk
   extensions, trailers, a bad chunk size) it writes a bare ``HTTP/1.1 400 Bad Request`` with
   no body and closes, from inside its read loop, where no hook reaches; a chunk-size line
   past 64 bytes (``IOStream._check_max_bytes``) it closes without a word. ``BodyStream.write``
   recognises that write — those exact bytes while the request is still being read — and
   sends a JSON:API 400 ``malformed_request`` instead, or nothing when our own answer already
   went out. What cannot be done: reading what Tornado refuses (chunk extensions and
   trailers are valid HTTP/1.1; reading them means replacing Tornado's chunked reader), and
   CORS headers on that answer (the request's headers may be what failed to parse).

Importing this module checks that the installed Tornado is in ``SUPPORTED`` (``check_version``
has a doctest). The tests that pin each use: tests/unit/test_edge.py (every read shape of
BodyStream over real sockets), tests/http/test_wire.py (lingering, early answers, closing after
``Connection: close``), tests/http/test_failures.py (a read error after the headers closes
the connection) and tests/http/test_client_input.py (framing errors answered in JSON:API).
Nothing else in tornado-files may touch a Tornado name that starts with an underscore.

Tornado's ``IOStream`` passes every received byte through three Python-level buffers while the
event loop holds the GIL: a fresh zero-filled ``bytearray`` per read, the stream's read buffer
it is appended to, and the ``bytes`` copied out of that for ``data_received``. Dropping the two
copies takes about a third off the event loop's CPU per raw GiB (0.38 against 0.59 s, and
~1.5 MiB of peak memory per upload, measured against the plain stream in the same rounds on
2026-11-30: docs/performance.md), and the event loop is where an upload waits.

``BodyStream`` keeps the first and drops the copies in the common case of a body read: when the
read buffer is empty, the ``bytearray`` that ``recv_into`` filled *becomes* the read buffer, and
a read that takes all of it (``read_bytes(..., partial=True)``, which is how Tornado delivers a
body) gets that ``bytearray`` itself. Every other case (headers, chunk framing, leftovers, small
reads) goes through Tornado's own code. So a body chunk reaching a handler may be a
``bytearray`` rather than ``bytes``: it is handed over, nobody else holds it, and nothing in
tornado-files mutates a chunk (the lanes hash and write it later). A request whose consumer
needs ``bytes`` (the multipart parser) turns the hand-over off with
``hand_over_reads`` and gets Tornado's ``bytes``, still without the append copy.
"""

from __future__ import annotations

import json
import logging
import re
from asyncio import Future
from collections.abc import Callable
from typing import Any

import tornado
from tornado.http1connection import HTTP1Connection
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPConnection, HTTPMessageDelegate, HTTPServerRequest
from tornado.iostream import IOStream, StreamBufferFullError, UnsatisfiableReadError
from tornado.web import Application, RequestHandler

from tornado_files.errors import MalformedRequest
from tornado_files.web import log_redaction
from tornado_files.web.errors import error_document

log = logging.getLogger("tornado_files.web")

# The Tornado releases whose private names above were checked: 6.6 and later 6.x.
SUPPORTED = ((6, 6), (7, 0))


def check_version(version: tuple[int, ...]) -> None:
    """Raise ImportError unless ``version`` lies in ``SUPPORTED`` (lowest included, highest not).

    >>> check_version((6, 6, 1))
    >>> check_version((7, 0, 0))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ImportError: tornado-files supports Tornado >= 6.6, < 7.0 ...
    """
    low, high = SUPPORTED
    if not low <= tuple(version[:2]) < high:
        raise ImportError(
            f"tornado-files supports Tornado >= {low[0]}.{low[1]}, < {high[0]}.{high[1]} "
            f"(found {'.'.join(map(str, version))}): its use of Tornado's private names in "
            "tornado_files/web/edge.py is checked by tests/unit/test_edge.py for that range")


check_version(tornado.version_info)

# How much Tornado reads from a socket at once, and the largest piece data_received gets.
READ_CHUNK = 1024 * 1024
# Reads at least this large are handed over; smaller ones (headers, framing) are copied as
# Tornado does. Above Tornado's 64 KiB header limit, so a header block is always ``bytes``.
HANDOVER = 128 * 1024


# What HTTP1Connection writes when it cannot read a request (its HTTPInputError path).
TORNADO_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"


class BodyStream(IOStream):
    # Per request (hand_over_reads): whether whole large reads go out as the bytearray itself.
    hand_over = True
    # The HTTP1Connection of the request being served (FilesHTTPServer.start_request).
    connection: HTTP1Connection | None = None
    # Whether Tornado's refusal was answered (the connection closes after it).
    refused = False

    def write(self, data: bytes | memoryview) -> Future[None]:
        connection = self.connection
        if (connection is not None and not connection._read_finished
                and bytes(data[:len(TORNADO_BARE_400) + 1]) == TORNADO_BARE_400):
            # Tornado's own refusal (use 5): while the request is read nothing else writes
            # these bytes (an early answer goes out as one write with its headers).
            if self.refused or connection._response_start_line is not None:
                done: Future[None] = Future()
                done.set_result(None)  # an answer went out first, saying Connection: close
                return done
            self.refused = True
            data = malformed_request_answer()
        return super().write(data)

    def _check_max_bytes(self, delimiter: bytes | re.Pattern[bytes], size: int) -> None:
        try:
            super()._check_max_bytes(delimiter, size)
        except UnsatisfiableReadError:
            # A line past its limit (a chunk-size line over 64 bytes): Tornado closes the
            # connection without a word (use 5). Answer first, as for its other refusals.
            connection = self.connection
            if connection is not None and not connection._read_finished and not self.closed():
                self.write(TORNADO_BARE_400)
            raise

    def _read_to_buffer(self) -> int | None:
        if self._user_read_buffer or self._read_buffer_size:
            return super()._read_to_buffer()
        buf = bytearray(self.read_chunk_size)
        try:
            received = self.read_from_fd(buf)
        except OSError as exc:
            del buf
            # As Tornado does: a reset is a close, any other error is raised too.
            self.close(exc_info=exc)
            if self._is_connreset(exc):
                return None
            raise
        if received is None:
            return 0
        if received == 0:
            self.close()
            return 0
        if received < len(buf):
            # A short read gets an allocation of its own size (a bytearray shrunk by less than
            # half keeps the whole MiB). Reads are short when the client is the slower side,
            # so this copy is paid when there is time for it.
            buf = buf[:received]
        self._read_buffer = buf
        self._read_buffer_size = received
        if received > self.max_buffer_size:  # cannot happen: read_chunk_size is at most half
            error = StreamBufferFullError("Reached maximum read buffer size")
            self.close(exc_info=error)
            raise error
        return received

    def _consume(self, loc: int) -> bytes:
        buf = self._read_buffer
        if self.hand_over and loc >= HANDOVER and loc == len(buf):
            self._read_buffer = bytearray()
            self._read_buffer_size = 0
            return buf  # type: ignore[return-value]  # a bytearray nobody else holds
        return super()._consume(loc)


def hand_over_reads(request: HTTPServerRequest, enabled: bool) -> None:
    """Whether this request's large body reads reach ``data_received`` as the received
    ``bytearray`` (the default), or as ``bytes`` with one copy. A consumer that needs ``bytes``
    anyway (the multipart parser) asks for ``bytes``: converting later would keep both alive
    while the chunk is parsed, a MiB more per connection."""
    stream = getattr(request.connection, "stream", None)
    if isinstance(stream, BodyStream):
        stream.hand_over = enabled


def malformed_request_answer() -> bytes:
    """The JSON:API 400 sent instead of Tornado's bare one; its id goes to the log, next to
    Tornado's own line that says what it could not read."""
    error = MalformedRequest()
    status, error_id, document = error_document(error)
    log.info("error %s %d %s: %s (Tornado's 'Malformed HTTP message' line says why)",
             error_id, status, error.code, error.detail)
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    head = (f"HTTP/1.1 {status} Bad Request\r\nContent-Type: application/json; charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\nX-Content-Type-Options: nosniff\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + body


class FilesHTTPServer(HTTPServer):
    """Serves every connection on a ``BodyStream``."""

    def start_request(self, server_conn: object, request_conn: HTTPConnection
                      ) -> HTTPMessageDelegate:
        stream = getattr(request_conn, "stream", None)
        if isinstance(stream, BodyStream) and isinstance(request_conn, HTTP1Connection):
            stream.connection = request_conn
        return super().start_request(server_conn, request_conn)

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        # TCPServer made a plain IOStream around the accepted socket; it has registered nothing
        # with the loop yet, so a BodyStream on the same socket replaces it.
        if type(stream) is IOStream:
            stream = BodyStream(stream.socket, max_buffer_size=stream.max_buffer_size,
                                read_chunk_size=stream.read_chunk_size)
        super().handle_stream(stream, address)


def build_http_server(app: Application, max_body_size: int, **settings: Any) -> FilesHTTPServer:
    log_redaction.install()
    return FilesHTTPServer(app, max_body_size=max_body_size, chunk_size=READ_CHUNK, **settings)


# -- a handler's request and response state -----------------------------------------------
def body_complete(request: HTTPServerRequest) -> bool:
    """Whether Tornado has delivered the whole (streamed) request body."""
    future = getattr(request, "_body_future", None)
    return future is not None and future.done()


def when_body_complete(request: HTTPServerRequest, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the whole body has arrived (never if the connection drops)."""
    future = getattr(request, "_body_future", None)
    if future is None:
        return

    def done(body: Any) -> None:
        if not body.cancelled() and body.exception() is None:
            callback()

    future.add_done_callback(done)


def finished(handler: RequestHandler) -> bool:
    """Whether ``finish()`` ran: no answer can be sent any more."""
    return bool(handler._finished)


def headers_written(handler: RequestHandler) -> bool:
    """Whether the status line and headers went out: an error can only close the connection."""
    return bool(handler._headers_written)


def set_body_limit(request: HTTPServerRequest, size: int) -> None:
    """This connection's limit on the current request body (Tornado's own answer to a body
    over it is a bare 400, so handlers keep it above their own caps)."""
    connection = request.connection
    if isinstance(connection, HTTP1Connection):
        connection.set_max_body_size(size)


def close_after_answer(request: HTTPServerRequest) -> None:
    """Answer with ``Connection: close`` and close once the answer is sent (Tornado's own
    mechanism for a request it stops reading)."""
    connection = request.connection
    if isinstance(connection, HTTP1Connection):
        connection._disconnect_on_finish = True


def close_connection(request: HTTPServerRequest) -> None:
    """Drop the connection at once (a response whose headers are out cannot become an error)."""
    connection = request.connection
    if isinstance(connection, HTTP1Connection):
        connection.close()
