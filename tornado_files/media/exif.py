"""EXIF fields of a decoded image header, as plain JSON values (docs/media.md)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from PIL import Image

from tornado_files.media.values import compact, number, text

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
ORIENTATION = 0x0112
MAKE, MODEL = 0x010F, 0x0110
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
EXPOSURE_TIME, F_NUMBER, ISO, FOCAL_LENGTH, LENS_MODEL = 0x829A, 0x829D, 0x8827, 0x920A, 0xA434
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6
_OFFSET = re.compile(r"[+-]\d\d:\d\d")


def orientation(exif: Image.Exif) -> int | None:
    """The EXIF Orientation (1-8) if present and valid."""
    value = exif.get(ORIENTATION)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _first(value: object) -> object:
    return value[0] if isinstance(value, tuple | list) and value else value


def _datetime(value: object, offset: object) -> str | None:
    """EXIF ``"YYYY:MM:DD HH:MM:SS"`` as ISO 8601 (``"2026-11-22T10:00:00"``), with the
    OffsetTimeOriginal (``"+01:00"``) appended when there is a valid one."""
    raw = text(value)
    if raw is None:
        return None
    try:
        moment = datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = text(offset)
    return moment.isoformat() + (zone if zone and _OFFSET.fullmatch(zone) else "")


def _degrees(value: object, ref: object, negative: str) -> float | None:
    """Degrees/minutes/seconds rationals and an N/S or E/W reference → signed degrees."""
    if not isinstance(value, tuple | list) or len(value) != 3:
        return None
    parts = [number(part) for part in value]
    if any(part is None or part < 0 for part in parts):
        return None
    degrees, minutes, seconds = (float(part) for part in parts if part is not None)
    result = degrees + minutes / 60 + seconds / 3600
    return -result if text(ref) == negative else result


def _gps(gps: dict[int, Any]) -> dict[str, Any]:
    latitude = _degrees(gps.get(GPS_LAT), gps.get(GPS_LAT_REF), "S")
    longitude = _degrees(gps.get(GPS_LON), gps.get(GPS_LON_REF), "W")
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        return {}
    altitude = number(gps.get(GPS_ALT))
    below = gps.get(GPS_ALT_REF) in (1, b"\x01")
    return compact({"latitude": round(latitude, 7), "longitude": round(longitude, 7),
                    "altitude": None if altitude is None else (-altitude if below else altitude)})


def exif_fields(exif: Image.Exif) -> dict[str, Any]:
    """``{"make", "model", "lens", "datetime_original", "exposure_time" (s), "f_number",
    "iso", "focal_length" (mm), "gps": {"latitude", "longitude" (signed degrees),
    "altitude" (m)}}`` with only the keys that are present and valid (exposure, f-number,
    ISO and focal length only when above zero)."""
    try:
        ifd = exif.get_ifd(EXIF_IFD)
        gps = exif.get_ifd(GPS_IFD)
    except (KeyError, ValueError, TypeError, SyntaxError, OSError):  # a broken sub-IFD
        ifd, gps = {}, {}
    iso = positive(number(_first(ifd.get(ISO))))
    return compact({
        "make": text(exif.get(MAKE)),
        "model": text(exif.get(MODEL)),
        "lens": text(ifd.get(LENS_MODEL)),
        "datetime_original": _datetime(ifd.get(DATETIME_ORIGINAL),
                                       ifd.get(OFFSET_TIME_ORIGINAL)),
        "exposure_time": positive(number(ifd.get(EXPOSURE_TIME))),
        "f_number": positive(number(ifd.get(F_NUMBER))),
        "iso": None if iso is None else int(iso),
        "focal_length": positive(number(ifd.get(FOCAL_LENGTH))),
        "gps": _gps(gps),
    })


def positive(value: float | None) -> float | None:
    """``value`` when above zero: a camera's exposure, f-number, ISO or focal length is.

    >>> positive(-50.0), positive(0.0), positive(2.8)
    (None, None, 2.8)
    """
    return value if value is not None and value > 0 else None
