"""Client JSON — an upload's ``data`` part, a PATCH/PUT body — parsed strictly, so that what
is stored can always be sent back out and read by every client.

Refused with ``InvalidJson`` (400): text that is not JSON or not an object; ``NaN`` and
``Infinity`` (not JSON, RFC 8259 §6: Python accepts them, browsers cannot parse them back, and
one such value in a listing broke the upload page's list for every user); strings with a lone
surrogate (RFC 8259 §8.2: they cannot be encoded as UTF-8 on the way out — JavaScript makes
them when an emoji is cut in half); numbers that overflow (``1e400`` is read as infinity and
would go out as ``Infinity``; an integer beyond 64 bits fits neither SQLite nor BSON — RFC 8259
§6 leaves the range to implementations, and this one keeps what every store and client can
carry back); nesting deeper than ``MAX_DEPTH`` (MongoDB stores at most
100 levels, and deep nesting makes the parser recurse).
"""

from __future__ import annotations

import json
import math
from typing import Any

from tornado_files.errors import InvalidJson, InvalidParameter, RequestTooLarge

MAX_DEPTH = 32
MAX_INTEGER = 2**63 - 1


def parse_object(raw: bytes, what: str) -> dict[str, Any]:
    """``raw`` as a JSON object, or InvalidJson naming ``what`` ("The request body", …)."""
    try:
        parsed = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite,
                            parse_int=_int64)
    except RecursionError:
        raise InvalidJson(detail=f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson(detail=f"{what} is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidJson(detail=f"{what} must be a JSON object")
    _check(parsed, what)
    return parsed


def check_data_keys(data: dict[str, Any]) -> None:
    """The top-level keys of a file's ``data`` must be usable everywhere a key is named: a
    ``PATCH`` sets and removes ``data.KEY`` in one MongoDB update, and a listing filters on
    ``data.KEY=VALUE`` — so no empty key, no ``.`` and no leading ``$``. Checked wherever
    ``data`` comes in (upload fields, the ``data`` part, tus metadata, ``PATCH``, ``PUT``,
    upload links), so no key gets stored that could not be changed later.

    >>> check_data_keys({"title": 1, "a-b_c": 2})
    >>> check_data_keys({"a.b": 1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tornado_files.errors.InvalidParameter: data keys must be non-empty, ...
    """
    for key in data:
        if not key or "." in key or key.startswith("$"):
            raise InvalidParameter(
                detail="data keys must be non-empty, without '.' and not start with '$'",
                meta={"parameter": f"data.{key}"})


def check_data_size(data: dict[str, Any], limit: int) -> None:
    """A file's ``data`` as it would be stored — after a PATCH merged into it — may take at
    most ``limit`` bytes as compact UTF-8 JSON (``max_json_body``): each PATCH body is capped,
    and this keeps repeated PATCHes from growing ``data`` without bound.

    >>> check_data_size({"a": "é"}, 10)
    >>> check_data_size({"a": "xxxx"}, 10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tornado_files.errors.RequestTooLarge: The file's data would take 12 bytes ...
    """
    size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > limit:
        raise RequestTooLarge(
            detail=f"The file's data would take {size} bytes as JSON; at most {limit} are "
                   "allowed: remove keys (set them to null) first",
            meta={"maximum_data_size_allowed": limit, "data_size": size})


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """``1e400`` overflows to infinity, which has no JSON spelling."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range")
    return number


def _int64(text: str) -> int:
    number = int(text)
    if not -MAX_INTEGER - 1 <= number <= MAX_INTEGER:
        raise ValueError(f"{text} is out of range")
    return number


def _check(value: Any, what: str) -> None:
    """Walk without recursion: depth, and text that UTF-8 can carry.

    >>> _check({"a": [1, {"b": "ok"}]}, "x")
    >>> _check({"a": "party \\ud83d"}, "x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tornado_files.errors.InvalidJson: x holds text that is not valid Unicode ...
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise InvalidJson(detail=f"{what} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            for key, inner in item.items():
                _check_text(key, what)
                pending.append((inner, depth + 1))
        elif isinstance(item, list):
            pending.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            _check_text(item, what)


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJson(detail=f"{what} holds text that is not valid Unicode (a lone "
                                 "surrogate, as from a cut emoji)") from None
