"""The Azure Blob client and the edge where its errors become ours (STYLE.md habit 4).

azure-storage-blob's sync ``ContainerClient`` is thread-safe: every call runs on the store's
own ``Offload`` pool, never on the event loop (docs/object-storage.md says why this SDK).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests
from azure.core.exceptions import AzureError, ResourceNotFoundError, ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import ContainerClient, ExponentialRetry
from requests.adapters import HTTPAdapter

from tornado_files.blocking import Offload
from tornado_files.errors import BackendTimedOut, BackendUnavailable, BlobNotFound
from tornado_files.storage.azure_settings import AzureCredentials, AzureSettings, account_url

log = logging.getLogger(__name__)
T = TypeVar("T")
# Seconds: to connect, and of silence on an open connection (docs/object-storage.md).
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 15


def make_container(settings: AzureSettings, creds: AzureCredentials,
                   connections: int = 16) -> ContainerClient:
    """A container client; few retries and short timeouts so a dead store is a quick 503: a
    store that stalls costs one call two attempts of ``READ_TIMEOUT`` and a back-off of 1-2 s,
    about 32 s."""
    # requests keeps 10 connections per host by default; the pool has ``connections`` threads.
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    options: dict[str, Any] = {
        # One retry after about a second (the SDK's default waits 15 s and more, three times).
        "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=1,
                                         random_jitter_range=1),
        # Downloads fetch 1 MiB per ranged GET (the SDK's first GET would buffer 32 MiB).
        "max_single_get_size": 1024 * 1024, "max_chunk_get_size": 1024 * 1024,
        # The timeouts go to the transport: one passed in ignores the client's own
        # ``read_timeout`` and keeps azure-core's default of 300 s.
        "transport": RequestsTransport(session=session, session_owner=True,
                                       connection_timeout=CONNECT_TIMEOUT,
                                       read_timeout=READ_TIMEOUT)}
    url = account_url(settings, creds.account)
    if creds.connection_string and not settings.endpoint:
        return ContainerClient.from_connection_string(
            creds.connection_string, settings.container, **options)
    credential: Any = None
    if creds.key:
        credential = {"account_name": creds.account, "account_key": creds.key}
    elif creds.connection_string:
        fields = dict(p.split("=", 1) for p in creds.connection_string.split(";") if "=" in p)
        credential = fields.get("SharedAccessSignature")
    return ContainerClient(url, settings.container, credential=credential, **options)


@contextmanager
def azure_errors(action: str, missing_ok: bool = False) -> Iterator[None]:
    """The SDK's errors as ours: a missing blob/container is ``BlobNotFound`` (swallowed with
    ``missing_ok``), anything else is logged and ``BackendUnavailable`` (503)."""
    try:
        yield
    except ResourceNotFoundError:
        if missing_ok:
            return
        raise BlobNotFound() from None
    except AzureError as exc:
        log.warning("Azure %s failed: %s", action, type(exc).__name__)
        # Sent, but no answer (a read timeout among them): it may still take effect.
        timed_out = isinstance(exc, ServiceResponseError)
        raise (BackendTimedOut() if timed_out else BackendUnavailable()) from None


class AzureCalls:
    """Blocking SDK calls on the pool, each translated by :func:`azure_errors`."""

    def __init__(self, container: ContainerClient, offload: Offload) -> None:
        self.container = container
        self.offload = offload

    async def run(self, action: str, fn: Callable[[], T], missing_ok: bool = False) -> T | None:
        """``fn()`` on the pool; None when the blob is missing and ``missing_ok``."""
        with azure_errors(action, missing_ok):
            return await self.offload(fn)
        return None

    async def must(self, action: str, fn: Callable[[], T]) -> T:
        """``fn()`` on the pool; a missing blob raises ``BlobNotFound``."""
        with azure_errors(action):
            return await self.offload(fn)
        raise AssertionError("unreachable")  # azure_errors re-raises unless missing_ok
