"""The one access line each answered request gets (Tornado's ``log_function`` setting), and
its count and duration in the metrics (docs/deploying.md)."""

from __future__ import annotations

import logging
import re
from typing import Any

from tornado.web import RequestHandler

from tornado_files.web.base import ApiHandler
from tornado_files.web.log_redaction import loggable_uri

access_log = logging.getLogger("tornado.access")
_FILE_ID = re.compile(r"[0-9a-f]{32}")
_CREATED = re.compile(r"/api/(?:files|tus)/([0-9a-f]{32})$")


def log_request(handler: RequestHandler) -> None:
    """At ERROR only for server faults, WARNING for other errors, else INFO. The text line
    is ``STATUS METHOD PATH (ADDRESS) DURATIONms``; the JSON line has every key of
    ``tornado_files.logs.ACCESS_KEYS`` too."""
    status = handler.get_status()
    fault = handler.server_fault if isinstance(handler, ApiHandler) else status >= 500
    level = logging.ERROR if fault else logging.WARNING if status >= 400 else logging.INFO
    request = handler.request
    path = loggable_uri(request.uri or "")
    access_log.log(level, "%d %s %s (%s) %.2fms", status, request.method, path,
                   request.remote_ip, 1000.0 * request.request_time(),
                   extra={"event": "request", **access_fields(handler, path)})
    handler.settings["services"].metrics.request(request.method, status, request.request_time())


def access_fields(handler: RequestHandler, path: str) -> dict[str, Any]:
    """What the JSON access line says beside the message (``path`` already redacted)."""
    request = handler.request
    api = handler if isinstance(handler, ApiHandler) else None
    return {
        "request_id": api.request_id if api is not None else None,
        "method": request.method,
        "path": path,
        "status": handler.get_status(),
        "duration_s": round(request.request_time(), 6),
        "bytes_in": api.received() if api is not None else 0,
        "bytes_out": api.bytes_out if api is not None else 0,
        "file_id": _file_id(handler),
        "principal": api.principal.name if api is not None else None,
    }


def _file_id(handler: RequestHandler) -> str | None:
    """The file (or tus upload) the request was about: its path's id, or the one it created."""
    for arg in getattr(handler, "path_args", None) or ():
        if isinstance(arg, str) and _FILE_ID.fullmatch(arg):
            return arg
    created = _CREATED.search(str(handler._headers.get("Location", "")))
    return created.group(1) if created else None
