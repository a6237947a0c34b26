"""The HTTP client webhooks are sent with: Tornado's ``AsyncHTTPClient``, one instance of our
own (``force_instance``) so that its ``max_clients`` bounds our requests and nobody else's."""

from __future__ import annotations

import hashlib
import hmac

from tornado.httpclient import AsyncHTTPClient

# Requests in flight at once; more wait in the client's queue (their timeout includes it).
DEFAULT_MAX_CLIENTS = 64


class HookHttp:
    """Made on first use (inside the running event loop), closed by ``close()``."""

    def __init__(self, max_clients: int = DEFAULT_MAX_CLIENTS) -> None:
        self._max_clients = max_clients
        self._client: AsyncHTTPClient | None = None

    def client(self) -> AsyncHTTPClient:
        if self._client is None:
            self._client = AsyncHTTPClient(force_instance=True, max_clients=self._max_clients)
        return self._client

    def close(self) -> None:
        """Idempotent."""
        if self._client is not None:
            self._client.close()
            self._client = None


def signature(secret: str, body: bytes) -> str:
    """``X-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of the exact body bytes, keyed
    with the hook's secret (GitHub's convention).

    >>> signature("It's a Secret to Everybody", b"Hello, World!")
    'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
