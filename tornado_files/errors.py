"""Domain errors: each carries the stable API ``code``, a title, a detail and ``meta``.

No HTTP here (Starlette's habit): ``web/errors.py`` is the one place that turns these into
statuses and JSON:API documents. Backends raise these at their own edge so that no driver
or file-system message travels further.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TornadoFilesError(Exception):
    """Base of every error a client may be told about."""

    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"
    default_detail: ClassVar[str] = "The server could not complete the request"
    # A fault of the server or its stores (logged at ERROR with its cause), not of the client.
    server_fault: ClassVar[bool] = False

    def __init__(self, detail: str | None = None, meta: dict[str, Any] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.meta = dict(meta or {})
        super().__init__(self.detail)


class FileFieldMissing(TornadoFilesError):
    code = "file_field_missing"
    title = "No file was uploaded"
    default_detail = "Send the file in a part named 'file' (or 'files' for several)"


class EmptySelection(TornadoFilesError):
    code = "empty_selection"
    title = "No file was selected"
    default_detail = "A file part arrived with no filename and no content"


class TooManyFiles(TornadoFilesError):
    code = "too_many_files"
    title = "Too many files"
    default_detail = "Exactly one file must be uploaded per request"


class MalformedMultipart(TornadoFilesError):
    code = "malformed_multipart"
    title = "The multipart body could not be parsed"
    default_detail = "Check the body is multipart/form-data with the boundary it declares"


class MalformedRequest(TornadoFilesError):
    """The request's HTTP framing cannot be read (RFC 9112 §6): its body's end is unknown, so
    the connection closes after the answer."""

    code = "malformed_request"
    title = "The request could not be read"
    default_detail = ("The request's HTTP framing is malformed or not supported here "
                      "(Content-Length, Transfer-Encoding, chunk framing or a header line)")


class InvalidJson(TornadoFilesError):
    code = "invalid_json"
    title = "Invalid JSON"
    default_detail = "The JSON must be an object"


class InvalidParameter(TornadoFilesError):
    code = "invalid_parameter"
    title = "Invalid parameter"
    default_detail = "A parameter has a value the server does not accept"


class Unauthorized(TornadoFilesError):
    """No credential, or one that is not valid (RFC 6750 §3: ``invalid_token`` for a bad or
    expired one). The answer never says which part of a credential was wrong."""

    code = "unauthorized"
    title = "Authentication required"
    default_detail = ("Send a token: Authorization: Bearer <token> (or JWT <token>, or "
                      "X-Auth-Token)")

    def __init__(self, *, invalid_token: bool = False) -> None:
        super().__init__("The credential sent is not valid or has expired" if invalid_token
                         else None)
        self.invalid_token = invalid_token


class Forbidden(TornadoFilesError):
    code = "forbidden"
    title = "Forbidden"
    default_detail = "This is not yours to ask for"


class InvalidSignature(Forbidden):
    """A signed link that is altered, expired or not for this request; ``meta.expired``."""

    code = "invalid_signature"
    title = "The link's signature is not valid"
    default_detail = "The link was altered, has expired or is not for this request"

    def __init__(self, *, expired: bool) -> None:
        super().__init__("The link has expired" if expired else None,
                         meta={"expired": expired})


class NotFound(TornadoFilesError):
    code = "not_found"
    title = "Not found"
    default_detail = "There is nothing at this address"


class MethodNotAllowed(TornadoFilesError):
    code = "method_not_allowed"
    title = "Method not allowed"
    default_detail = "This address does not support that method"


class RequestTimeout(TornadoFilesError):
    code = "request_timeout"
    title = "The request body stopped arriving"
    default_detail = "No data arrived for too long; the upload was dropped"


class TooManyUploads(TornadoFilesError):
    """The server holds ``max_unfinished_uploads`` unfinished tus uploads. Answered 503 with
    ``Retry-After``: a capacity limit of the server, not the client's rate (429), and tus
    clients retry a 5xx on their own."""

    code = "too_many_uploads"
    title = "Too many unfinished uploads"
    default_detail = "The server holds too many unfinished uploads; try again later"


class StalledAppend(RequestTimeout):
    """A resumable upload's PATCH body stopped arriving. Answered 503 with ``Retry-After`` so
    every tus client retries and resumes (tusd answers read timeouts with a 5xx on purpose;
    tus-js-client never retries a 4xx but 409 and 423); the bytes stored so far are kept."""

    default_detail = "No data arrived for too long; what arrived is kept, resume the upload"


class RequestTooLarge(TornadoFilesError):
    code = "request_too_large"
    title = "Request content length is too great"
    default_detail = (
        "Check the content length of the request is less than the maximum allowed"
    )


class FileTooLarge(TornadoFilesError):
    code = "file_too_large"
    title = "File is too large"
    default_detail = "Check each file is smaller than the maximum allowed"


class FieldTooLarge(RequestTooLarge):
    """A non-file multipart field or a JSON body passed its small cap (still 413)."""

    title = "A form field is too large"
    default_detail = "Non-file fields and JSON bodies must be small"


class UnsupportedMediaType(TornadoFilesError):
    code = "unsupported_media_type"
    title = "Unsupported media type"
    default_detail = "The file's type is not accepted here"


class RangeNotSatisfiable(TornadoFilesError):
    code = "range_not_satisfiable"
    title = "Range not satisfiable"
    default_detail = "The requested range lies outside the file"


class InsufficientStorage(TornadoFilesError):
    server_fault = True
    code = "insufficient_storage"
    title = "Insufficient storage"
    default_detail = "The server has no room to store this upload"


class ShuttingDown(TornadoFilesError):
    """A request that began after the server started draining (docs/deploying.md, Shutdown):
    503 with ``Retry-After``; the requests already in flight go on."""

    code = "shutting_down"
    title = "Server shutting down"
    default_detail = ("This server is shutting down: retry, and another server (or this one, "
                      "restarted) answers")


class BackendUnavailable(TornadoFilesError):
    server_fault = True
    code = "backend_unavailable"
    title = "Storage backend unavailable"
    default_detail = "A storage backend did not answer; try again later"


class BackendTimedOut(BackendUnavailable):
    """A store call sent its request and gave up waiting for the answer (the store stalled):
    the call may still take effect later, e.g. a part landing after the upload's abort, so
    what it wrote is settled by the sweeper, not assumed gone. Answered as its parent."""


class RejectedByHook(TornadoFilesError):
    """The ``upload.pre_create`` hook answered non-2xx (docs/deploying.md, Webhooks): its
    JSON ``detail``, when it gave one, is the detail."""

    code = "rejected_by_hook"
    title = "Upload rejected"
    default_detail = "The server's upload hook rejected this upload"


class HookUnavailable(TornadoFilesError):
    """The ``upload.pre_create`` hook did not answer within its timeout (or refused the
    connection): the upload cannot be judged, so it is not taken."""

    code = "hook_unavailable"
    title = "Upload hook unavailable"
    default_detail = "The server's upload hook did not answer in time; try again later"


class DuplicateKey(TornadoFilesError):
    """A record with that id exists already (a conflict, not an outage: nothing was written)."""

    code = "conflict"
    title = "Conflict"
    default_detail = "Something with that id exists already"


class InternalError(TornadoFilesError):
    server_fault = True


class BlobNotFound(NotFound):
    """A blob store has no object under that key."""


class ProcessingDisabled(TornadoFilesError):
    """``POST /api/files/{id}/process`` for a file whose route derives nothing
    (``derivatives = false``, or ``[derivatives] enabled = false``)."""

    code = "processing_disabled"
    title = "Media processing is turned off"
    default_detail = "Media processing is turned off for this file's upload route"


class UploadConflict(TornadoFilesError):
    code = "offset_mismatch"
    title = "Upload offset mismatch"
    default_detail = "Upload-Offset does not match the upload's current offset"


class UploadLocked(TornadoFilesError):
    """Another request is writing this resumable upload (tusd: ErrUploadLocked, 423)."""

    code = "upload_locked"
    title = "Upload locked"
    default_detail = "Another request is writing to this upload; retry when it has finished"

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__()
        # Seconds until the holder's lease runs out (it is renewed while the holder lives).
        self.retry_after = retry_after


class PreconditionFailed(TornadoFilesError):
    """``If-Match`` named none of the resource's current ETags (RFC 9110 §13.1.1)."""

    code = "precondition_failed"
    title = "Precondition failed"
    default_detail = "The file changed since the ETag in If-Match was issued; read it again"


class TusVersionUnsupported(TornadoFilesError):
    code = "unsupported_tus_version"
    title = "Unsupported tus version"
    default_detail = "This server speaks tus 1.0.0 (Tus-Resumable: 1.0.0)"


class ChecksumMismatch(TornadoFilesError):
    code = "checksum_mismatch"
    title = "Checksum mismatch"
    default_detail = "The chunk does not match its Upload-Checksum; it was discarded"


class UploadGone(TornadoFilesError):
    code = "upload_expired"
    title = "Upload expired"
    default_detail = "The upload expired before it was finished"
