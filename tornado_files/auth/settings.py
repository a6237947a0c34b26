"""The access-control part of the configuration: ``[[tokens]]``, ``[jwt]``, ``signing_key``,
``private_reads``, ``allow_anonymous``, ``max_link_lifetime`` (docs/security.md), and
``metrics_public`` (docs/deploying.md).

Every problem raises ``ValueError`` with one line a person can act on (``config`` turns it into
a ``ConfigError``); key files are read here, at start-up, so a missing one stops the server
before it listens.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from tornado_files.auth.jwt_keys import HMAC_ALGORITHMS, from_jwks, from_pem, from_secret
from tornado_files.auth.jwt_verifier import JwtSettings
from tornado_files.auth.principal import Principal, parse_scopes, valid_name
from tornado_files.auth.tokens import MIN_TOKEN_LENGTH, TokenEntry
from tornado_files.tables import table

KEYS = ("tokens", "jwt", "signing_key", "private_reads", "allow_anonymous", "max_link_lifetime",
        "metrics_public")
MIN_SIGNING_KEY_LENGTH = 32
DEFAULT_LINK_LIFETIME = 7 * 86400.0
_TOKEN_KEYS = {"token", "token_sha256", "principal", "scopes"}
# What a header carries intact (RFC 9110 §5.5: VCHAR; surrounding whitespace is stripped).
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_JWT_KEYS = {"algorithms", "public_key_file", "jwks_file", "secret", "issuer", "audience",
             "principal_claim", "scope_claim"}


@dataclass(frozen=True)
class AuthSettings:
    tokens: tuple[TokenEntry, ...] = ()
    jwt: JwtSettings | None = None
    signing_key: bytes | None = None
    private_reads: bool = False
    allow_anonymous: bool = False
    max_link_lifetime: float = DEFAULT_LINK_LIFETIME
    # GET /metrics without credentials even when auth is configured (else it needs admin).
    metrics_public: bool = False

    @property
    def configured(self) -> bool:
        """Whether any authentication is configured (else the server is open)."""
        return bool(self.tokens) or self.jwt is not None


def parse_bool(value: object, name: str) -> bool:
    """TOML booleans, and ``true``/``false``/``1``/``0`` from the environment."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValueError(f"{name}: expected true or false, got {value!r}")


