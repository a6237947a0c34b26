"""Every use of a Tornado private name, in one module, for a checked range of Tornado versions.

tornado-files leans on Tornado in two places its public API does not reach:

1. A streamed request's body state: ``request._body_future`` says whether the whole body has
   arrived (an early rejection lingers only while it has not) and calls back when it does.
2. A handler's ``_finished`` and ``_headers_written`` flags: the error exit needs to know
   whether an answer can still be sent, or only the connection closed.
3. ``HTTP1Connection._disconnect_on_finish``: an answer sent while the body still arrives says
   ``Connection: close`` and must close the connection once it is out (RFC 9112 §9.6), even
   when the rest of the body arrives during the linger.

Importing this module checks that the installed Tornado is in ``SUPPORTED`` (``check_version``
has a doctest); tests/http/test_wire.py pins the body-state uses (lingering, early answers) and
tests/http/test_failures.py the response flags (a read error after the headers closes the
connection). Nothing else in tornado-files may touch a Tornado name that starts with an
underscore.

Connections are served on Tornado's own ``IOStream``. A ``BodyStream`` that handed large body
reads over as the received ``bytearray`` (skipping Tornado's append and copy-out) was measured
on 2026-11-30 against this plain stream, same runs, 16 alternating rounds: ~6 % less server
CPU per raw GiB, no throughput difference beyond the rounds' noise (docs/performance.md), so
it was removed with the two private methods it overrode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tornado
from tornado.http1connection import HTTP1Connection
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPServerRequest
from tornado.web import Application, RequestHandler

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
            "tornado_files/web/edge.py is checked by its tests for that range")


check_version(tornado.version_info)

# How much Tornado reads from a socket at once, and the largest piece data_received gets.
READ_CHUNK = 1024 * 1024


def build_http_server(app: Application, max_body_size: int, **settings: Any) -> HTTPServer:
    return HTTPServer(app, max_body_size=max_body_size, chunk_size=READ_CHUNK, **settings)


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
