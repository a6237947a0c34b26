"""Whole numbers a client sends (headers, query parameters, cursors): ASCII digits only and
bounded, so that no value reaches ``int()`` to fail there (``str.isdigit`` accepts "²", which
``int`` refuses, and ``int`` refuses more than 4300 digits) or a store to overflow there.
Pure."""

from __future__ import annotations

# The largest size, offset or length anything here stores (SQLite and BSON integers).
MAX_INT64 = 2**63 - 1


def whole(value: str | None, maximum: int = MAX_INT64) -> int | None:
    """``value`` as a whole number from 0 to ``maximum``, or None if it is anything else.

    >>> whole("12"), whole("007"), whole("²"), whole("٣"), whole("-1"), whole(""), whole(None)
    (12, 7, None, None, None, None, None)
    >>> whole("9223372036854775807"), whole("9223372036854775808"), whole("9" * 5000)
    (9223372036854775807, None, None)
    """
    if not value or not value.isascii() or not value.isdigit():
        return None
    digits = value.lstrip("0") or "0"
    if len(digits) > len(str(maximum)):
        return None
    number = int(digits)
    return number if number <= maximum else None


def saturated(digits: str) -> int:
    """ASCII digits as a number, any past ``MAX_INT64`` read as ``MAX_INT64`` (a byte position
    beyond every file).

    >>> saturated("0042"), saturated("9" * 5000) == MAX_INT64
    (42, True)
    """
    number = whole(digits)
    return MAX_INT64 if number is None else number
