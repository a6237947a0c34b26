"""Signed links (docs/security.md): a URL that carries its own grant, as S3 presigned URLs do.

The signature is HMAC-SHA256, keyed by ``signing_key``, over the method, the path, every query
parameter but ``sig`` (sorted, percent-encoded) and the expiry. ``HEAD`` is checked as
``GET`` (RFC 9110 §9.3.2: the same resource). Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from tornado_files.errors import InvalidSignature
from tornado_files.numbers import whole

SIGNATURE = "sig"
EXPIRES = "expires"


class LinkSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, method: str, path: str, params: Mapping[str, str], expires: int) -> str:
        """The query string (``…&expires=…&sig=…``) that grants ``method path`` with
        ``params`` until ``expires`` (Unix seconds)."""
        signed = {**params, EXPIRES: str(expires)}
        signed[SIGNATURE] = self._signature(method, path, signed)
        return urlencode(sorted(signed.items()), quote_via=quote)

    def verify(self, method: str, path: str, params: Mapping[str, str], now: float) -> None:
        """Raise ``InvalidSignature`` unless ``params`` (the request's query, one value each)
        carry a valid, unexpired signature for ``method path``. An altered link is reported
        as not expired even if its ``expires`` says so: nothing in it can be trusted."""
        given = params.get(SIGNATURE, "")
        unsigned = {k: v for k, v in params.items() if k != SIGNATURE}
        expected = self._signature(method, path, unsigned)
        if not hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii")):
            raise InvalidSignature(expired=False)
        expires = whole(unsigned.get(EXPIRES))
        if expires is None:
            raise InvalidSignature(expired=False)
        if expires <= now:
            raise InvalidSignature(expired=True)

    def _signature(self, method: str, path: str, params: Mapping[str, str]) -> str:
        method = "GET" if method == "HEAD" else method
        canonical = "\n".join([method, path, urlencode(sorted(params.items()), quote_via=quote)])
        digest = hmac.new(self._key, canonical.encode("utf-8", "surrogateescape"),
                          hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
