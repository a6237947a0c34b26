"""CORS header lists: kept in one place so every handler (and tus, later) agrees."""

from __future__ import annotations

TUS_HEADERS = (
    "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm",
    "Upload-Length", "Upload-Offset", "Upload-Metadata", "Upload-Expires",
    "Upload-Checksum", "Upload-Defer-Length", "Upload-Concat",
)
ALLOWED_REQUEST_HEADERS = (
    "Authorization", "Cache-Control", "Content-Type", "Content-Disposition", "If-Match",
    "If-None-Match", "If-Range", "If-Modified-Since", "Range", "X-Auth-Token",
    "X-Filename", "X-HTTP-Method-Override", "X-Requested-With", "Prefer", *TUS_HEADERS,
)
EXPOSED_HEADERS = (
    "Location", "ETag", "Content-Range", "Content-Length", "Content-Disposition",
    "Accept-Ranges", "Last-Modified", "Retry-After", "WWW-Authenticate", "X-Request-Id",
    *TUS_HEADERS,
)
PREFLIGHT_MAX_AGE = 600
