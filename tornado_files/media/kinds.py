"""Which media kind a sniffed MIME type is: decides whether a stored file gets a media job.

Imports nothing beyond the standard library: the server imports it on the upload path.
The names are the ones libmagic (``tornado_files.sniff``) reports for real files
(docs/media.md lists them per format).
"""

from __future__ import annotations

# Raster images Pillow (with pi-heif for HEIC/HEIF) decodes. libmagic says image/bmp
# (older magic databases: image/x-ms-bmp), image/heic for HEVC-coded HEIF, image/heif for
# other HEIF brands, image/avif for AVIF.
IMAGE_TYPES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/tiff",
    "image/bmp", "image/x-ms-bmp", "image/x-bmp",
    "image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence",
    "image/avif",
})
# Playlists and stream descriptions name other files or URLs; ffmpeg would follow them.
PLAYLIST_TYPES = frozenset({
    "audio/x-mpegurl", "audio/mpegurl", "application/vnd.apple.mpegurl",
    "application/x-mpegurl", "audio/x-scpls", "audio/x-ms-asx", "video/x-ms-asf-plugin",
})
DOCUMENT_TYPES = frozenset({"application/pdf"})
# Ogg whose first stream libmagic does not name: probed as video, which copes with audio only.
VIDEO_EXTRA_TYPES = frozenset({"application/ogg"})


def media_kind(mime_type: str) -> str | None:
    """The media kind of a MIME type as libmagic reports it: ``"image"``, ``"video"``,
    ``"audio"``, ``"document"`` or ``None`` (no media job: SVG, text, archives, playlists…).

    Parameters after ``;`` and letter case are ignored.

    >>> media_kind("image/jpeg"), media_kind("video/quicktime"), media_kind("audio/x-wav")
    ('image', 'video', 'audio')
    >>> media_kind("application/pdf"), media_kind("application/ogg")
    ('document', 'video')
    >>> media_kind("image/svg+xml") is None, media_kind("audio/x-mpegurl") is None
    (True, True)
    """
    essence = mime_type.split(";", 1)[0].strip().lower()
    if essence in PLAYLIST_TYPES:
        return None
    if essence in IMAGE_TYPES:
        return "image"
    if essence in DOCUMENT_TYPES:
        return "document"
    if essence in VIDEO_EXTRA_TYPES or essence.startswith("video/"):
        return "video"
    if essence.startswith("audio/"):
        return "audio"
    return None
