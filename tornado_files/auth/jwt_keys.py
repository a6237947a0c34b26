"""The keys ``[jwt]`` verifies with, loaded and checked at start-up (docs/security.md).

Each key is bound to the algorithms it may verify (RFC 8725 §3.1: a key is used with the
algorithms it was made for, not whatever a token's header asks): those of ``jwt.algorithms``
that fit the key's type and curve, narrowed to a JWK's own ``alg`` when it names one (RFC 7517
§4.4). A JWK meant for encryption (``use``, ``key_ops``: §4.2, §4.3) is left out. Sizes follow
RFC 7518: an RSA key has at least 2048 bits (§3.3), an HMAC secret at least as many bytes as
its hash output (§3.2). Every problem raises ``ValueError`` with one line naming the setting.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import get_default_algorithms

from tornado_files.auth.jwt_verifier import JwtKey

MIN_RSA_BITS = 2048
# Bytes of hash output: the least length of an HMAC secret (RFC 7518 §3.2).
HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
# JWK members that hold a private or shared key (RFC 7518 §6.2.2.1, §6.3.2.1, §6.4.1).
_SECRET_MEMBERS = ("d", "k")


def from_secret(secret: object, algorithms: Sequence[str]) -> tuple[JwtKey, ...]:
    """``jwt.secret``: one HMAC key for ``algorithms`` (all HS*, checked by the caller)."""
    longest = max(algorithms, key=lambda name: HMAC_ALGORITHMS[name])
    least = HMAC_ALGORITHMS[longest]
    if not isinstance(secret, str) or len(secret.encode("utf-8")) < least:
        raise ValueError(f"jwt.secret: must be at least {least} bytes for {longest} "
                         "(RFC 7518 §3.2)")
    return (JwtKey(secret.encode("utf-8"), tuple(algorithms)),)


def from_pem(text: str, algorithms: Sequence[str]) -> tuple[JwtKey, ...]:
    """``jwt.public_key_file``: one PEM public key (SubjectPublicKeyInfo)."""
    name = "jwt.public_key_file"
    if "-----BEGIN CERTIFICATE-----" in text:
        raise ValueError(f"{name}: a certificate, not a public key (extract it: openssl x509 "
                         "-pubkey -noout -in CERT > key.pem)")
    try:
        key = load_pem_public_key(text.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ValueError(f"{name}: not a PEM public key") from None
    _check_size(key, name)
    fitting = _fitting(key, algorithms)
    if not fitting:
        raise ValueError(f"{name}: the key cannot verify {', '.join(algorithms)}")
    return (JwtKey(key, fitting),)


def from_jwks(text: str, algorithms: Sequence[str]) -> tuple[JwtKey, ...]:
    """``jwt.jwks_file``: a JWK Set (RFC 7517 §5); keys of other kinds or uses are skipped,
    but at least one must verify one of ``algorithms``."""
    name = "jwt.jwks_file"
    try:
        document = json.loads(text)
    except ValueError:
        raise ValueError(f"{name}: not JSON") from None
    members = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(members, list):
        raise ValueError(f'{name}: expected a JWK Set, {{"keys": [...]}}')
    keys = [key for member in members if (key := _jwk(member, algorithms)) is not None]
    if not keys:
        raise ValueError(f"{name}: no key in it can verify {', '.join(algorithms)}")
    if len(keys) > 1 and any(key.kid is None for key in keys):
        raise ValueError(f"{name}: with several keys, each needs a kid")
    return tuple(keys)


def _jwk(member: object, algorithms: Sequence[str]) -> JwtKey | None:
    """One member of the set, bound to its algorithms; ``None`` if it verifies none of them."""
    if not isinstance(member, dict):
        return None
    kid = member.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ValueError(f"jwt.jwks_file: a kid must be a string, got {kid!r}")
    if any(secret in member for secret in _SECRET_MEMBERS):
        raise ValueError(f"jwt.jwks_file: key {kid!r} holds private or secret key material; "
                         "give only public keys")
    key_ops, own = member.get("key_ops"), member.get("alg")
    if member.get("use", "sig") != "sig" or (key_ops is not None and (
            not isinstance(key_ops, list) or "verify" not in key_ops)):
        return None
    if own is not None and (not isinstance(own, str) or own not in algorithms):
        return None  # made for an algorithm not accepted here (or "none")
    if member.get("kty") == "oct":
        return None  # a shared secret: HS* is never verified with a JWKS
    try:
        key = jwt.PyJWK(member).key
    except (jwt.PyJWTError, KeyError):
        return None  # a key type PyJWT does not verify with, or one missing a member
    _check_size(key, f"jwt.jwks_file: key {kid!r}")
    fitting = _fitting(key, [a for a in algorithms if own is None or a == own])
    return JwtKey(key, fitting, kid) if fitting else None


def _fitting(key: Any, algorithms: Sequence[str]) -> tuple[str, ...]:
    """The algorithms ``key`` can verify: PyJWT's own test of key type and curve."""
    found = []
    for name in algorithms:
        try:
            get_default_algorithms()[name].prepare_key(key)
        except (jwt.InvalidKeyError, TypeError, ValueError):
            continue
        found.append(name)
    return tuple(found)


def _check_size(key: Any, where: str) -> None:
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ValueError(f"{where}: the RSA key has {key.key_size} bits; at least "
                         f"{MIN_RSA_BITS} are needed (RFC 7518 §3.3)")
