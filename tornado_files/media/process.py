"""One media job: ``process(request) -> response`` dispatching on the file's media kind.

Response on success::

    {"ok": true, "metadata": {...},
     "derivatives": [{"kind", "path", "media_type", "width", "height"}, ...]}

and on a permanent failure ``{"ok": false, "error": "<one sentence>", "metadata": {...}}``
(what was learnt before it; ``{}`` if nothing). Partial output of a failed job is removed
from out_dir. Kind handlers are imported only when needed (a worker serving images never
loads PDFium).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from tornado_files.media.kinds import media_kind
from tornado_files.media.request import (
    DERIVATIVE_KINDS,
    OUTPUT_FORMATS,
    MediaFailure,
    MediaRequest,
    Outcome,
    parse_request,
)


def _run(kind: str, request: MediaRequest) -> Outcome:
    if kind == "image":
        from tornado_files.media.image import process_image
        return process_image(request)
    if kind == "video":
        from tornado_files.media.video import process_video
        return process_video(request)
    if kind == "audio":
        from tornado_files.media.audio import process_audio
        return process_audio(request)
    from tornado_files.media.pdf import process_pdf
    return process_pdf(request)


def _partial_outputs(request: MediaRequest) -> list[str]:
    ext = OUTPUT_FORMATS[request.format][0]
    return [f"{kind}.{ext}" for kind in DERIVATIVE_KINDS] + ["poster.png"]


def failure(message: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The failure response: ``{"ok": false, "error": message, "metadata": {...}}``."""
    return {"ok": False, "error": message, "metadata": metadata or {}}


def process(request: object) -> dict[str, Any]:
    """Runs one job (request and response shapes in the module docstring). Permanent
    failures (undecodable, truncated, too many pixels, broken PDF, ffmpeg timeout,
    MemoryError) are a failure response; any other exception propagates to the caller
    (the worker answers it as a failure too)."""
    try:
        parsed = parse_request(request)
    except MediaFailure as error:
        return failure(error.message)
    kind = media_kind(parsed.mime_type)
    if kind is None:
        return failure("The file's type has no media processing.")
    if not os.path.isfile(parsed.source):
        return failure("The source file does not exist.")
    try:
        outcome = _run(kind, parsed)
    except MediaFailure as error:
        _remove(parsed, _partial_outputs(parsed))
        return failure(error.message, error.metadata)
    except MemoryError:
        _remove(parsed, _partial_outputs(parsed))
        return failure("The job ran out of memory.")
    except BaseException:
        _remove(parsed, _partial_outputs(parsed))
        raise
    return {"ok": True, "metadata": outcome.metadata,
            "derivatives": [d.as_json() for d in outcome.derivatives]}


def _remove(request: MediaRequest, names: list[str]) -> None:
    """Deletes the named files of out_dir that exist; never anything outside it."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(request.out_dir, name))
