"""Shareable download links: ``POST /api/files/{id}/links`` made into an absolute URL that
anyone can fetch without a token until it expires (curl, a browser, a download manager)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tornado_files.client.durations import format_duration
from tornado_files.client.http import Api, ClientError


@dataclass(frozen=True)
class Link:
    url: str  # absolute: the server's base URL and the signed path with its query
    expires: str  # ISO 8601 UTC, as the server states it
    resource: dict[str, Any]  # the file's record


def make_link(api: Api, file_id: str, expires_in: int | None, inline: bool) -> Link:
    """A signed link to the content of ``file_id``, valid ``expires_in`` seconds (``None``:
    the server's default, an hour or its ``max_link_lifetime`` if shorter); ``inline`` asks
    browsers to show the file rather than save it.

    Errors (``ClientError``, exit status 1): the file's own (not found, 401, 403); a server
    without a ``signing_key`` makes no links; a lifetime over the server's
    ``max_link_lifetime``."""
    path = f"/api/files/{quote(file_id)}"
    resource = dict(api.request("GET", path).json())  # not found / 401 / 403 said plainly
    body: dict[str, Any] = {"disposition": "inline" if inline else "attachment"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    try:
        answer = api.request("POST", f"{path}/links", {"Content-Type": "application/json"},
                             json.dumps(body).encode(), ok=(201,))
    except ClientError as exc:
        raise _explained(exc, expires_in) from None
    made = answer.json()
    return Link(f"{api.base_url}{made['url']}", str(made["expires"]), resource)


def _explained(exc: ClientError, expires_in: int | None) -> ClientError:
    if exc.status == 404:  # the file was just found: it is the links endpoint that is not
        return ClientError("this server does not make signed links (it has no signing_key)")
    longest = exc.meta.get("max_link_lifetime")
    if exc.code == "invalid_parameter" and exc.meta.get("parameter") == "expires_in" \
            and isinstance(longest, int | float) and expires_in is not None:
        return ClientError(f"--expires {format_duration(expires_in)} is longer than this "
                           f"server allows (at most {format_duration(longest)})")
    return exc
