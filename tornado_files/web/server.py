"""The HTTP server: Tornado's, with a socket reader that hands large reads over uncopied.

Tornado's ``IOStream`` passes every received byte through three Python-level buffers while the
event loop holds the GIL: a fresh zero-filled ``bytearray`` per read, the stream's read buffer
it is appended to, and the ``bytes`` copied out of that for ``data_received``. Dropping the two
copies took a fifth off the event loop's CPU per raw GiB (measured alternating against the
version before; docs/performance.md), and the event loop is where an upload waits.

``BodyStream`` keeps the first and drops the copies in the common case of a body read: when the
read buffer is empty, the ``bytearray`` that ``recv_into`` filled *becomes* the read buffer, and
a read that takes all of it (``read_bytes(..., partial=True)``, which is how Tornado delivers a
body) gets that ``bytearray`` itself. Every other case (headers, chunk framing, leftovers, small
reads) goes through Tornado's own code. So a body chunk reaching a handler may be a
``bytearray`` rather than ``bytes``: it is handed over, nobody else holds it, and nothing in
tornado-files mutates a chunk (the lanes hash and write it later). A request whose consumer
needs ``bytes`` (multipart: streaming-form-data's parser) turns the hand-over off with
``hand_over_reads`` and gets Tornado's ``bytes``, still without the append copy.

The two methods overridden are private to Tornado, which is why requirements.txt pins it;
tests/unit/test_body_stream.py checks the byte stream over real sockets for every read shape.
"""

from __future__ import annotations

from typing import Any

from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPServerRequest
from tornado.iostream import IOStream, StreamBufferFullError
from tornado.web import Application

# How much Tornado reads from a socket at once, and the largest piece data_received gets.
READ_CHUNK = 1024 * 1024
# Reads at least this large are handed over; smaller ones (headers, framing) are copied as
# Tornado does. Above Tornado's 64 KiB header limit, so a header block is always ``bytes``.
HANDOVER = 128 * 1024


class BodyStream(IOStream):
    # Per request (hand_over_reads): whether whole large reads go out as the bytearray itself.
    hand_over = True

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


class FilesHTTPServer(HTTPServer):
    """Serves every connection on a ``BodyStream``."""

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        # TCPServer made a plain IOStream around the accepted socket; it has registered nothing
        # with the loop yet, so a BodyStream on the same socket replaces it.
        if type(stream) is IOStream:
            stream = BodyStream(stream.socket, max_buffer_size=stream.max_buffer_size,
                                read_chunk_size=stream.read_chunk_size)
        super().handle_stream(stream, address)


def build_http_server(app: Application, max_body_size: int, **settings: Any) -> FilesHTTPServer:
    return FilesHTTPServer(app, max_body_size=max_body_size, chunk_size=READ_CHUNK, **settings)
