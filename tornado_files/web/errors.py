"""The one place domain errors become HTTP statuses and JSON:API error documents."""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

from tornado_files import errors as e

log = logging.getLogger("tornado_files.web")

STATUS: dict[type[e.TornadoFilesError], int] = {
    e.FileFieldMissing: 400,
    e.EmptySelection: 400,
    e.TooManyFiles: 400,
    e.MalformedMultipart: 400,
    e.MalformedRequest: 400,
    e.InvalidJson: 400,
    e.InvalidParameter: 400,
    e.Unauthorized: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.MethodNotAllowed: 405,
    e.RequestTimeout: 408,
    e.RequestTooLarge: 413,
    e.FileTooLarge: 413,
    e.UnsupportedMediaType: 415,
    e.RangeNotSatisfiable: 416,
    e.InsufficientStorage: 507,
    e.BackendUnavailable: 503,
    e.InternalError: 500,
    e.StalledAppend: 503,
    e.TooManyUploads: 503,
    e.UploadConflict: 409,
    e.ShuttingDown: 503,
    e.ProcessingDisabled: 409,
    e.DuplicateKey: 409,
    e.UploadLocked: 423,
    e.UploadGone: 410,
    e.TusVersionUnsupported: 412,
    e.PreconditionFailed: 412,
    e.ChecksumMismatch: 460,
    e.RejectedByHook: 403,
    e.HookUnavailable: 503,
}

# Seconds a creation refused for too many unfinished uploads waits: places free up as uploads
# finish, are terminated, or expire and are swept.
TOO_MANY_UPLOADS_RETRY = 60

# Tornado's own HTTPErrors (405 for unknown methods, 400 for bad requests) by status.
FROM_STATUS: dict[int, type[e.TornadoFilesError]] = {
    400: e.InvalidParameter,
    401: e.Unauthorized,
    403: e.Forbidden,
    404: e.NotFound,
    405: e.MethodNotAllowed,
    413: e.RequestTooLarge,
    415: e.UnsupportedMediaType,
    416: e.RangeNotSatisfiable,
    503: e.BackendUnavailable,
}


def status_of(error: e.TornadoFilesError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_document(error: e.TornadoFilesError, error_id: str | None = None
                   ) -> tuple[int, str, dict[str, Any]]:
    """(status, error id, JSON:API document). The id is fresh unless given, and goes to the
    log too."""
    status = status_of(error)
    error_id = error_id or str(uuid4())
    body: dict[str, Any] = {
        "id": error_id,
        "status": str(status),
        "code": error.code,
        "title": error.title,
        # A server fault's own words may name paths or drivers: they stay in the log.
        "detail": error.default_detail if error.server_fault else error.detail,
    }
    if error.meta:
        body["meta"] = error.meta
    return status, error_id, {"errors": [body]}


def error_headers(error: e.TornadoFilesError) -> dict[str, str]:
    """Headers an error response must carry besides its body (RFC 9110 §15.5.17)."""
    if isinstance(error, e.RangeNotSatisfiable) and "size" in error.meta:
        return {"Content-Range": f"bytes */{error.meta['size']}"}
    if isinstance(error, e.TusVersionUnsupported):
        return {"Tus-Version": "1.0.0"}
    if isinstance(error, e.StalledAppend | e.ShuttingDown):
        return {"Retry-After": "1"}
    if isinstance(error, e.TooManyUploads):
        return {"Retry-After": str(TOO_MANY_UPLOADS_RETRY)}
    if isinstance(error, e.UploadLocked):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, e.Unauthorized):
        # RFC 6750 §3: the challenge; error="invalid_token" when a credential was sent.
        challenge = 'Bearer realm="tornado-files"'
        if error.invalid_token:
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}
    return {}
