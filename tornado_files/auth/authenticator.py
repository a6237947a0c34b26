"""Who is asking: a signed link, a static token, a JWT — or, with nothing configured, anyone.

Credentials travel as ``Authorization: Bearer <token>``, ``Authorization: JWT <token>`` or
``X-Auth-Token: <token>``. A request that carries ``sig`` in its query is judged by the
link alone. Every failure is one of two answers (401 ``unauthorized``, 403
``invalid_signature``) that never say which part was wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from tornado.httputil import HTTPHeaders

from tornado_files.auth.jwt_verifier import JwtVerifier
from tornado_files.auth.links import SIGNATURE, LinkSigner
from tornado_files.auth.principal import OPEN, Principal, Scope
from tornado_files.auth.tokens import TokenTable
from tornado_files.errors import InvalidSignature, Unauthorized

_SCHEMES = ("bearer", "jwt")
# Who made an upload link (its owner), as a signed parameter.
LINK_OWNER = "owner"


def credential_of(headers: HTTPHeaders) -> str | None:
    """The token a request presents, if any (an ``Authorization`` of another scheme, such
    as Basic, presents none). A token in both ``Authorization`` and ``X-Auth-Token`` is
    ambiguous (RFC 6750 §2: one method per request) and raises ``Unauthorized``."""
    from_authorization = None
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() in _SCHEMES and value.strip():
            from_authorization = value.strip()
    token = headers.get("X-Auth-Token", "").strip() or None
    if from_authorization is not None and token is not None:
        raise Unauthorized(invalid_token=True)
    return from_authorization or token


class Authenticator:
    """``open_mode``: no tokens and no JWT configured; every request acts as ``OPEN``.
    ``links`` is None when no ``signing_key`` is configured."""

    def __init__(self, *, tokens: TokenTable, jwt: JwtVerifier | None,
                 links: LinkSigner | None, clock: Callable[[], float] = time.time) -> None:
        self.tokens = tokens
        self.jwt = jwt
        self.links = links
        self._clock = clock

    @property
    def open_mode(self) -> bool:
        return not self.tokens and self.jwt is None

    def authenticate(self, method: str, path: str, headers: HTTPHeaders,
                     query: Mapping[str, list[bytes]]) -> Principal:
        """Raises ``Unauthorized`` (no or bad credential) or ``InvalidSignature``."""
        if SIGNATURE in query and self.links is not None:
            return self._link(method, path, query)
        if self.open_mode:
            return OPEN
        token = credential_of(headers)
        if token is None:
            raise Unauthorized()
        principal = self.tokens.lookup(token)
        if principal is None and self.jwt is not None:
            principal = self.jwt.verify(token)
        if principal is None:
            raise Unauthorized(invalid_token=True)
        return principal

    def _link(self, method: str, path: str, query: Mapping[str, list[bytes]]) -> Principal:
        assert self.links is not None
        params: dict[str, str] = {}
        for name, values in query.items():
            if len(values) != 1:
                raise InvalidSignature(expired=False)  # a repeated parameter: which one?
            params[name] = values[0].decode("utf-8", "surrogateescape")
        self.links.verify(method, path, params, self._clock())
        scope = Scope.READ if method in ("GET", "HEAD") else Scope.WRITE
        owner = params.get(LINK_OWNER) if scope is Scope.WRITE else None
        if scope is Scope.WRITE and owner is None and not self.open_mode:
            # Made while the server was open (nobody to own its files), used after access
            # control was switched on with the same signing_key: refused.
            raise InvalidSignature(expired=False)
        return Principal(owner, frozenset({scope}), "link", tuple(sorted(params.items())))
