"""Durations as people type them on the command line: ``90s``, ``15m``, ``1h``, ``7d``."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([0-9]+)([smhd]?)")


def parse_duration(text: str) -> int:
    """Whole seconds (at least 1) from a number and an optional unit: ``s`` (the default),
    ``m``, ``h`` or ``d``. Raises ``ValueError`` with one line naming the accepted forms.

    >>> [parse_duration(t) for t in ("90s", "15m", "1h", "7d", "3600", " 2H ")]
    [90, 900, 3600, 604800, 3600, 7200]
    >>> parse_duration("1.5h")
    Traceback (most recent call last):
    ValueError: '1.5h' is not a duration: use a whole number and s, m, h or d, like 90s, 15m, 1h, 7d
    >>> parse_duration("0s")
    Traceback (most recent call last):
    ValueError: '0s' is not a duration: it must be at least 1 second
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use a whole number and s, m, h or d, "
                         "like 90s, 15m, 1h, 7d")
    seconds = int(match.group(1)) * UNITS[match.group(2) or "s"]
    if seconds < 1:
        raise ValueError(f"{text!r} is not a duration: it must be at least 1 second")
    return seconds


def format_duration(seconds: float) -> str:
    """The largest unit that states ``seconds`` exactly (rounded down to whole seconds).

    >>> [format_duration(s) for s in (604800, 7200, 5400, 90, 59.9)]
    ['7d', '2h', '90m', '90s', '59s']
    """
    whole = int(seconds)
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
