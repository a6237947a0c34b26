"""A small HTTP client on http.client: streamed bodies, early answers, JSON:API errors as one
line a person can act on."""

from __future__ import annotations

import http.client
import json
import select
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tornado_files.config import format_size


class ClientError(Exception):
    """One line for the user, and the exit status it maps to; for a server's refusal also its
    HTTP status, JSON:API ``code`` and ``meta`` (``None`` / ``{}`` when it sent none)."""

    def __init__(self, message: str, exit_code: int = 1, status: int | None = None,
                 retry_after: float | None = None, code: str | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status
        self.retry_after = retry_after  # seconds, from the answer's Retry-After
        self.code = code
        self.meta = meta or {}


def refusal(status: int, headers: http.client.HTTPMessage, body: bytes) -> ClientError:
    """The ClientError for a server's non-success answer (exit status 1)."""
    error = _first_error(body) or {}
    meta = error.get("meta")
    return ClientError(describe_error(status, body, headers.get("WWW-Authenticate")),
                       status=status, retry_after=_seconds(headers.get("Retry-After")),
                       code=error.get("code"), meta=meta if isinstance(meta, dict) else None)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _first_error(body: bytes) -> dict[str, Any] | None:
    try:
        error = json.loads(body)["errors"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return error if isinstance(error, dict) else None


def describe_error(status: int, body: bytes, challenge: str | None = None) -> str:
    """The JSON:API error as people read it. ``challenge`` is the answer's
    ``WWW-Authenticate`` (RFC 6750: ``error="invalid_token"`` when the token sent was not
    accepted, absent when none was sent).

    >>> describe_error(401, b'{"errors": [{"code": "unauthorized"}]}', 'Bearer realm="x"')
    'this server needs a token: give --token or set TORNADO_FILES_TOKEN'
    >>> describe_error(403, b'{"errors": [{"code": "forbidden", "meta": {"required_scope": '
    ...                b'"write"}}]}')
    "not allowed: the token lacks the 'write' scope"

    A HEAD answer has no body: 401 and 403 are still said in words.

    >>> describe_error(401, b"", 'Bearer error="invalid_token"')
    'the token was not accepted (it is wrong or has expired)'
    >>> describe_error(507, b'{"errors": [{"code": "insufficient_storage"}]}')
    'the server is out of space: try again once room has been freed'
    """
    error = _first_error(body)
    if error is None and status in (401, 403):
        return _access_refusal("unauthorized" if status == 401 else "forbidden", {}, None,
                               challenge)
    if error is None:
        return f"the server answered {status}"
    meta = error.get("meta") or {}
    code = error.get("code")
    limit = meta.get("maximum_content_length_allowed")
    if code in ("request_too_large", "file_too_large") and limit is not None:
        return f"too large — the limit here is {format_size(limit)}"
    if code == "unsupported_media_type" and meta.get("allowed_mime_types"):
        allowed = ", ".join(meta["allowed_mime_types"])
        return f"only {allowed} accepted here (this file is {meta.get('instance_mime_type')})"
    if code == "not_found":
        return "not found"
    if code == "insufficient_storage":
        return "the server is out of space: try again once room has been freed"
    if code in ("unauthorized", "forbidden", "invalid_signature"):
        return _access_refusal(code, meta, error.get("detail"), challenge)
    return f"{error.get('title', 'error')}: {error.get('detail', '')}".rstrip(": ")


def _access_refusal(code: str, meta: dict[str, Any], detail: object,
                    challenge: str | None) -> str:
    """401 ``unauthorized``, 403 ``forbidden`` and 403 ``invalid_signature`` in words: what
    went wrong and what to do about it (the server never says which part of a token was
    wrong, so neither can we)."""
    if code == "unauthorized":
        if 'error="invalid_token"' in (challenge or ""):
            return "the token was not accepted (it is wrong or has expired)"
        return "this server needs a token: give --token or set TORNADO_FILES_TOKEN"
    if code == "invalid_signature":
        if meta.get("expired"):
            return "the link has expired: make a new one (tornado-files link)"
        return "the link's signature is not valid (it was altered, or is not for this request)"
    if meta.get("required_scope"):
        return f"not allowed: the token lacks the {meta['required_scope']!r} scope"
    if isinstance(detail, str) and detail:
        return f"not allowed: {detail[0].lower()}{detail[1:]}"
    return "not allowed"


def usable_token(token: str | None) -> str | None:
    """``token`` as a header can carry it: the line end of a token file (``$(cat token.txt)``
    from Windows keeps its CR) is dropped; any other control or non-ASCII character is one
    usage line (exit 2) that does not repeat the secret.

    >>> usable_token("abc-0123456789abcdef\\r\\n")
    'abc-0123456789abcdef'
    """
    if token is None:
        return None
    token = token.strip()
    if not token.isascii() or not token.isprintable():
        raise ClientError("the token holds characters a header cannot carry (check the file "
                          "or variable it comes from)", exit_code=2)
    return token or None


REDIRECTS = (301, 302, 303, 307, 308)


def _connection_to(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection to ``url``'s host and the request target (path and query) there."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"the server redirected to a URL that is not http(s): {url[:100]}")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return cls(parts.hostname, parts.port, timeout=timeout), target


class Api:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"not an http(s) URL: {base_url}", exit_code=2)
        self.base_url = base_url.rstrip("/")
        self._parts = parts
        self._token = usable_token(token)
        self._timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        cls = (http.client.HTTPSConnection if self._parts.scheme == "https"
               else http.client.HTTPConnection)
        return cls(self._parts.hostname or "", self._parts.port, timeout=self._timeout)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": "tornado-files-cli"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return {**headers, **(extra or {})}

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | Iterable[bytes] | None = None, length: int | None = None,
                ok: tuple[int, ...] = (200,)) -> Response:
        """Send, streaming an iterable body; stop sending as soon as the server answers early
        (a 413 mid-upload) and return that answer. Non-``ok`` statuses raise ClientError."""
        connection = self._connection()
        try:
            response = self._exchange(connection, method, path, headers or {}, body, length)
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(f"cannot reach {self.base_url}: {_reason(exc)}",
                              exit_code=3) from None
        finally:
            connection.close()
        if response.status not in ok:
            raise refusal(response.status, response.headers, response.body)
        return response

    @contextmanager
    def stream(self, path: str, headers: dict[str, str] | None = None,
               ok: tuple[int, ...] = (200,)) -> Iterator[Stream]:
        """GET with the body left on the socket, read chunk by chunk (downloads). A redirect
        (a route with ``download = "redirect"``: 302 to the object store's signed URL) is
        followed once, without our credentials, and without ``If-Range``: the store's ETag is
        not our sha256, and the signed URL names one immutable object."""
        connection = self._connection()
        try:
            target = self._parts.path.rstrip("/") + path
            raw = self._get(connection, target, self.headers(headers), self.base_url)
            location = raw.getheader("Location")
            if raw.status in REDIRECTS and location:
                raw.read()
                connection.close()
                connection, target = _connection_to(location, self._timeout)
                kept = {k: v for k, v in (headers or {}).items() if k.lower() != "if-range"}
                raw = self._get(connection, target, {"User-Agent": "tornado-files-cli", **kept},
                                location.split("?", 1)[0])
            refused = raw.read() if raw.status not in ok else b""
            if raw.status not in ok:
                raise refusal(raw.status, raw.headers, refused)
            yield Stream(raw, self.base_url)
        finally:
            connection.close()

    @staticmethod
    def _get(connection: http.client.HTTPConnection, target: str, headers: dict[str, str],
             where: str) -> http.client.HTTPResponse:
        try:
            connection.request("GET", target, headers=headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(f"cannot reach {where}: {_reason(exc)}", exit_code=3) from None

    def _exchange(self, connection: http.client.HTTPConnection, method: str, path: str,
                  headers: dict[str, str], body: bytes | Iterable[bytes] | None,
                  length: int | None) -> Response:
        connection.putrequest(method, self._parts.path.rstrip("/") + path,
                              skip_accept_encoding=True)
        all_headers = self.headers(headers)
        if isinstance(body, bytes):
            length = len(body)
        if length is not None:
            all_headers["Content-Length"] = str(length)
        for name, value in all_headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        chunks = [body] if isinstance(body, bytes) else (body or [])
        try:
            for chunk in chunks:
                if _answered(connection):
                    break  # the server answered before the body ended: read it
                connection.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the answer may still be there (the server lingers)
        raw = connection.getresponse()
        return Response(raw.status, raw.headers, raw.read())


class Stream:
    """A response whose body is read in bounded chunks."""

    def __init__(self, raw: http.client.HTTPResponse, base_url: str) -> None:
        self._raw = raw
        self._base_url = base_url
        self.status = raw.status
        self.headers = raw.headers

    def chunks(self, size: int = 1024 * 1024) -> Iterator[bytes]:
        """What has arrived, up to ``size`` bytes at a time (``read1``: a download that stops
        midway has written everything that came, for the next run to resume from).

        Raises ``ClientError`` (exit status 3) when the connection fails or ends before the
        body does (fewer bytes than its Content-Length); only network errors are caught
        here, so a failure of whatever the caller does with a chunk stays its own."""
        while True:
            try:
                chunk = self._raw.read1(size)
            except (OSError, http.client.HTTPException) as exc:
                raise self._lost(_reason(exc)) from None
            if not chunk:
                break
            yield chunk
        if self._raw.length:  # bytes still owed by Content-Length: the connection closed
            raise self._lost(f"{self._raw.length} bytes of the answer did not arrive")

    def _lost(self, reason: str) -> ClientError:
        return ClientError(f"the connection to {self._base_url} was lost: {reason}",
                           exit_code=3)


def _answered(connection: http.client.HTTPConnection) -> bool:
    sock = connection.sock
    if sock is None:
        return False
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _seconds(retry_after: str | None) -> float | None:
    """``Retry-After`` in its delay-seconds form (the HTTP-date form is not used by us)."""
    value = (retry_after or "").strip()
    return float(value) if value.isdigit() else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return getattr(exc, "strerror", None) or exc.__class__.__name__
