"""Range and conditional requests, decided before anything is rendered (RFC 9110 §13, §14).

Pure functions, no I/O and no Tornado: the download handler asks :func:`decide` and renders
what it says. Only single ranges are served; a multi-range or syntactically invalid ``Range``
is ignored and the whole file is sent with 200, which RFC 9110 §14.2 allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from tornado_files.numbers import saturated

# ASCII digits only (``\d`` alone takes any script's digits); values past 2**63 - 1 saturate.
_RANGE = re.compile(r"^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$", re.IGNORECASE | re.ASCII)


class Unsatisfiable:
    """A syntactically valid range that selects no byte of the file (→ 416)."""

    def __repr__(self) -> str:
        return "UNSATISFIABLE"


UNSATISFIABLE = Unsatisfiable()


def parse_range(header: str | None, size: int) -> tuple[int, int] | Unsatisfiable | None:
    """``(start, end)`` with ``end`` exclusive, ``UNSATISFIABLE``, or None (send it all).

    >>> parse_range("bytes=0-99", 1000), parse_range("bytes=900-", 1000)
    ((0, 100), (900, 1000))
    >>> parse_range("bytes=-100", 1000), parse_range("bytes=990-5000", 1000)
    ((900, 1000), (990, 1000))
    >>> parse_range("bytes=-5000", 1000), parse_range("bytes=1000-", 1000)
    ((0, 1000), UNSATISFIABLE)
    >>> parse_range("bytes=-0", 1000), parse_range("bytes=0-0", 0), parse_range("bytes=-5", 0)
    (UNSATISFIABLE, UNSATISFIABLE, None)
    >>> [parse_range(h, 1000) for h in (None, "bytes=5-1", "bytes=0-1,5-6", "items=0-1", "-")]
    [None, None, None, None, None]
    """
    if header is None:
        return None
    match = _RANGE.match(header)
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last n bytes
        n = saturated(last)
        if n == 0:
            return UNSATISFIABLE
        # RFC 9110 §14.1.2: on an empty representation a suffix range with a non-zero length
        # is the only satisfiable one, and it is the whole (empty) representation, which a
        # 206 cannot express: send it as a plain 200.
        return (max(size - n, 0), size) if size > 0 else None
    start = saturated(first)
    if last and saturated(last) < start:
        return None  # invalid: ignore the header
    if start >= size:
        return UNSATISFIABLE
    end = min(saturated(last) + 1, size) if last else size
    return start, end


def strong_etag(sha256_hex: str) -> str:
    """A strong validator from the content hash: same bytes, same ETag.

    >>> strong_etag("ab12")
    '"ab12"'
    """
    return f'"{sha256_hex}"'


def http_date(moment: datetime) -> str:
    """RFC 9110 IMF-fixdate.

    >>> http_date(datetime(2026, 11, 22, 10, 0, 0, 500, tzinfo=UTC))
    'Sun, 22 Nov 2026 10:00:00 GMT'
    """
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # a year past 9999 overflows
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _etag_list(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _weak_match(etag: str, header: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 §13.1.2)."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.removeprefix("W/") == bare for tag in _etag_list(header))


@dataclass(frozen=True)
class Decision:
    """What to send: status, the byte span ``[start, end)`` and the headers it implies."""

    status: int
    start: int = 0
    end: int = 0
    headers: dict[str, str] = field(default_factory=dict)


def not_modified(method: str, etag: str, last_modified: datetime | None,
                 headers: Mapping[str, str]) -> bool:
    """Whether a GET or HEAD is answered 304 (RFC 9110 §13.1.2, §13.1.3): If-None-Match by
    the weak comparison; If-Modified-Since only without If-None-Match and with a
    ``last_modified``. Evaluated before Range (§13.2.2), so it alone decides a redirect.

    >>> not_modified("GET", '"e"', None, {"If-None-Match": '"a", W/"e"'})
    True
    >>> not_modified("PUT", '"e"', None, {"If-None-Match": '"e"'})
    False
    """
    if method not in ("GET", "HEAD"):
        return False
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        return _weak_match(etag, if_none_match)
    since = headers.get("If-Modified-Since")
    when = _parse_http_date(since) if since else None
    return (when is not None and last_modified is not None
            and last_modified.replace(microsecond=0) <= when)


def _if_range_holds(value: str, etag: str, last_modified: datetime | None) -> bool:
    """If-Range needs a strong match, or an HTTP-date equal to Last-Modified (§13.1.5)."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        return not value.startswith("W/") and value == etag
    when = _parse_http_date(value)
    return (when is not None and last_modified is not None
            and when == last_modified.replace(microsecond=0))


def decide(method: str, size: int, etag: str, last_modified: datetime | None,
           headers: Mapping[str, str]) -> Decision:
    """The response to a GET or HEAD of a ``size``-byte representation. Without a
    ``last_modified`` (no ``Last-Modified`` was sent) the date conditions never hold:
    ``If-Modified-Since`` is ignored, a date in ``If-Range`` asks for the whole.

    >>> lm = datetime(2026, 1, 1, tzinfo=UTC)
    >>> d = decide("GET", 10, '"e"', lm, {"Range": "bytes=2-4"})
    >>> d.status, d.start, d.end, d.headers["Content-Range"], d.headers["Content-Length"]
    (206, 2, 5, 'bytes 2-4/10', '3')
    >>> decide("GET", 10, '"e"', lm, {"If-None-Match": 'W/"e"'}).status
    304
    >>> decide("GET", 10, '"e"', lm, {"Range": "bytes=2-4", "If-Range": '"old"'}).status
    200
    >>> decide("GET", 10, '"e"', lm, {"Range": "bytes=10-"}).headers
    {'Content-Range': 'bytes */10'}
    """
    if not_modified(method, etag, last_modified, headers):
        return Decision(304)
    whole = Decision(200, 0, size, {"Content-Length": str(size)})
    wanted = parse_range(headers.get("Range"), size)
    if wanted is None:
        return whole
    if_range = headers.get("If-Range")
    if if_range is not None and not _if_range_holds(if_range, etag, last_modified):
        return whole
    if isinstance(wanted, Unsatisfiable):
        return Decision(416, headers={"Content-Range": f"bytes */{size}"})
    start, end = wanted
    return Decision(206, start, end, {"Content-Range": f"bytes {start}-{end - 1}/{size}",
                                      "Content-Length": str(end - start)})
