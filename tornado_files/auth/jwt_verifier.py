"""JWTs from an identity provider, verified with PyJWT (``[jwt]``; docs/security.md).

A token is accepted only when its signature verifies with a configured key under an algorithm
that key is bound to (``jwt_keys``: never ``none``, never one not listed, never one of another
key type — RFC 8725 §3.1), it carries ``exp`` and is inside ``nbf``..``exp`` with ``leeway``
seconds of clock skew, ``iss``/``aud`` match when they are configured, and its principal claim
is a name as a ``[[tokens]]`` principal is (``principal.valid_name``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from tornado_files.auth.principal import Principal, parse_scopes, valid_name

LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class JwtKey:
    """One verification key (a ``cryptography`` public key, or an HMAC secret as bytes) and
    the algorithms it may verify. ``kid`` is the JWK's key id (``None`` for a PEM key, a
    secret, or a JWK without one)."""

    key: Any
    algorithms: tuple[str, ...]
    kid: str | None = None


@dataclass(frozen=True)
class JwtSettings:
    """``keys`` are chosen by the token's ``alg`` and, when ``by_kid`` (a JWKS), its ``kid``:
    a token without ``kid`` is checked only against a JWKS of one usable key."""

    keys: tuple[JwtKey, ...]
    by_kid: bool = False
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
            chosen = self._key_for(jwt.get_unverified_header(token))
            if chosen is None:
                return None
            claims = jwt.decode(
                token, chosen.key, algorithms=list(chosen.algorithms),
                audience=list(settings.audience) or None, issuer=settings.issuer,
                leeway=settings.leeway,
                options={"require": ["exp"], "verify_aud": bool(settings.audience),
                         "enforce_minimum_key_length": True})
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None
        name = claims.get(settings.principal_claim)
        if not isinstance(name, str) or not valid_name(name):
            return None
        try:
            scopes = parse_scopes(claims.get(settings.scope_claim, []), "jwt", strict=False)
        except ValueError:
            return None
        return Principal(name, scopes, "jwt")

    def _key_for(self, header: dict[str, Any]) -> JwtKey | None:
        """The key bound to the header's ``alg`` (and ``kid``, for a JWKS), if any."""
        alg, kid = header.get("alg"), header.get("kid")
        keys = self._settings.keys
        for candidate in keys:
            if alg not in candidate.algorithms:
                continue
            if not self._settings.by_kid or candidate.kid == kid or (
                    kid is None and len(keys) == 1):
                return candidate
        return None
