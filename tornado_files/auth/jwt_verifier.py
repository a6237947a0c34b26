"""JWTs from an identity provider, verified with PyJWT (``[jwt]``; docs/security.md).

A token is accepted only when its signature verifies with the configured key under one of
the configured algorithms (never ``none``: PyJWT refuses any algorithm not listed, RFC 8725
§3.1), it carries ``exp`` and is inside ``nbf``..``exp`` with ``leeway`` seconds of clock
skew, and ``iss``/``aud`` match when they are configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from tornado_files.auth.principal import Principal, parse_scopes

LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class JwtSettings:
    """``key`` is a loaded public key or an HMAC secret (bytes); ``jwks`` maps ``kid`` to
    the keys of a JWKS document. Exactly one of the two is set."""

    algorithms: tuple[str, ...]
    key: Any = None
    jwks: dict[str, Any] | None = None
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    principal_claim: str = "sub"
    scope_claim: str = "scope"
    # Clock skew allowed on exp and nbf, in seconds (not configurable; tests shorten it).
    leeway: float = LEEWAY_SECONDS


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings

    def verify(self, token: str) -> Principal | None:
        """The principal a valid token names; ``None`` for any token that is not valid (bad
        signature, expired, wrong audience, garbage: the caller answers them all alike)."""
        settings = self._settings
        try:
            key = self._key_for(token)
            if key is None:
                return None
            claims = jwt.decode(
                token, key, algorithms=list(settings.algorithms),
                audience=list(settings.audience) or None, issuer=settings.issuer,
                leeway=settings.leeway,
                options={"require": ["exp"], "verify_aud": bool(settings.audience)})
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None
        name = claims.get(settings.principal_claim)
        if not isinstance(name, str) or not name:
            return None
        try:
            scopes = parse_scopes(claims.get(settings.scope_claim, []), "jwt", strict=False)
        except ValueError:
            return None
        return Principal(name, scopes, "jwt")

    def _key_for(self, token: str) -> Any:
        settings = self._settings
        if settings.jwks is None:
            return settings.key
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None and len(settings.jwks) == 1:
            return next(iter(settings.jwks.values()))
        return settings.jwks.get(kid) if isinstance(kid, str) else None
