"""Audio files: metadata read by ffprobe (no mutagen: GPL; docs/media.md). No derivatives:
embedded cover art is ignored."""

from __future__ import annotations

from typing import Any

from tornado_files.media.ffmpeg import first_stream, probe
from tornado_files.media.request import MediaFailure, MediaRequest, Outcome
from tornado_files.media.values import compact, integer, number, text

# Our tag name → the container tag names ffprobe reports (compared case-insensitively).
TAGS: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "artist": ("artist", "album_artist", "author"),
    "album": ("album",),
    "date": ("date", "year", "originaldate"),
    "genre": ("genre",),
    "track": ("track", "tracknumber"),
}


def _lowered(tags: object) -> dict[str, object]:
    if not isinstance(tags, dict):
        return {}
    return {str(key).lower(): value for key, value in tags.items()}


def tags(probed: dict[str, Any], stream: dict[str, Any] | None) -> dict[str, str]:
    """``{"title", "artist", "album", "date", "genre", "track"}`` from the format's tags
    (ID3, MP4) or else the stream's (Vorbis comments in Ogg), names case-insensitive.
    All values are strings as the file gives them: ``track`` stays ``"3/12"`` or ``"3"``."""
    sources = (_lowered(probed["format"].get("tags")),
               _lowered(stream.get("tags") if stream else None))
    found: dict[str, str] = {}
    for name, keys in TAGS.items():
        for source in sources:
            value = next((text(source[k]) for k in keys if text(source.get(k))), None)
            if value is not None:
                found[name] = value
                break
    return found


def audio_fields(probed: dict[str, Any], stream: dict[str, Any] | None) -> dict[str, Any]:
    """``{"duration" (s), "bitrate" (bit/s), "sample_rate" (Hz), "channels", "codec",
    "tags": {...}}``, keys only where known."""
    fmt = probed["format"]
    stream = stream or {}
    return compact({
        "duration": number(fmt.get("duration")) or number(stream.get("duration")),
        "bitrate": integer(fmt.get("bit_rate")) or integer(stream.get("bit_rate")),
        "sample_rate": integer(stream.get("sample_rate")),
        "channels": integer(stream.get("channels")),
        "codec": text(stream.get("codec_name")),
        "tags": tags(probed, stream or None),
    })


def process_audio(request: MediaRequest) -> Outcome:
    """Metadata ``{"audio": {...}}`` of an audio file; no derivatives. Raises MediaFailure
    when ffprobe cannot read it or it has no audio stream."""
    probed = probe(request)
    stream = first_stream(probed, "audio")
    if stream is None:
        raise MediaFailure("The file has no audio stream.")
    return Outcome({"audio": audio_fields(probed, stream)})
