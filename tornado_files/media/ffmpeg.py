"""Running ffprobe and ffmpeg (Debian's programs, exec'd, never linked) on untrusted input.

Each run is an argv list (no shell) with stdin from /dev/null, SIGKILLed at the job's
timeout, and in the worker's process group, so the server's kill of a job that outlived
job_timeout takes ffmpeg with the worker. The child inherits the
worker's rlimits (RLIMIT_AS, RLIMIT_CPU). Inputs are opened with ``-protocol_whitelist
file`` and ``-format_whitelist`` of the container demuxers below: playlists (HLS, concat,
…) that would make ffmpeg read other files or the network are refused.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
from typing import Any

from tornado_files.media.parent import die_with_parent
from tornado_files.media.request import MediaFailure, MediaRequest

DEMUXERS = ",".join((
    "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "ogg", "flv", "asf", "mpegts",
    "mpeg", "mpegvideo", "m4v", "h264", "hevc", "ivf", "nut", "rm", "mp3", "aac", "ac3",
    "eac3", "dts", "flac", "wav", "aiff", "caf", "ape", "wv", "amr", "amrnb", "amrwb",
    "truehd", "w64", "au", "voc", "mpc", "mpc8", "tta", "dsf", "gif",
))
INPUT_OPTIONS = ("-protocol_whitelist", "file", "-format_whitelist", DEMUXERS)
# One decoding thread: ffmpeg's default is one per CPU, each with its own stack and frame
# buffers, which on a many-core host needs more address space than RLIMIT_AS leaves.
DECODE_OPTIONS = ("-threads", "1", "-filter_threads", "1")
MAX_OUTPUT = 4 * 1024 * 1024  # bytes of ffprobe JSON read at most


def run(argv: list[str], request: MediaRequest) -> subprocess.CompletedProcess[bytes]:
    """Runs ``argv`` capturing stdout and stderr; returns the result for any other exit
    status. Raises MediaFailure when it would outlast the request's timeout (what remains
    of it: the program is killed at that point), is missing, or ran out of
    memory: under RLIMIT_AS the loader cannot even map Debian's ffmpeg's libraries below
    roughly 300 MB."""
    name = os.path.basename(argv[0])
    late = MediaFailure(f"{name} did not finish within the job's {request.timeout:g} s timeout.")
    if request.remaining() <= 0:
        raise late
    try:
        # In the worker's own process group (no new session): when the server kills a job
        # that outlived job_timeout, it kills that group, and ffmpeg with it.
        child = subprocess.Popen(  # noqa: S603 - an argv list from this module, no shell
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            # The worker runs no threads that could hold a lock across the fork.
            preexec_fn=functools.partial(die_with_parent, os.getpid()))
    except OSError as error:
        raise MediaFailure(f"{name} could not be started.") from error
    try:
        out, err = child.communicate(timeout=max(request.remaining(), 0.001))
    except subprocess.TimeoutExpired as error:
        _kill(child)
        raise late from error
    except BaseException:
        _kill(child)
        raise
    if child.returncode == 127 or b"error while loading shared libraries" in err:
        raise MediaFailure(f"{name} could not start within the worker's memory limit.")
    if child.returncode != 0 and b"Cannot allocate memory" in err:
        raise MediaFailure(f"{name} ran out of memory within the worker's memory limit.")
    return subprocess.CompletedProcess(argv, child.returncode, out, err)


def _kill(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL to ffmpeg (which starts no processes of its own), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        child.kill()
    child.communicate()


def probe(request: MediaRequest) -> dict[str, Any]:
    """ffprobe's ``-show_format -show_streams`` JSON for the request's source: ``{"format": {...},
    "streams": [...]}``. Raises MediaFailure if ffprobe cannot read the file."""
    result = run(["ffprobe", "-v", "error", *INPUT_OPTIONS, "-print_format", "json",
                  "-show_format", "-show_streams", "file:" + request.source], request)
    if result.returncode != 0 or len(result.stdout) > MAX_OUTPUT:
        raise MediaFailure("ffprobe could not read the file: it is corrupt or not a media "
                           "format this server reads.")
    try:
        answer = json.loads(result.stdout)
    except ValueError as error:
        raise MediaFailure("ffprobe's answer could not be read.") from error
    if not isinstance(answer, dict) or not isinstance(answer.get("format"), dict):
        raise MediaFailure("ffprobe could not read the file's format.")
    streams = answer.get("streams")
    answer["streams"] = [s for s in streams if isinstance(s, dict)] \
        if isinstance(streams, list) else []
    return answer


def first_stream(probed: dict[str, Any], codec_type: str) -> dict[str, Any] | None:
    """The first stream of ``codec_type`` ("video", "audio"), skipping attached pictures
    (cover art in MP4/Matroska/MP3 is a one-frame "video" stream)."""
    for stream in probed["streams"]:
        disposition = stream.get("disposition")
        attached = isinstance(disposition, dict) and disposition.get("attached_pic") == 1
        if stream.get("codec_type") == codec_type and not attached:
            found: dict[str, Any] = stream
            return found
    return None
