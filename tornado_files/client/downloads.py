"""Downloads: resumed with a Range request from a part file, verified by sha256, never over
an existing file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from tornado_files.client.http import Api, ClientError
from tornado_files.client.localio import check_folder, local_error
from tornado_files.client.localname import local_name
from tornado_files.client.transfers import READ, Progress


def part_path(target: Path, sha256: str) -> Path:
    """Where the bytes of ``target`` wait until they are all in and verified: next to it,
    named after the content's sha256, so a later run resumes only a part file this client
    wrote for these very bytes (a file id's content never changes; its sha256 is its ETag).

    >>> part_path(Path("out/video.mp4"), "ab" * 32)
    PosixPath('out/video.mp4.abababababababab.part')
    """
    return target.with_name(f"{target.name}.{sha256[:16]}.part")


class Sink(Protocol):
    """Where :func:`download_to` writes: stdout (``-o -``)."""

    def write(self, chunk: bytes) -> None: ...

    def flush(self) -> None: ...


def download(api: Api, file_id: str, out: Path | None, start: Callable[[int], Progress]
             ) -> tuple[Path, dict[str, Any]]:
    """Fetch a file into ``out`` (default: its name made safe, :func:`local_name`: no dotfile,
    no path) without ever touching an existing file:
    one that is there already is refused, never resumed or overwritten, since nothing proves
    it holds these bytes. The bytes go to :func:`part_path` first; a part file left by an
    interrupted run is resumed with Range + If-Range on the sha256 ETag. At the end the part
    file is checked against the server's sha256 and renamed to ``out``.
    ``start(total)`` gives the progress callback; returns the path written and the file's
    record.

    Errors: ``ClientError`` — the server's refusal or an existing ``out`` (exit status 1),
    the server unreachable or the connection lost (3); ``LocalFileError`` (4) when a local
    file or folder cannot be written or read (a missing folder, a full disk), naming it (a
    part file left by a full disk is resumed by the next run)."""
    resource = dict(api.request("GET", f"/api/files/{quote(file_id)}").json())
    target = out or Path(local_name(str(resource["filename"])))
    check_folder(target)
    _refuse_existing(target)
    part = part_path(target, resource["sha256"])
    progress = start(resource["size"])
    try:
        have = part.stat().st_size if part.exists() else None
    except OSError as exc:
        raise local_error(exc, part, "read") from None
    if have != resource["size"]:  # else all bytes are in: only the check is left
        # A longer part file is no prefix of this file: it is fetched anew (200 → "wb").
        headers: dict[str, str] = {}
        if have and have < resource["size"]:
            headers = {"Range": f"bytes={have}-", "If-Range": f'"{resource["sha256"]}"'}
        _fetch(api, file_id, part, headers, have or 0, progress)
    if _sha256_of(part) != resource["sha256"]:
        _remove(part)
        raise ClientError(f"{target}: sha256 does not match the server's; download again")
    _rename_no_clobber(part, target)
    return target, resource


def download_to(api: Api, file_id: str, sink: Sink, start: Callable[[int], Progress]
                ) -> dict[str, Any]:
    """Write a file's content to ``sink`` as it arrives (``-o -``: no part file, so nothing
    to resume) and check it against the server's sha256 at the end; returns the record.

    Errors: as :func:`download`; a sha256 that does not match is ``ClientError`` (exit
    status 1) after the bytes went out; the sink's own (``StdoutClosed``, ``LocalFileError``)
    pass through."""
    resource = dict(api.request("GET", f"/api/files/{quote(file_id)}").json())
    progress = start(resource["size"])
    digest = hashlib.sha256()
    position = 0
    with api.stream(f"/api/files/{quote(file_id)}/content") as body:
        for chunk in body.chunks():
            sink.write(chunk)
            digest.update(chunk)
            position += len(chunk)
            progress(position)
    sink.flush()
    if digest.hexdigest() != resource["sha256"]:
        raise ClientError("what was written does not match the server's sha256; download "
                          "again")
    return resource


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(READ):
                digest.update(chunk)
    except OSError as exc:
        raise local_error(exc, path, "read") from None
    return digest.hexdigest()


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise local_error(exc, path, "remove") from None


def _refuse_existing(target: Path) -> None:
    if target.exists() or target.is_symlink():
        raise ClientError(f"{target} already exists; remove it or choose another name with -o")


def _fetch(api: Api, file_id: str, part: Path, headers: dict[str, str], have: int,
           progress: Progress) -> None:
    """Append the rest to ``part`` (206), or write it whole (200: no Range was asked, or the
    If-Range validator did not match). A failure to write ``part`` is ``LocalFileError``;
    what was written stays for the next run."""
    with api.stream(f"/api/files/{quote(file_id)}/content", headers, ok=(200, 206)) as body:
        position = have if body.status == 206 else 0
        progress(position)
        try:
            with part.open("ab" if body.status == 206 else "wb") as fh:
                for chunk in body.chunks():
                    fh.write(chunk)
                    position += len(chunk)
                    progress(position)
        except OSError as exc:  # body.chunks() raises ClientError: the network's
            raise local_error(exc, part) from None


def _rename_no_clobber(part: Path, target: Path) -> None:
    """``part`` becomes ``target`` unless a file appeared there meanwhile: a hard link fails
    on an existing name (atomically); where links are not supported, check, then rename."""
    try:
        os.link(part, target)
    except FileExistsError:
        raise ClientError(f"{target} already exists; remove it or choose another name "
                          f"with -o (the download is complete in {part})") from None
    except OSError:
        _refuse_existing(target)
        try:
            os.replace(part, target)
        except OSError as exc:
            raise local_error(exc, target) from None
        return
    _remove(part)
