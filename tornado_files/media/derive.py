"""The three derivative images of a decoded picture, saved without any of its metadata.

``thumbnail``: longest side exactly N (small pictures are scaled up, so a grid lines up);
``square_thumbnail``: NxN, the centre of the picture cropped to a square;
``fullsize``: longest side N, never scaled up (a small picture keeps its size).
Outputs carry no EXIF, GPS, ICC profile, XMP or comments: each is saved from a fresh info.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageOps

from tornado_files.media.request import Derivative, MediaFailure, MediaRequest, Outcome

LANCZOS = Image.Resampling.LANCZOS
REDUCING_GAP = 2.0  # Pillow's fast integer reduce first, then Lanczos for the last step


def normalise(image: Image.Image) -> Image.Image:
    """The picture as RGB or RGBA (L for grey), 8 bits per channel: palette, CMYK,
    YCbCr, 1-bit, LA/PA and 16-bit or float images are converted (16-bit scaled, not
    clipped)."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "L"):
        return image
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("LA", "La", "PA", "RGBa", "RGBX"):
        return image.convert("RGBA" if mode != "RGBX" else "RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        wide = image.convert("F") if mode == "F" else image.convert("I")
        extrema = wide.getextrema()
        low, high = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]
        span = high - low or 1.0
        scaled = wide.point(lambda v: (v - low) * 255.0 / span)
        return scaled.convert("L")
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _fit_longest(size: tuple[int, int], side: int, upscale: bool) -> tuple[int, int]:
    width, height = size
    scale = side / max(width, height)
    if scale >= 1 and not upscale:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if size == image.size:
        return image.copy()
    return image.resize(size, LANCZOS, reducing_gap=REDUCING_GAP)


def _for_format(image: Image.Image, output: str) -> Image.Image:
    if output == "jpeg" and image.mode == "RGBA":  # JPEG has no alpha: flatten onto white
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
        return flat
    if output == "webp" and image.mode == "L":
        return image.convert("RGB")
    return image


def _save(image: Image.Image, request: MediaRequest, kind: str) -> Derivative:
    out = _for_format(image, request.format)
    out.info = {}  # nothing of the source's metadata (exif, icc_profile, xmp, comment…)
    path = request.output_path(kind)
    if os.path.dirname(path) != request.out_dir:
        raise ValueError("a derivative path left out_dir")
    if request.format == "jpeg":
        out.save(path, "JPEG", quality=request.quality, optimize=True)
    else:
        out.save(path, "WEBP", quality=request.quality, method=4)
    return Derivative(kind, path, request.media_type, out.width, out.height)


def derivatives(image: Image.Image, request: MediaRequest) -> list[Derivative]:
    """Writes ``thumbnail``, ``square_thumbnail`` and ``fullsize`` for ``image`` (already
    oriented, one frame) into ``request.out_dir`` and returns them in that order. Raises
    what Pillow raises (OSError, MemoryError)."""
    picture = normalise(image)
    sizes = request.sizes
    makers: list[tuple[str, Callable[[], Image.Image]]] = [
        ("thumbnail", lambda: _resized(
            picture, _fit_longest(picture.size, sizes.thumbnail, upscale=True))),
        ("square_thumbnail", lambda: ImageOps.fit(
            picture, (sizes.square_thumbnail, sizes.square_thumbnail), LANCZOS)),
        ("fullsize", lambda: _resized(
            picture, _fit_longest(picture.size, sizes.fullsize, upscale=False))),
    ]
    return [_save(make(), request, kind) for kind, make in makers]


def derived(image: Image.Image, request: MediaRequest, metadata: dict[str, Any],
            errors: tuple[type[Exception], ...] = (OSError, ValueError)) -> Outcome:
    """``metadata`` and the derivatives of ``image`` (``derivatives``); running out of memory
    or one of ``errors`` (a decoder may still read pixels here) is a ``MediaFailure`` that
    keeps ``metadata``."""
    try:
        return Outcome(metadata, derivatives(image, request))
    except MemoryError as error:
        raise MediaFailure("Making the derivatives ran out of memory.", metadata) from error
    except errors as error:
        raise MediaFailure("The derivatives could not be written.", metadata) from error
