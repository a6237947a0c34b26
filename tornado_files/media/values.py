"""Turning decoded header values into plain JSON values: finite numbers, clean strings."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

MAX_TEXT = 1000  # characters kept of any extracted string


def text(value: object) -> str | None:
    """A stripped string without NULs or other C0 controls (but tab), at most MAX_TEXT
    characters; bytes are decoded as UTF-8 (replacing errors). None when empty or not text.

    >>> text(b"Canon\\x00\\x00 "), text("  "), text(3)
    ('Canon', None, None)
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = "".join(c for c in value if c == "\t" or (ord(c) >= 32 and c != "\x7f")).strip()
    return cleaned[:MAX_TEXT] or None


def number(value: object) -> float | None:
    """A finite float from an int, float, Fraction-like (IFDRational) or numeric string;
    None for NaN, infinities, zero denominators and anything else.

    >>> number("30000/1001") is None, number("2.5"), number(float("nan"))
    (True, 2.5, None)
    """
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, str):
            result = float(value)
        elif hasattr(value, "numerator") and hasattr(value, "denominator"):
            if value.denominator == 0:
                return None
            result = float(Fraction(int(value.numerator), int(value.denominator)))
        elif isinstance(value, int | float):
            result = float(value)
        else:
            return None
    except (ValueError, TypeError, OverflowError, ZeroDivisionError):
        return None
    return result if math.isfinite(result) else None


def ratio(value: object) -> float | None:
    """A finite float from ffprobe's ``"num/den"`` (frame rates) or a plain number string.

    >>> ratio("30000/1001"), ratio("0/0"), ratio("25")
    (29.97002997002997, None, 25.0)
    """
    if isinstance(value, str) and "/" in value:
        num, _, den = value.partition("/")
        try:
            fraction = Fraction(int(num), int(den))
        except (ValueError, ZeroDivisionError):
            return None
        return number(fraction) if fraction else None
    return number(value)


def integer(value: object) -> int | None:
    """A non-negative int from an int or digit string (ffprobe writes numbers as strings).

    >>> integer("44100"), integer("N/A"), integer(-1)
    (44100, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, int) and value >= 0:
        return value
    return None


def compact(mapping: dict[str, Any]) -> dict[str, Any]:
    """The mapping without None values and empty dicts (keys only where known).

    >>> compact({"a": 1, "b": None, "c": {}, "d": "x"})
    {'a': 1, 'd': 'x'}
    """
    return {k: v for k, v in mapping.items() if v is not None and v != {}}
