"""Uploads (multipart for small files, tus for large ones, resumable across runs), listing
and deletion. Downloads are in ``downloads``."""

from __future__ import annotations

import base64
import json
import mimetypes
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from tornado_files.client.http import Api, ClientError
from tornado_files.client.localio import LocalFileError, local_error
from tornado_files.client.state import ResumeState

Progress = Callable[[int], None]  # called with how many bytes of the file are done
READ = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


def _file_chunks(path: Path, start: int, end: int, progress: Progress) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` of ``path``, READ at a time. The body of a request: a
    failure to read is ``LocalFileError`` (exit status 4, naming ``path``), never taken for
    the network's."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            position = start
            while position < end:
                chunk = fh.read(min(READ, end - position))
                if not chunk:
                    raise LocalFileError(f"{path} changed while it was being uploaded")
                position += len(chunk)
                yield chunk
                progress(position)
    except OSError as exc:
        raise local_error(exc, path, "read") from None


def form_data_filename(name: str) -> str:
    """A filename as browsers write it into multipart/form-data (WHATWG HTML, "multipart/
    form-data encoding algorithm"): the name itself, sent as UTF-8, with only ``"``, CR and
    LF escaped as ``%22``, ``%0D`` and ``%0A``.

    >>> form_data_filename('résumé "v2"\\r\\n.pdf')
    'résumé %22v2%22%0D%0A.pdf'
    """
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


RETRIES = 16  # failures in a row before a transfer gives up: about 3 minutes (Backoff)


class Backoff:
    """Waits between the tries of one transfer: 0.5, 1, 2, 4, 8 s, then 15 s, or longer when
    the server says so in ``Retry-After`` (up to a minute); at most ``tries`` failures in a
    row. The default budget (:data:`RETRIES`, about 3 minutes) outlasts a server restart and
    the lease a PATCH cut short by it may still hold on the upload (423 until it runs out:
    60 s at least, twice ``idle_timeout``)."""

    def __init__(self, tries: int = RETRIES) -> None:
        self.tries = tries
        self.failures = 0

    @staticmethod
    def delay(failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row.

        >>> [Backoff.delay(n) for n in range(1, 8)], sum(map(Backoff.delay, range(1, 17)))
        ([0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0], 180.5)
        """
        return min(0.25 * 2.0**failures, 15.0)

    def wait(self, exc: ClientError, retryable: bool) -> None:
        """Sleep before the next try; re-raise ``exc`` if it is not retryable or the tries
        are used up."""
        if not retryable or self.failures >= self.tries:
            raise exc
        self.failures += 1
        delay = self.delay(self.failures)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, 60))
        time.sleep(delay)

    def reset(self) -> None:
        self.failures = 0


def upload_multipart(api: Api, path: Path, route: str, data: dict[str, Any] | None,
                     progress: Progress, retries: int = RETRIES) -> dict[str, Any]:
    """One multipart POST, streamed from the file (never read whole). A 408 (the server
    dropped a body that stopped arriving) is sent again from the start with back-off: a
    POST is all-or-nothing, so nothing of the dropped one was kept."""
    backoff = Backoff(retries)
    while True:
        try:
            return _post(api, path, route, data, progress)
        except ClientError as exc:
            backoff.wait(exc, exc.status == 408)
            progress(0)


def _post(api: Api, path: Path, route: str, data: dict[str, Any] | None,
          progress: Progress) -> dict[str, Any]:
    boundary = uuid.uuid4().hex
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    head = b""
    if data is not None:
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n'
                 f"Content-Type: application/json\r\n\r\n{json.dumps(data)}\r\n").encode()
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
             f'filename="{form_data_filename(path.name)}"\r\n'
             f"Content-Type: {ctype}\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size

    def body() -> Iterator[bytes]:
        yield head
        yield from _file_chunks(path, 0, size, progress)
        yield tail
    response = api.request("POST", route, {
        "Content-Type": f"multipart/form-data; boundary={boundary}"},
        body(), len(head) + size + len(tail), ok=(201,))
    return dict(response.json())


def tus_metadata(path: Path, route: str, data: dict[str, Any] | None) -> str:
    """``Upload-Metadata`` for a tus creation: ``filename``, ``route``, ``filetype``, and
    ``data`` as one JSON object (the server merges it into the file's data with its types;
    none of its keys can change the route or the name), each value base64 of UTF-8.

    >>> tus_metadata(Path("a.txt"), "/api/files", {"route": 1})
    'filename YS50eHQ=,route L2FwaS9maWxlcw==,filetype dGV4dC9wbGFpbg==,data eyJyb3V0ZSI6IDF9'
    """
    values = {"filename": path.name, "route": route,
              "filetype": mimetypes.guess_type(path.name)[0] or "application/octet-stream"}
    if data is not None:
        values["data"] = json.dumps(data)
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def upload_tus(api: Api, path: Path, route: str, data: dict[str, Any] | None,
               state: ResumeState, chunk_size: int, progress: Progress,
               retries: int = RETRIES) -> dict[str, Any]:
    """tus upload in ``chunk_size`` PATCHes; continues an upload a previous run began (one
    that belongs to another principal, begun with another token, is left alone: a new one
    starts). After network errors, 5xx other than 507 (a PATCH whose body stalled is answered
    503), 408, 409 and 423 it waits (:class:`Backoff`), asks the server's offset with HEAD
    (retried alike) and resumes from there; anything else is raised at once."""
    size = path.stat().st_size
    key = ResumeState.fingerprint(path, api.base_url, route)
    backoff = Backoff(retries)
    location = state.get(key)
    try:
        offset = _offset(api, location, backoff) if location else None
    except ClientError as exc:
        if exc.status != 403:
            raise
        offset = None  # another principal's upload: not ours to continue
    if location is None or offset is None:
        created = api.request("POST", "/api/tus/", {
            **TUS, "Upload-Length": str(size), "Upload-Metadata": tus_metadata(path, route, data)},
            b"", ok=(201,))
        location = created.headers["Location"]
        state.put(key, location)
        offset = 0
    progress(offset)
    while offset < size:
        end = min(offset + chunk_size, size)
        try:
            answer = api.request("PATCH", location, {
                **TUS, "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": str(offset)},
                _file_chunks(path, offset, end, progress), end - offset, ok=(204,))
            offset = int(answer.headers["Upload-Offset"])
            backoff.reset()
        except ClientError as exc:
            backoff.wait(exc, _retryable(exc))
            now = _offset(api, location, backoff)
            if now is None:
                state.drop(key)
                raise ClientError(f"{path}: the upload expired on the server; run the "
                                  "command again to start it over") from None
            offset = now
            progress(offset)  # back to what the server really holds
    state.drop(key)
    file_id = location.rstrip("/").rsplit("/", 1)[1]
    return dict(api.request("GET", f"/api/files/{file_id}").json())


def _retryable(exc: ClientError) -> bool:
    """Worth another try: the network (exit status 3), 408, 409, 423 and 5xx — but not 507:
    a full disk does not pass in minutes of back-off (the upload's state is kept, so running
    the command again once there is room continues it)."""
    status = exc.status or 0
    return exc.exit_code == 3 or status in (408, 409, 423) or (status >= 500 and status != 507)


def _offset(api: Api, location: str, backoff: Backoff) -> int | None:
    """The server's offset for an upload, or None when it is gone (404/410: start over)."""
    while True:
        try:
            response = api.request("HEAD", location, TUS)
        except ClientError as exc:
            if exc.status in (404, 410):
                return None
            backoff.wait(exc, _retryable(exc))
            continue
        return int(response.headers["Upload-Offset"])


def list_files(api: Api, params: dict[str, str]) -> dict[str, Any]:
    query = f"?{urlencode(params)}" if params else ""
    return dict(api.request("GET", f"/api/files{query}").json())


def remove(api: Api, file_id: str) -> None:
    api.request("DELETE", f"/api/files/{quote(file_id)}", ok=(204,))
