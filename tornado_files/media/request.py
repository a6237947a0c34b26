"""A media job's request as the worker receives it, its failures, and what it produces.

The request is one JSON object (docs/media.md "Worker protocol")::

    {"source": "/abs/file", "mime_type": "image/jpeg", "out_dir": "/abs/empty/dir",
     "sizes": {"thumbnail": 200, "square_thumbnail": 200, "fullsize": 800},
     "format": "webp", "quality": 80, "max_image_pixels": 100000000, "timeout": 60.0}
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

DERIVATIVE_KINDS: tuple[str, ...] = ("thumbnail", "square_thumbnail", "fullsize")
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {  # format → (file extension, media type)
    "webp": ("webp", "image/webp"),
    "jpeg": ("jpg", "image/jpeg"),
}
MAX_SIDE = 10_000  # the largest derivative side a request may ask for, in pixels


class MediaFailure(Exception):
    """A permanent failure of one job: ``message`` is one human sentence (no paths, no
    tracebacks) and ``metadata`` what was learnt before it (same shape as on success)."""

    def __init__(self, message: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, Any] = metadata if metadata is not None else {}


@dataclass(frozen=True)
class Sizes:
    """Derivative sizes in pixels: longest side (thumbnail, fullsize), side of the square."""

    thumbnail: int
    square_thumbnail: int
    fullsize: int

    def largest(self) -> int:
        return max(self.thumbnail, self.square_thumbnail, self.fullsize)


@dataclass(frozen=True)
class MediaRequest:
    """A validated request. ``timeout`` is in seconds, the budget of all the job's
    ffmpeg/ffprobe runs together (counted from ``started``, a ``time.monotonic()``), so
    each run is also within it; ``max_image_pixels`` bounds width x height of anything
    decoded as an image."""

    source: str
    mime_type: str
    out_dir: str
    sizes: Sizes
    format: str = "webp"
    quality: int = 80
    max_image_pixels: int = 100_000_000
    timeout: float = 60.0
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        """Seconds left of ``timeout`` (may be zero or negative)."""
        return self.started + self.timeout - time.monotonic()

    def output_path(self, kind: str) -> str:
        """``out_dir/<kind>.<ext>`` (``kind`` is one of DERIVATIVE_KINDS or ``"poster"``)."""
        return os.path.join(self.out_dir, f"{kind}.{OUTPUT_FORMATS[self.format][0]}")

    @property
    def media_type(self) -> str:
        return OUTPUT_FORMATS[self.format][1]


@dataclass(frozen=True)
class Derivative:
    """One written derivative: its absolute path, media type and pixel dimensions."""

    kind: str
    path: str
    media_type: str
    width: int
    height: int

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "media_type": self.media_type,
                "width": self.width, "height": self.height}


@dataclass
class Outcome:
    """What a kind's handler returns: metadata and the derivatives it wrote (may be none)."""

    metadata: dict[str, Any]
    derivatives: list[Derivative] = field(default_factory=list)


def _integer(request: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MediaFailure(f"The request's {key} must be an integer from {low} to {high}.")
    return value


def _absolute(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
        raise MediaFailure(f"The request's {key} must be an absolute path.")
    return os.path.normpath(value)


def parse_request(request: object) -> MediaRequest:
    """Validates a decoded JSON request. Raises MediaFailure naming the first bad field
    (``out_dir`` must be an existing directory; ``source`` need not exist yet here)."""
    if not isinstance(request, dict):
        raise MediaFailure("The request is not a JSON object.")
    source, out_dir = _absolute(request, "source"), _absolute(request, "out_dir")
    if not os.path.isdir(out_dir):
        raise MediaFailure("The request's out_dir is not an existing directory.")
    mime_type = request.get("mime_type")
    if not isinstance(mime_type, str):
        raise MediaFailure("The request's mime_type must be a string.")
    sizes = request.get("sizes")
    if not isinstance(sizes, dict):
        raise MediaFailure("The request's sizes must be an object.")
    side = {kind: _integer(sizes, kind, 0, 1, MAX_SIDE) for kind in DERIVATIVE_KINDS}
    output = request.get("format", "webp")
    if output not in OUTPUT_FORMATS:
        raise MediaFailure("The request's format must be webp or jpeg.")
    timeout = request.get("timeout", 60.0)
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not math.isfinite(timeout) or timeout <= 0):
        raise MediaFailure("The request's timeout must be a positive number of seconds.")
    return MediaRequest(
        source=source, mime_type=mime_type, out_dir=out_dir, sizes=Sizes(**side),
        format=str(output), quality=_integer(request, "quality", 80, 1, 100),
        max_image_pixels=_integer(request, "max_image_pixels", 100_000_000, 1, 2**40),
        timeout=float(timeout))