def parse_auth(merged: dict[str, Any]) -> AuthSettings:
    tokens = _tokens(merged.get("tokens", []))
    jwt_settings = _jwt(merged["jwt"]) if "jwt" in merged else None
    key = merged.get("signing_key")
    if key is not None and (not isinstance(key, str)
                            or len(key.strip()) < MIN_SIGNING_KEY_LENGTH):
        raise ValueError(f"signing_key: must be at least {MIN_SIGNING_KEY_LENGTH} characters "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    settings = AuthSettings(
        tokens=tokens, jwt=jwt_settings,
        signing_key=key.encode("utf-8") if isinstance(key, str) else None,
        private_reads=parse_bool(merged.get("private_reads", False), "private_reads"),
        allow_anonymous=parse_bool(merged.get("allow_anonymous", False), "allow_anonymous"),
        metrics_public=parse_bool(merged.get("metrics_public", False), "metrics_public"),
        max_link_lifetime=_seconds(merged.get("max_link_lifetime", DEFAULT_LINK_LIFETIME)))
    if settings.configured and settings.signing_key is None:
        raise ValueError("signing_key is required when tokens or jwt are configured "
                         "(every process signs and checks links with it)")
    return settings


OPEN_WARNING = "no tokens or jwt are configured: the server is open to anyone who can reach it"
NO_AUDIENCE_WARNING = ("jwt.audience is not set: a JWT from the identity provider is accepted "
                       "whichever service it was issued for (set audience to this server's name)")


def startup_warnings(settings: AuthSettings) -> tuple[str, ...]:
    """What start-up logs as warnings about these settings: open mode; a ``[jwt]`` without
    ``audience``, which accepts tokens issued for other services too (RFC 7519 §4.1.3,
    RFC 8725 §3.9) — allowed, as the setting is optional, but said."""
    if not settings.configured:
        return (OPEN_WARNING,)
    if settings.jwt is not None and not settings.jwt.audience:
        return (NO_AUDIENCE_WARNING,)
    return ()


def check_bind(settings: AuthSettings, host: str) -> None:
    """Open mode on anything but loopback needs ``allow_anonymous``."""
    if settings.configured or settings.allow_anonymous or _loopback(host):
        return
    raise ValueError(f"refusing to listen on {host} with no tokens or jwt configured: anyone "
                     "could read and delete every file (configure auth, or set "
                     "allow_anonymous = true / --allow-anonymous)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"max_link_lifetime: expected seconds, got {value!r}")
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"max_link_lifetime: expected seconds, got {value!r}") from None
    if not 1 <= seconds <= 400 * 86400:
        raise ValueError("max_link_lifetime: must be between 1 second and 400 days")
    return seconds


def _tokens(raw: object) -> tuple[TokenEntry, ...]:
    if not isinstance(raw, list):
        raise ValueError("tokens: expected [[tokens]] tables")
    entries = []
    for index, entry in enumerate(raw):
        where = f"tokens[{index}]"
        entry = table(entry, where, _TOKEN_KEYS)
        principal = entry.get("principal")
        if not isinstance(principal, str) or not valid_name(principal):
            raise ValueError(f"{where}.principal: expected a name like \"alice\"")
        scopes = parse_scopes(entry.get("scopes", []), where)
        if ("token" in entry) == ("token_sha256" in entry):
            raise ValueError(f"{where}: give exactly one of token and token_sha256")
        if "token" in entry:
            token = entry["token"]
            if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
                raise ValueError(f"{where}.token: must be at least {MIN_TOKEN_LENGTH} characters")
            if not _VISIBLE_ASCII.fullmatch(token):
                raise ValueError(f"{where}.token: use only visible ASCII characters (letters, "
                                 "digits, punctuation), no spaces")
            digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        else:
            digest = entry["token_sha256"]
            if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise ValueError(f"{where}.token_sha256: expected 64 hex digits")
            digest = digest.lower()
        entries.append(TokenEntry(digest, Principal(principal, scopes, "token")))
    if len({e.sha256 for e in entries}) != len(entries):
        raise ValueError("tokens: the same token appears twice")
    return tuple(entries)


def _jwt(raw: object) -> JwtSettings:
    raw = table(raw, "jwt", _JWT_KEYS, "a [jwt] table")
    algorithms = raw.get("algorithms")
    if isinstance(algorithms, list) and any(str(a).lower() == "none" for a in algorithms):
        raise ValueError("jwt.algorithms: 'none' (unsigned tokens) is never accepted "
                         "(RFC 8725 §3.1)")
    known = set(jwt.algorithms.get_default_algorithms()) - {"none"}
    if (not isinstance(algorithms, list) or not algorithms
            or not all(isinstance(a, str) and a in known for a in algorithms)):
        raise ValueError(f"jwt.algorithms: expected a list from {sorted(known)}")
    sources = [k for k in ("public_key_file", "jwks_file", "secret") if k in raw]
    if len(sources) != 1:
        raise ValueError("jwt: give exactly one of public_key_file, jwks_file and secret")
    hmac_algorithms = set(algorithms) & set(HMAC_ALGORITHMS)
    if sources[0] == "secret":
        if hmac_algorithms != set(algorithms):
            raise ValueError("jwt.secret: only works with HS256, HS384 or HS512")
        keys = from_secret(raw["secret"], algorithms)
    else:
        if hmac_algorithms:
            # RFC 8725 §2.1: a public key used as an HMAC secret forges any token.
            raise ValueError("jwt.algorithms: HS* needs secret, not a public key")
        text = _read(raw[sources[0]], f"jwt.{sources[0]}")
        keys = from_pem(text, algorithms) if sources[0] == "public_key_file" \
            else from_jwks(text, algorithms)
    audience = raw.get("audience", [])
    audience = [audience] if isinstance(audience, str) else audience
    issuer = raw.get("issuer")
    claims = [raw.get("principal_claim", "sub"), raw.get("scope_claim", "scope")]
    if (not isinstance(audience, list) or not all(isinstance(a, str) for a in audience)
            or (issuer is not None and not isinstance(issuer, str))
            or not all(isinstance(c, str) and c for c in claims)):
        raise ValueError("jwt: issuer, audience, principal_claim and scope_claim are strings")
    return JwtSettings(keys, by_kid=sources[0] == "jwks_file", issuer=issuer,
                       audience=tuple(audience), principal_claim=claims[0],
                       scope_claim=claims[1])


def _read(path: object, name: str) -> str:
    if not isinstance(path, str):
        raise ValueError(f"{name}: expected a file path")
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{name}: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: {path} cannot be read ({exc})") from None
