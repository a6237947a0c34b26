"""Videos: metadata read by ffprobe and a poster frame made by ffmpeg, then the derivatives.

The poster comes from early in the video but not its first frame (often black): ffmpeg
seeks to 10 % of the duration (at most POSTER_SEEK_MAX seconds) and its ``thumbnail``
filter picks the most representative of the next POSTER_CANDIDATES frames. A video shorter
than the seek point (or with a wrong duration) is tried again from its start. Rotation
(the display matrix) is honoured in the poster and derivatives (ffmpeg's default
autorotate) but not in the metadata: ``width``/``height`` are the stored dimensions.
A file with no video stream (Ogg audio sniffed as ``application/ogg``) gets the audio
metadata ``{"audio": {...}}`` and no derivatives.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from typing import Any

from tornado_files.media.audio import audio_fields
from tornado_files.media.ffmpeg import DECODE_OPTIONS, INPUT_OPTIONS, first_stream, probe, run
from tornado_files.media.image import process_image
from tornado_files.media.request import MediaFailure, MediaRequest, Outcome
from tornado_files.media.values import compact, integer, number, ratio, text

POSTER_SEEK_MAX = 3.0  # seconds
POSTER_CANDIDATES = 30  # frames the thumbnail filter compares (it holds them all in memory)
POSTER_NAME = "poster.png"


def video_fields(probed: dict[str, Any], stream: dict[str, Any]) -> dict[str, Any]:
    """``{"duration" (s), "width", "height" (stored pixels), "codec", "frame_rate" (fps),
    "bitrate" (bit/s), "audio_codec"}``, keys only where known."""
    fmt = probed["format"]
    audio = first_stream(probed, "audio")
    return compact({
        "duration": number(fmt.get("duration")) or number(stream.get("duration")),
        "width": integer(stream.get("width")) or None,
        "height": integer(stream.get("height")) or None,
        "codec": text(stream.get("codec_name")),
        "frame_rate": ratio(stream.get("avg_frame_rate")) or ratio(stream.get("r_frame_rate")),
        "bitrate": integer(fmt.get("bit_rate")) or integer(stream.get("bit_rate")),
        "audio_codec": text(audio.get("codec_name")) if audio else None,
    })


def _poster(request: MediaRequest, seek: float, path: str) -> bool:
    """One PNG frame at ``path``, scaled down to the largest derivative size (never up).
    True when ffmpeg wrote one."""
    side = request.sizes.largest()
    scale = (f"scale=w='min(iw,{side})':h='min(ih,{side})'"
             ":force_original_aspect_ratio=decrease")
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", *DECODE_OPTIONS, *INPUT_OPTIONS,
         "-ss", f"{seek:.3f}",
         "-i", "file:" + request.source, "-map", "0:V:0", "-an", "-sn", "-dn",
         "-vf", f"{scale},thumbnail=n={POSTER_CANDIDATES}", "-frames:v", "1",
         "-f", "image2", "-c:v", "png", "file:" + path], request)
    return os.path.isfile(path) and os.path.getsize(path) > 0


def poster_frame(request: MediaRequest, duration: float | None) -> str:
    """Writes the poster frame as ``out_dir/poster.png`` and returns its path. Raises
    MediaFailure when no frame can be decoded."""
    path = os.path.join(request.out_dir, POSTER_NAME)
    seek = min((duration or 0.0) * 0.1, POSTER_SEEK_MAX)
    if _poster(request, seek, path) or (seek > 0 and _poster(request, 0.0, path)):
        return path
    raise MediaFailure("No frame of the video could be decoded.")


def process_video(request: MediaRequest) -> Outcome:
    """Metadata ``{"video": {...}}`` and the three derivatives of the poster frame (the
    PNG is removed afterwards). Raises MediaFailure when ffprobe/ffmpeg cannot read it."""
    probed = probe(request)
    stream = first_stream(probed, "video")
    if stream is None:
        audio = first_stream(probed, "audio")
        if audio is None:
            raise MediaFailure("The file has neither a video nor an audio stream.")
        return Outcome({"audio": audio_fields(probed, audio)})
    metadata = {"video": video_fields(probed, stream)}
    try:
        path = poster_frame(request, metadata["video"].get("duration"))
        outcome = process_image(replace(request, source=path, mime_type="image/png"))
    except MediaFailure as failure:
        raise MediaFailure(failure.message, metadata) from failure
    finally:
        _remove(os.path.join(request.out_dir, POSTER_NAME))
    return Outcome(metadata, outcome.derivatives)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
