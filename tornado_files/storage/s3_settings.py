"""``[s3]``: where the S3 blob store keeps its objects (docs/object-storage.md).

Credentials are never part of it: botocore reads them from the standard AWS places
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``
and ``~/.aws/credentials``, instance roles), as every AWS tool does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tornado_files.tables import table

KEY = "s3"
_KEYS = {"bucket", "prefix", "endpoint", "region", "part_size", "download"}
_MIB = 1024 * 1024
# S3's limits on multipart uploads (AWS S3 User Guide, "Amazon S3 multipart upload limits"):
# every part but the last at least 5 MiB, at most 5 GiB, at most 10,000 parts.
MIN_PART_SIZE = 5 * _MIB
MAX_PART_SIZE = 5 * 1024 * _MIB
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 * _MIB
# Bucket names (AWS S3 User Guide, "Bucket naming rules"), loosely: S3-compatible services
# accept a little more (MinIO: the same rules).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Object keys are prefix + 32 hex; a prefix of plain path characters keeps them URL-safe.
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._/-]{0,200}$")
_REGION_RE = re.compile(r"^[a-z0-9-]{1,40}$")
DOWNLOADS = ("proxy", "redirect")


@dataclass(frozen=True)
class S3Settings:
    """One S3 (or S3-compatible) bucket. ``part_size`` in bytes; ``endpoint`` None is AWS."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    download: str = "proxy"


def parse_s3(raw: object, parse_size: Callable[[object, str], int]) -> S3Settings | None:
    """``[s3]`` (absent: None). Raises ``ValueError`` with one line naming the key."""
    if raw is None:
        return None
    values = table(raw, KEY, _KEYS)
    bucket = values.get("bucket")
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket):
        raise ValueError(f"s3.bucket: expected a bucket name like \"media\", got {bucket!r}")
    prefix = values.get("prefix", "")
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix) or prefix.startswith("/"):
        raise ValueError("s3.prefix: letters, digits and . _ / - only, not starting with /, "
                         f"got {prefix!r}")
    endpoint = values.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str)
                                 or not re.match(r"^https?://[^/\s]+/?$", endpoint)):
        raise ValueError("s3.endpoint: expected http(s)://host:port, got " f"{endpoint!r}")
    region = values.get("region")
    if region is not None and (not isinstance(region, str) or not _REGION_RE.match(region)):
        raise ValueError(f"s3.region: expected a region like \"eu-west-1\", got {region!r}")
    part_size = parse_size(values.get("part_size", DEFAULT_PART_SIZE), "s3.part_size")
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise ValueError("s3.part_size: S3 takes parts from 5MiB to 5GiB")
    download = values.get("download", "proxy")
    if download not in DOWNLOADS:
        raise ValueError(f"s3.download: expected \"proxy\" or \"redirect\", got {download!r}")
    return S3Settings(bucket=bucket, prefix=prefix, endpoint=endpoint, region=region,
                      part_size=part_size, download=download)


def part_size_for(base: int, part_number: int) -> int:
    """The size of part ``part_number`` (1-based) of an upload whose total is unknown: ``base``
    for the first 1,000 parts, then doubling every 1,000 parts (capped at 5 GiB), so 10,000
    parts reach far past S3's 5 TiB object limit while small files keep small parts.

    >>> part_size_for(8 * 1024 * 1024, 1) == part_size_for(8 * 1024 * 1024, 1000) == 8 * _MIB
    True
    >>> part_size_for(8 * _MIB, 1001) // _MIB, part_size_for(8 * _MIB, 10_000) // _MIB
    (16, 4096)
    """
    return min(base << ((part_number - 1) // 1000), MAX_PART_SIZE)
