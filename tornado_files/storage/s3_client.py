"""The S3 client and the edge where its errors become ours (STYLE.md habit 4).

botocore's client is synchronous and thread-safe: every call runs on the application's
``Offload`` pool, never on the event loop (docs/object-storage.md says why botocore).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from tornado_files.blocking import Offload
from tornado_files.errors import BackendTimedOut, BackendUnavailable, BlobNotFound
from tornado_files.storage.s3_settings import S3Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# Seconds: to connect, and of silence on an open connection (docs/object-storage.md).
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 15
# Codes that mean "no such object / upload": a missing key is not an outage.
MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})


def make_client(settings: S3Settings, connections: int = 16) -> Any:
    """A botocore S3 client for ``settings``; credentials from the standard AWS chain. Few
    retries and short timeouts: a dead store must turn into a 503 quickly, not hang uploads.
    A store that stalls (takes the connection, never answers) costs one call at most two
    attempts of ``READ_TIMEOUT`` plus a back-off under a second: about 31 s.
    """
    config = BotoConfig(
        region_name=settings.region or "us-east-1",
        # Presigned URLs in SigV4: botocore still signs them in SigV2 for us-east-1 and custom
        # endpoints, which AWS refuses for buckets created since June 2020.
        signature_version="s3v4",
        # read_timeout is per socket read (a large part still streams): silence, not length.
        connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
        # Attempts in all, the first one included (botocore's ``max_attempts`` counts retries
        # only: 2 meant three attempts of 60 s each, three minutes on a stalled store).
        retries={"total_max_attempts": 2, "mode": "standard"},
        max_pool_connections=connections,
        # Path-style for S3-compatible services (MinIO, Ceph, moto) whose buckets have no DNS.
        s3={"addressing_style": "path" if settings.endpoint else "auto"},
        # Only where S3 requires it: newer botocore adds CRC checksums to every part, which
        # some S3-compatible services reject.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", endpoint_url=settings.endpoint, config=config)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def s3_errors(action: str, missing_ok: bool = False) -> Iterator[None]:
    """botocore's errors as ours: a missing object/upload is ``BlobNotFound`` (swallowed with
    ``missing_ok``), anything else is logged and ``BackendUnavailable`` (503)."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in MISSING:
            if missing_ok:
                return
            raise BlobNotFound() from None
        log.warning("S3 %s failed: %s", action, code or exc)
        raise BackendUnavailable() from None
    except BotoCoreError as exc:
        log.warning("S3 %s failed: %s", action, exc)
        timed_out = isinstance(exc, ReadTimeoutError)  # sent, no answer: may still take effect
        raise (BackendTimedOut() if timed_out else BackendUnavailable()) from None


class S3Calls:
    """The client's calls on the pool, each translated by :func:`s3_errors`."""

    def __init__(self, client: Any, offload: Offload, bucket: str) -> None:
        self.client = client
        self.offload = offload
        self.bucket = bucket

    async def call(self, action: str, method: str, missing_ok: bool = False,
                   **kwargs: Any) -> Any:
        """``client.<method>(Bucket=bucket, **kwargs)`` on the pool; None when missing and
        ``missing_ok``."""
        fn: Callable[..., Any] = getattr(self.client, method)
        with s3_errors(action, missing_ok):
            return await self.offload(fn, Bucket=self.bucket, **kwargs)
        return None

    async def run(self, action: str, fn: Callable[[], T]) -> T:
        """Any blocking ``fn`` (a body read) on the pool, translated alike."""
        with s3_errors(action):
            return await self.offload(fn)
        raise AssertionError("unreachable")  # s3_errors re-raises unless missing_ok
