"""Raster images (JPEG, PNG, GIF, WebP, TIFF, BMP, HEIC/HEIF, AVIF): metadata and derivatives.

The header is read first and an image over ``max_image_pixels`` is refused before any pixel
is decoded; Pillow's own bomb guard is then set to the same bound (its warning made an
error) for the decode, so frames or tiles declaring more are refused too. Animated images
give their first frame; EXIF orientation is applied to the derivatives (the metadata's
``width``/``height`` are the stored pixel dimensions, before orientation). HEIF's own
transformations (irot/imir) are applied by libheif, so its stored dimensions are already
the displayed ones.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pi_heif
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from tornado_files.media.derive import derived
from tornado_files.media.exif import exif_fields, orientation
from tornado_files.media.request import MediaFailure, MediaRequest, Outcome
from tornado_files.media.values import compact

# The Pillow plugins tried, nothing else (JPEG also opens MPO, the two-picture JPEG of phones).
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "HEIF", "AVIF")
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
                 TypeError, KeyError, ZeroDivisionError)


@contextmanager
def pixel_limit(limit: int | None) -> Iterator[None]:
    """Pillow's decompression-bomb bound (``Image.MAX_IMAGE_PIXELS``) set to ``limit`` and
    its warning (between 1x and 2x the bound) raised as an error, for the block only."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def too_many_pixels(width: int, height: int, limit: int) -> MediaFailure:
    return MediaFailure(
        f"The image is {width}x{height} pixels, more than max_image_pixels ({limit}) allows.",
        {"image": {"width": width, "height": height}})


def open_header(path: str, limit: int) -> ImageFile.ImageFile:
    """Opens ``path`` reading only its header and refuses it (MediaFailure) if it is not a
    supported image or has more than ``limit`` pixels. The caller closes the image."""
    pi_heif.register_heif_opener()
    try:
        # Image.open parses headers only; Pillow's own check would run after the plugin's
        # header parsing anyway, so lifting it here decodes nothing more and lets the
        # refusal name the dimensions.
        with pixel_limit(None):
            image = Image.open(path, formats=FORMATS)
    except UnidentifiedImageError as error:
        raise MediaFailure("The file is not an image in a format this server decodes.") \
            from error
    except DECODE_ERRORS as error:
        raise MediaFailure("The image header could not be read: the file is corrupt.") \
            from error
    width, height = image.size
    if width < 1 or height < 1 or width * height > limit:
        image.close()
        raise too_many_pixels(width, height, limit)
    return image


def image_metadata(image: Image.Image, width: int, height: int) -> dict[str, Any]:
    """``{"width", "height", "orientation", "exif": {...}}`` (docs/media.md), keys only
    where known. ``width``/``height`` are the header's (``draft`` may have shrunk the
    image); call it after ``load``, since PNG's ``getexif`` loads the pixels."""
    try:
        exif = image.getexif()
    except DECODE_ERRORS:
        exif = Image.Exif()
    return compact({"width": width, "height": height,
                    "orientation": orientation(exif), "exif": exif_fields(exif)})


def decode(image: ImageFile.ImageFile, request: MediaRequest, metadata: dict[str, Any]
           ) -> Image.Image:
    """The first frame decoded and oriented in place (EXIF orientation applied, no copy),
    under the pixel bound; ``metadata["image"]`` is completed from the loaded image's EXIF.
    JPEG and HEIF decode at a reduced scale when the derivatives need no more. The result
    is ``image`` itself: use it before closing the file."""
    largest = request.sizes.largest()
    with pixel_limit(request.max_image_pixels):
        image.seek(0)
        image.draft(None, (largest, largest))
        image.load()
        metadata["image"] = image_metadata(image, **metadata["image"])
        ImageOps.exif_transpose(image, in_place=True)
    return image


def process_image(request: MediaRequest) -> Outcome:
    """Metadata ``{"image": {...}}`` and the three derivatives of an image file. Raises
    MediaFailure (with the dimensions when known) for anything undecodable or too big."""
    image = open_header(request.source, request.max_image_pixels)
    with image:
        metadata = {"image": {"width": image.width, "height": image.height}}
        try:
            picture = decode(image, request, metadata)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise MediaFailure(
                "A frame of the image has more pixels than max_image_pixels "
                f"({request.max_image_pixels}) allows.", metadata) from error
        except DECODE_ERRORS as error:
            raise MediaFailure(
                "The image could not be decoded: it is truncated or corrupt.", metadata) \
                from error
        except MemoryError as error:
            raise MediaFailure("Decoding the image ran out of memory.", metadata) from error
        return derived(picture, request, metadata, DECODE_ERRORS)
