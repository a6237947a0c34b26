"""The media column of ``tornado-files ls --long``: a file's dimensions, duration or page
count from its extracted metadata (docs/media.md), and its processing state unless done."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Processing states worth a word in the column; "done" and "none" say nothing.
SHOWN_STATES = ("pending", "failed")


def clock(seconds: float) -> str:
    """A duration as people read it: tenths of a second under a minute, else ``m:ss`` or
    ``h:mm:ss`` (rounded to the second).

    >>> [clock(s) for s in (2.0, 0.04, 59.94, 62.4, 3723.0, 36000)]
    ['2.0s', '0.0s', '59.9s', '1:02', '1:02:03', '10:00:00']
    """
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _dimensions(facts: Mapping[str, Any]) -> str | None:
    width, height = facts.get("width"), facts.get("height")
    if isinstance(width, int) and isinstance(height, int) and not isinstance(width, bool):
        return f"{width}×{height}"
    return None


def _duration(facts: Mapping[str, Any]) -> str | None:
    seconds = _number(facts.get("duration"))
    return clock(seconds) if seconds is not None and seconds >= 0 else None


def _pages(facts: Mapping[str, Any]) -> str | None:
    pages = facts.get("pages")
    if isinstance(pages, int) and not isinstance(pages, bool):
        return f"{pages} page" if pages == 1 else f"{pages} pages"
    return None


def _facts(metadata: Mapping[str, Any]) -> list[str]:
    parts: list[str | None] = []
    for kind, readers in (("image", (_dimensions,)), ("video", (_dimensions, _duration)),
                          ("audio", (_duration,)), ("document", (_pages,))):
        facts = metadata.get(kind)
        if isinstance(facts, Mapping):
            parts.extend(reader(facts) for reader in readers)
    return [part for part in parts if part]


def media_column(resource: Mapping[str, Any]) -> str:
    """``1600×1200``, ``2.0s``, ``1920×1080 1:02:03``, ``3 pages``, then ``pending`` or
    ``failed`` when the job has not ended well; ``-`` when there is nothing to say.

    >>> media_column({"processing": "done", "metadata": {"image": {"width": 1600,
    ...     "height": 1200, "orientation": 6}}})
    '1600×1200'
    >>> media_column({"processing": "failed", "metadata": {"error": "Truncated.",
    ...     "image": {"width": 400, "height": 300}}})
    '400×300 failed'
    >>> media_column({"processing": "pending", "metadata": {}})
    'pending'
    >>> media_column({"processing": "none", "metadata": {}})
    '-'
    """
    metadata = resource.get("metadata")
    parts = _facts(metadata) if isinstance(metadata, Mapping) else []
    state = resource.get("processing")
    if state in SHOWN_STATES:
        parts.append(str(state))
    return " ".join(parts) or "-"
