"""``GET /api/files`` query parameters → :class:`ListQuery`, and opaque cursors (pure)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from tornado_files.errors import InvalidParameter
from tornado_files.models import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PROCESSING_STATES,
    SORT_KEYS,
    ListQuery,
)
from tornado_files.numbers import MAX_INT64, whole

_STRINGS = ("mime_type", "filename", "route", "owner", "sha256")
_SIZES = ("size_greater_than", "size_less_than")
_DATES = ("added_since", "modified_since")
_KNOWN = {*_STRINGS, *_SIZES, *_DATES, "sort", "limit", "cursor", "processing",
          "has_derivative_images"}
_BOOLEANS = {"true": True, "false": False}


def _bad(name: str, detail: str) -> InvalidParameter:
    return InvalidParameter(detail=detail, meta={"parameter": name})


def parse_when(name: str, value: str) -> datetime:
    """ISO 8601 with ``Z`` or an offset; a naive time is taken as UTC.

    >>> parse_when("x", "2026-11-22T10:00:00Z").isoformat()
    '2026-11-22T10:00:00+00:00'
    """
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        # In UTC, 9999-12-31T23:59:59-01:00 is past the last datetime: OverflowError.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad(name, f"{name} must be an ISO 8601 time like 2026-11-22T10:00:00Z, "
                   "from year 1 to 9999 in UTC") from None


# Sizes beyond a signed 64-bit integer match nothing a store could hold (and SQLite refuses
# to bind them).
_MAX_SIZE = MAX_INT64


def _size(name: str, value: str) -> int:
    size = whole(value)
    if size is None:
        raise _bad(name, f"{name} must be a whole number of bytes, at most {_MAX_SIZE}")
    return size


def _limit(value: str) -> int:
    limit = whole(value)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise _bad("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def _processing(value: str) -> str:
    if value not in PROCESSING_STATES:
        raise _bad("processing", f"processing must be one of {', '.join(PROCESSING_STATES)}")
    return value


def _boolean(name: str, value: str) -> bool:
    """``true`` or ``false``, exactly (as the resource shows them)."""
    if value not in _BOOLEANS:
        raise _bad(name, f"{name} must be true or false")
    return _BOOLEANS[value]


def encode_cursor(sort: str, after: tuple[Any, str]) -> str:
    value, file_id = after
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat()
    raw = json.dumps([sort, value, file_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> tuple[Any, str]:
    """The keyset position a cursor stands for; it must have been made for ``sort``.

    >>> decode_cursor("size", encode_cursor("size", (5, "ab")))
    (5, 'ab')
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, file_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error, RecursionError):  # deep nesting recurses
        raise _bad("cursor", "cursor is not one this server issued") from None
    if made_for != sort or not _text(file_id):
        raise _bad("cursor", "cursor belongs to another sort order")
    field = sort.lstrip("-")
    if field == "added" and _text(value):
        return parse_when("cursor", value), file_id
    if (field == "size" and isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= _MAX_SIZE):
        return value, file_id
    if field == "filename" and _text(value):
        return value, file_id
    raise _bad("cursor", "cursor is not one this server issued")


def _text(value: Any) -> bool:
    """A string every store can take: a lone surrogate (JSON's ``"\\ud800"``) is no Unicode.

    >>> _text("a"), _text("\\ud800"), _text(1)
    (True, False, False)
    """
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _data_key(name: str) -> bool:
    """``data.KEY`` names a top-level key: no dots or ``$`` inside KEY (MongoDB would read
    them as a path or an operator)."""
    key = name.removeprefix("data.")
    return name.startswith("data.") and bool(key) and "." not in key and "$" not in key


def _single(args: Mapping[str, Sequence[str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, given in args.items():
        if name not in _KNOWN and not _data_key(name):
            raise _bad(name, f"unknown parameter {name!r}")
        if len(given) != 1:
            raise _bad(name, f"{name} may be given only once")
        values[name] = given[0]
    return values


def parse_list_query(args: Mapping[str, Sequence[str]]) -> ListQuery:
    """Validate every parameter of docs/api.md, Listing; anything malformed → InvalidParameter."""
    values = _single(args)
    sort = values.get("sort", "-added")
    if sort not in SORT_KEYS:
        raise _bad("sort", f"sort must be one of {', '.join(SORT_KEYS)}")
    mime = values.get("mime_type")
    if mime is not None and ("/" not in mime or "*" in mime.split("/", 1)[0]):
        raise _bad("mime_type", "mime_type must look like image/png or image/*")
    filters: dict[str, Any] = {name: values[name] for name in _STRINGS if name in values}
    filters.update({name: _size(name, values[name]) for name in _SIZES if name in values})
    filters.update({name: parse_when(name, values[name]) for name in _DATES if name in values})
    if "processing" in values:
        filters["processing"] = _processing(values["processing"])
    if "has_derivative_images" in values:
        filters["has_derivative_images"] = _boolean("has_derivative_images",
                                                    values["has_derivative_images"])
    return ListQuery(
        **filters,
        data_equals=tuple(sorted((k[5:], v) for k, v in values.items() if k.startswith("data."))),
        sort=sort,
        limit=_limit(values["limit"]) if "limit" in values else DEFAULT_LIMIT,
        after=decode_cursor(sort, values["cursor"]) if "cursor" in values else None,
    )


def next_url(path: str, args: Mapping[str, Sequence[str]], sort: str,
             after: tuple[Any, str]) -> str:
    """The same listing's next page: every parameter kept, the cursor replaced."""
    kept = [(k, v) for k, vs in sorted(args.items()) if k != "cursor" for v in vs]
    kept.append(("cursor", encode_cursor(sort, after)))
    return f"{path}?{urlencode(kept)}"
