"""Real media for the media worker tests, made by Pillow and ffmpeg (``-f lavfi``)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, ImageCms
from PIL.TiffImagePlugin import IFDRational

SIZES = {"thumbnail": 200, "square_thumbnail": 200, "fullsize": 800}


def request(source: Path, mime_type: str, out_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A worker request for ``source`` with the default sizes, webp at quality 80."""
    out_dir.mkdir(exist_ok=True)
    return {"source": str(source), "mime_type": mime_type, "out_dir": str(out_dir),
            "sizes": dict(SIZES), "format": "webp", "quality": 80,
            "max_image_pixels": 100_000_000, "timeout": 30.0, **overrides}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


def brightness(path: str | BinaryIO) -> float:
    """Mean grey level (0-255) of an image file (a path or an open file)."""
    with Image.open(path) as image:
        grey = image.convert("L")
        histogram = grey.histogram()
        return sum(i * n for i, n in enumerate(histogram)) / (grey.width * grey.height)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(path: Path, width: int, height: int, *, bit_depth: int = 1,
                  colour_type: int = 0, rows: bool = False) -> None:
    """A greyscale PNG whose header declares ``width`` x ``height``. With ``rows`` the
    zero pixel data is really there (compressed, so the file stays small); without, the
    IDAT is a few bytes (a bomb that fails as soon as decoding starts)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    if rows:
        row = b"\x00" * (1 + (width * bit_depth + 7) // 8)
        packer = zlib.compressobj(1)
        body = b"".join(packer.compress(row * 256) for _ in range(height // 256))
        body += packer.compress(row * (height % 256)) + packer.flush()
    else:
        body = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body)
                     + _chunk(b"IEND", b""))


def camera_jpeg(path):
    """1600x1200 with EXIF orientation 6, camera fields, GPS south-west, an ICC profile and
    a comment."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    exif[0x0110] = "Model X\x00"
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = "2026:11:22 10:00:00"
    ifd[0x829A] = IFDRational(1, 250)
    ifd[0x829D] = IFDRational(28, 10)
    ifd[0x8827] = 400
    ifd[0x920A] = IFDRational(50, 1)
    ifd[0xA434] = "50mm f/2.8"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[3] = "S", "W"
    gps[2] = (IFDRational(33, 1), IFDRational(52, 1), IFDRational(30, 1))
    gps[4] = (IFDRational(151, 1), IFDRational(12, 1), IFDRational(36, 1))
    gps[5], gps[6] = b"\x01", IFDRational(25, 2)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (1600, 1200), (180, 40, 40)).save(
        path, "JPEG", exif=exif, icc_profile=icc, comment=b"secret comment")
