"""tus 1.0.0 header parsing and rendering (https://tus.io/protocols/resumable-upload). Pure.

>>> parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
{'filename': 'world_domination_plan.pdf', 'is_confidential': ''}
>>> parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")
('sha1', b'*\\xael5\\xc9O\\xcf\\xb4\\x15\\xdb\\xe9_@\\x8b\\x9c\\xe9\\x1e\\xe8F\\xed')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from tornado_files.errors import InvalidParameter, TusVersionUnsupported
from tornado_files.jsondata import check_data_size, parse_object
from tornado_files.numbers import whole

VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "checksum", "expiration")
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "md5")
CHUNK_TYPE = "application/offset+octet-stream"
# The Upload-Metadata key whose value is a JSON object merged into the file's ``data``.
DATA_KEY = "data"
_KEY = re.compile(r"^[A-Za-z0-9._~!$&'*+^`|-]+$")


def _bad(header: str, detail: str) -> InvalidParameter:
    return InvalidParameter(detail=detail, meta={"parameter": header})


def check_version(value: str | None) -> None:
    """Every request but OPTIONS must say ``Tus-Resumable: 1.0.0`` (else 412)."""
    if value != VERSION:
        raise TusVersionUnsupported()


def parse_length(value: str | None, header: str) -> int:
    """A non-negative decimal integer in ASCII digits, at most 2**63 - 1.

    >>> parse_length("0", "Upload-Offset"), parse_length("12", "Upload-Length")
    (0, 12)
    """
    number = whole(value)
    if number is None:
        raise _bad(header, f"{header} must be a non-negative integer")
    return number


def parse_metadata(value: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs, values optional.
    Strict: bad base64, non-UTF-8 values, bad or repeated keys are 400."""
    result: dict[str, str] = {}
    if not value or not value.strip():
        return result
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        if len(parts) > 2 or not _KEY.match(parts[0]) or parts[0] in result:
            raise _bad("Upload-Metadata", f"malformed Upload-Metadata pair {pair.strip()!r}")
        if len(parts) == 1:
            result[parts[0]] = ""
            continue
        try:
            decoded = base64.b64decode(parts[1], validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _bad("Upload-Metadata",
                       f"Upload-Metadata value of {parts[0]!r} is not base64 of UTF-8") from None
        result[parts[0]] = decoded
    return result


def upload_data(plain: dict[str, str], limit: int) -> dict[str, Any]:
    """The file's ``data`` from the Upload-Metadata pairs left once ``filename``,
    ``filetype`` and ``route`` are taken: each plain key with its value as a string, and the
    JSON object in the ``data`` key merged over them with its types (its keys win; a
    ``route`` or ``filename`` in it is data like any other). At most ``limit`` bytes as
    compact JSON (``max_json_body``).

    Errors: ``InvalidJson`` (400) when ``data`` is not a JSON object as
    :func:`tornado_files.jsondata.parse_object` accepts it (an empty value included);
    ``RequestTooLarge`` (413) past ``limit``.

    >>> upload_data({"title": "Q3", "data": '{"count": 3, "route": "/x"}'}, 1024)
    {'title': 'Q3', 'count': 3, 'route': '/x'}
    """
    data: dict[str, Any] = dict(plain)
    if DATA_KEY in data:
        raw = data.pop(DATA_KEY).encode("utf-8")
        data.update(parse_object(raw, "The Upload-Metadata value of 'data'"))
    check_data_size(data, limit)
    return data


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``; unknown algorithm → 400."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise _bad("Upload-Checksum", f"unsupported checksum algorithm {algorithm!r}")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("Upload-Checksum", "Upload-Checksum digest is not base64") from None
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise _bad("Upload-Checksum", "Upload-Checksum digest has the wrong length")
    return algorithm, digest


def options_headers(max_size: int) -> dict[str, str]:
    return {
        "Tus-Resumable": VERSION,
        "Tus-Version": VERSION,
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
