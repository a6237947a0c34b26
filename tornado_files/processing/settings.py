"""The ``[derivatives]`` table of the configuration (docs/media.md).

Every problem raises ``ValueError`` with one line a person can act on (``config`` turns it
into a ``ConfigError``).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from typing import Any

from tornado_files.tables import table

KEY = "derivatives"
FORMATS = {"webp": "image/webp", "jpeg": "image/jpeg"}
_MIB = 1024 * 1024
_KEYS = {"enabled", "format", "quality", "thumbnail", "square_thumbnail", "fullsize",
         "max_image_pixels", "workers", "job_timeout", "worker_memory", "worker_max_jobs",
         "max_attempts", "retry_delay"}


@dataclass(frozen=True)
class MediaSettings:
    """How media jobs run. Sizes in pixels, times in seconds, memory in bytes."""

    # False: no file gets a job (``processing: "none"``), as ``derivatives = false`` on a route.
    enabled: bool = True
    format: str = "webp"  # a key of FORMATS
    quality: int = 80  # 1-100, for both formats
    thumbnail: int = 200  # longest side
    square_thumbnail: int = 200  # side of the centre crop
    fullsize: int = 800  # longest side, never upscaled
    # Images with more pixels get no derivatives (``failed``): decoding one would take
    # width * height * 4 bytes or more. Pillow's own bomb guard defaults to about 89 MP.
    max_image_pixels: int = 100_000_000
    # Worker processes this server process runs jobs in; 0 runs none here (another process
    # sharing the metadata store runs them).
    workers: int = 2
    # Wall-clock seconds one job may take in its worker (the worker is killed after it); CPU
    # seconds are capped at the same figure by RLIMIT_CPU.
    job_timeout: float = 120.0
    # RLIMIT_AS of each worker process (and of the ffmpeg it starts).
    worker_memory: int = 1024 * _MIB
    # A worker process is replaced after this many jobs (bounds leaks in decoders).
    worker_max_jobs: int = 100
    # Runs of a job that end in a transient error (a worker that died, a store that failed)
    # before the file is marked ``failed``.
    max_attempts: int = 3
    # The first retry waits this long; each further one twice as long (at most an hour).
    retry_delay: float = 5.0

    @property
    def sizes(self) -> dict[str, int]:
        return {"thumbnail": self.thumbnail, "square_thumbnail": self.square_thumbnail,
                "fullsize": self.fullsize}

    @property
    def media_type(self) -> str:
        return FORMATS[self.format]


def _whole(raw: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"derivatives.{name}: expected a whole number from {low} to {high}, "
                         f"got {value!r}")
    return value


def _seconds(raw: dict[str, Any], name: str, low: float, high: float, default: float) -> float:
    value = raw.get(name, default)
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not low <= value <= high):
        raise ValueError(f"derivatives.{name}: expected seconds from {low:g} to {high:g}, "
                         f"got {value!r}")
    return float(value)


def parse_media(raw: object, parse_size: Any) -> MediaSettings:
    """``[derivatives]`` (absent: the defaults). ``parse_size`` reads ``worker_memory``."""
    if raw is None:
        return MediaSettings()
    values = table(raw, KEY, _KEYS)
    defaults = MediaSettings()
    enabled = values.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f"derivatives.enabled: expected true or false, got {enabled!r}")
    fmt = values.get("format", defaults.format)
    if fmt not in FORMATS:
        raise ValueError(f"derivatives.format: expected one of {sorted(FORMATS)}, got {fmt!r}")
    memory = parse_size(values.get("worker_memory", defaults.worker_memory),
                        "derivatives.worker_memory")
    if memory < 128 * _MIB:
        raise ValueError("derivatives.worker_memory: at least 128MiB (a worker process "
                         "with Pillow loaded needs about 40 MiB before it decodes anything)")
    return MediaSettings(
        enabled=enabled,
        format=fmt,
        quality=_whole(values, "quality", 1, 100, defaults.quality),
        thumbnail=_whole(values, "thumbnail", 16, 4096, defaults.thumbnail),
        square_thumbnail=_whole(values, "square_thumbnail", 16, 4096, defaults.square_thumbnail),
        fullsize=_whole(values, "fullsize", 16, 8192, defaults.fullsize),
        max_image_pixels=_whole(values, "max_image_pixels", 1, 2**40, defaults.max_image_pixels),
        workers=_whole(values, "workers", 0, 256, defaults.workers),
        job_timeout=_seconds(values, "job_timeout", 1, 86400, defaults.job_timeout),
        worker_memory=memory,
        worker_max_jobs=_whole(values, "worker_max_jobs", 1, 1_000_000, defaults.worker_max_jobs),
        max_attempts=_whole(values, "max_attempts", 1, 100, defaults.max_attempts),
        retry_delay=_seconds(values, "retry_delay", 0.01, 3600, defaults.retry_delay),
    )


def startup_warnings(settings: MediaSettings) -> tuple[str, ...]:
    """What start-up logs as warnings: media jobs on, but Debian's ffmpeg missing (videos
    and audio would all end ``failed``)."""
    if not settings.enabled or settings.workers == 0:
        return ()
    missing = [name for name in ("ffprobe", "ffmpeg") if shutil.which(name) is None]
    if not missing:
        return ()
    return (f"{' and '.join(missing)} not found on PATH: videos and audio files will get "
            "processing \"failed\" (install Debian's ffmpeg package)",)
