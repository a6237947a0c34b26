"""The Google Cloud Storage client and the edge where its errors become ours (STYLE.md habit 4).

google-cloud-storage's ``Client`` and the ``AuthorizedSession`` under it are synchronous and
thread-safe: every call runs on the store's own ``Offload`` pool, never on the event loop
(docs/object-storage.md says why this SDK). Resumable upload sessions speak the JSON API's
protocol directly over the same session (gcs_io.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as api_errors
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import AuthorizedSession
from google.cloud.storage import Bucket, Client
from google.cloud.storage.retry import DEFAULT_RETRY
from google.resumable_media.common import DataCorruption, InvalidResponse
from requests.adapters import HTTPAdapter

from tornado_files.blocking import Offload
from tornado_files.errors import BackendTimedOut, BackendUnavailable, BlobNotFound
from tornado_files.storage.gcs_settings import GOOGLE_ENDPOINT, GcsCredentials, GcsSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
# Seconds: connect, then of silence on an open connection. A dead store must turn into a 503
# quickly, not hang uploads (docs/object-storage.md).
TIMEOUT = (5.0, 15.0)
# The SDK retries for up to 120 s by default; a few seconds are enough to ride out a blip. The
# deadline is checked before each retry, so a call that stalled for a read timeout is not
# tried again: one attempt, about 15 s, on a store that stalls.
RETRY = DEFAULT_RETRY.with_timeout(2.0)


class GcsError(Exception):
    """A raw JSON-API call (a resumable session's) answered ``status``."""

    def __init__(self, action: str, status: int) -> None:
        super().__init__(f"{action}: HTTP {status}")
        self.status = status


def make_client(settings: GcsSettings, creds: GcsCredentials, endpoint: str | None,
                connections: int = 16) -> tuple[Client, AuthorizedSession]:
    """A storage client and its HTTP session (shared: one connection pool of
    ``connections``); ``endpoint`` None is Google's own."""
    session = AuthorizedSession(creds.requests)
    adapter = HTTPAdapter(pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    options = {"api_endpoint": endpoint} if endpoint else None
    client = Client(project=creds.project, credentials=creds.requests, _http=session,
                    client_options=options)
    return client, session


@contextmanager
def gcs_errors(action: str, missing_ok: bool = False) -> Iterator[None]:
    """The SDK's errors as ours: a missing object is ``BlobNotFound`` (swallowed with
    ``missing_ok``), anything else is logged and ``BackendUnavailable`` (503)."""
    try:
        yield
    except (api_errors.NotFound, BlobNotFound):
        if missing_ok:
            return
        raise BlobNotFound() from None
    except GcsError as exc:
        if exc.status == 404:
            if missing_ok:
                return
            raise BlobNotFound() from None
        log.warning("GCS %s failed: %s", action, exc)
        raise BackendUnavailable() from None
    except (api_errors.GoogleAPIError, GoogleAuthError, requests.RequestException,
            InvalidResponse, DataCorruption) as exc:
        log.warning("GCS %s failed: %s", action, type(exc).__name__)
        # A read timeout, raised as it is or as the cause of the retry's RetryError.
        timed_out = isinstance(exc, requests.ReadTimeout) or isinstance(
            exc.__cause__, requests.ReadTimeout)
        raise (BackendTimedOut() if timed_out else BackendUnavailable()) from None


class GcsCalls:
    """Blocking SDK calls on the pool, each translated by :func:`gcs_errors`."""

    def __init__(self, client: Client, session: AuthorizedSession, offload: Offload,
                 bucket: str, endpoint: str | None) -> None:
        self.client = client
        self.session = session
        self.offload = offload
        self.bucket: Bucket = client.bucket(bucket)
        self.base = (endpoint or GOOGLE_ENDPOINT).rstrip("/")

    async def run(self, action: str, fn: Callable[[], T], missing_ok: bool = False) -> T | None:
        """``fn()`` on the pool; None when the object is missing and ``missing_ok``."""
        with gcs_errors(action, missing_ok):
            return await self.offload(fn)
        return None

    async def must(self, action: str, fn: Callable[[], T]) -> T:
        """``fn()`` on the pool; a missing object raises ``BlobNotFound``."""
        with gcs_errors(action):
            return await self.offload(fn)
        raise AssertionError("unreachable")  # gcs_errors re-raises unless missing_ok

    def raw(self, action: str, method: str, url: str, ok: tuple[int, ...],
            **kwargs: Any) -> requests.Response:
        """One JSON-API request over the authorized session (blocking: call it on the pool);
        a status outside ``ok`` raises ``GcsError``."""
        answer: requests.Response = self.session.request(method, url, timeout=TIMEOUT,
                                                         **kwargs)
        if answer.status_code not in ok:
            raise GcsError(action, answer.status_code)
        return answer
