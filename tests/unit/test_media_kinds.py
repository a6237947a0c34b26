"""media_kind on the MIME names libmagic reports for real files of each format."""

from __future__ import annotations

import magic
import pillow_heif
import pytest
from PIL import Image

from tests.media_support import ffmpeg
from tornado_files.media.kinds import media_kind

IMAGES = [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("GIF", "image/gif"),
          ("WEBP", "image/webp"), ("TIFF", "image/tiff"), ("BMP", "image/bmp"),
          ("HEIF", "image/heic"), ("AVIF", "image/avif")]


@pytest.mark.parametrize(("pillow_format", "expected"), IMAGES)
def test_libmagic_names_of_images_are_image(tmp_path, pillow_format, expected):
    pillow_heif.register_heif_opener()
    path = tmp_path / "picture"
    Image.new("RGB", (32, 24), (10, 200, 30)).save(path, pillow_format)
    sniffed = magic.from_file(str(path), mime=True)
    assert sniffed == expected
    assert media_kind(sniffed) == "image"


@pytest.mark.parametrize(("args", "kind"), [
    (["-f", "lavfi", "-i", "testsrc=d=0.2:s=32x24", "-c:v", "libx264", "-f", "mp4"], "video"),
    (["-f", "lavfi", "-i", "testsrc=d=0.2:s=32x24", "-f", "matroska"], "video"),
    (["-f", "lavfi", "-i", "testsrc=d=0.2:s=32x24", "-c:v", "libvpx", "-f", "webm"], "video"),
    (["-f", "lavfi", "-i", "testsrc=d=0.2:s=32x24", "-f", "avi"], "video"),
    (["-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "libmp3lame", "-f", "mp3"], "audio"),
    (["-f", "lavfi", "-i", "sine=d=0.2", "-f", "wav"], "audio"),
    (["-f", "lavfi", "-i", "sine=d=0.2", "-f", "flac"], "audio"),
    (["-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "libvorbis", "-f", "ogg"], "audio"),
], ids=["mp4", "mkv", "webm", "avi", "mp3", "wav", "flac", "ogg"])
def test_libmagic_names_of_audio_and_video(tmp_path, args, kind):
    path = tmp_path / "media"
    ffmpeg(*args, str(path))
    assert media_kind(magic.from_file(str(path), mime=True)) == kind


@pytest.mark.parametrize(("mime_type", "kind"), [
    ("image/x-ms-bmp", "image"), ("image/heif", "image"), ("video/quicktime", "video"),
    ("audio/x-m4a", "audio"), ("application/pdf", "document"), ("application/ogg", "video"),
    ("IMAGE/JPEG; charset=binary", "image"), ("image/svg+xml", None), ("text/plain", None),
    ("audio/x-mpegurl", None), ("application/zip", None), ("image/x-icon", None)])
def test_media_kind_names(mime_type, kind):
    assert media_kind(mime_type) == kind
