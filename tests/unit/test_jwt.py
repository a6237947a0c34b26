"""JWTs from an identity provider (``[jwt]``, docs/security.md), verified by the real PyJWT
with real keys made here: RS256 and ES256 with a PEM public key, a JWKS document with several
keys chosen by ``kid``, HS256 with a secret — and every way a token must be refused: ``alg:
none``, an algorithm not listed (the HS256-with-the-public-key confusion among them, RFC 8725
§2.1), wrong ``aud`` or ``iss``, outside ``nbf``..``exp`` beyond the 30 s leeway, no ``exp``,
garbage, a principal claim that is not a name. The settings go through ``parse_auth``, as at
start-up."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tornado_files.auth.jwt_verifier import JwtVerifier
from tornado_files.auth.principal import Principal, Scope
from tornado_files.auth.settings import parse_auth

SIGNING_KEY = "a-signing-key-of-at-least-32-characters"
SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
READ_WRITE = frozenset({Scope.READ, Scope.WRITE})


@dataclass(frozen=True)
class Keys:
    rsa: rsa.RSAPrivateKey
    rsa2: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                rsa2=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                ec=ec.generate_private_key(ec.SECP256R1()))


def public_pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def public_jwk(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, **fields: str
               ) -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {**jwk, **fields}


def write(directory: Path, name: str, data: bytes | str) -> str:
    path = directory / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def verifier(table: dict[str, Any]) -> JwtVerifier:
    settings = parse_auth({"jwt": table, "signing_key": SIGNING_KEY})
    assert settings.jwt is not None
    return JwtVerifier(settings.jwt)


def claims(**changes: Any) -> dict[str, Any]:
    """alice, ``read write``, valid for five minutes; a change to ``None`` drops the claim."""
    now = int(time.time())
    base = {"sub": "alice", "scope": "read write", "iat": now, "exp": now + 300}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def by_hand(header: dict[str, Any], payload: dict[str, Any],
            sign: Callable[[bytes], bytes] = lambda _: b"") -> str:
    """A compact JWS made without PyJWT (which refuses to make the forgeries below)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode('ascii')))}"


@pytest.fixture
def rs256(keys: Keys, tmp_path: Path) -> JwtVerifier:
    return verifier({"algorithms": ["RS256"],
                     "public_key_file": write(tmp_path, "rsa.pem", public_pem(keys.rsa))})


@pytest.fixture
def hs256() -> JwtVerifier:
    return verifier({"algorithms": ["HS256"], "secret": SECRET})


# --- the three key sources -------------------------------------------------------------------

def test_rs256_with_a_pem_public_key(rs256, keys):
    token = jwt.encode(claims(), keys.rsa, algorithm="RS256")
    assert rs256.verify(token) == Principal("alice", READ_WRITE, "jwt")


def test_es256_with_a_pem_public_key(keys, tmp_path):
    checker = verifier({"algorithms": ["ES256"],
                        "public_key_file": write(tmp_path, "ec.pem", public_pem(keys.ec))})
    token = jwt.encode(claims(sub="bob", scope="read"), keys.ec, algorithm="ES256")
    assert checker.verify(token) == Principal("bob", frozenset({Scope.READ}), "jwt")


def test_a_token_signed_by_another_key_is_refused(rs256, keys):
    assert rs256.verify(jwt.encode(claims(), keys.rsa2, algorithm="RS256")) is None


def test_a_pem_key_ignores_the_tokens_kid(rs256, keys):
    """A single configured key: ``kid`` is only a hint (RFC 7515 §4.1.4)."""
    token = jwt.encode(claims(), keys.rsa, algorithm="RS256", headers={"kid": "anything"})
    assert rs256.verify(token) is not None


def test_a_tampered_payload_is_refused(rs256, keys):
    header, _, signature = jwt.encode(claims(), keys.rsa, algorithm="RS256").split(".")
    forged = b64(json.dumps(claims(sub="mallory", scope="admin")).encode())
    assert rs256.verify(f"{header}.{forged}.{signature}") is None


@pytest.fixture
def jwks(keys: Keys, tmp_path: Path) -> JwtVerifier:
    document = {"keys": [public_jwk(keys.rsa, kid="rsa-1", use="sig"),
                         public_jwk(keys.ec, kid="ec-1"),
                         public_jwk(keys.rsa2, kid="rsa-2", alg="RS256")]}
    return verifier({"algorithms": ["RS256", "ES256"],
                     "jwks_file": write(tmp_path, "jwks.json", json.dumps(document))})


def test_jwks_chooses_the_key_by_kid(jwks, keys):
    for private, kid, alg in ((keys.rsa, "rsa-1", "RS256"), (keys.ec, "ec-1", "ES256"),
                              (keys.rsa2, "rsa-2", "RS256")):
        token = jwt.encode(claims(sub=kid), private, algorithm=alg, headers={"kid": kid})
        assert jwks.verify(token) == Principal(kid, READ_WRITE, "jwt"), kid


def test_jwks_refuses_an_unknown_a_wrong_or_a_missing_kid(jwks, keys):
    unknown = jwt.encode(claims(), keys.rsa, algorithm="RS256", headers={"kid": "rsa-9"})
    wrong = jwt.encode(claims(), keys.rsa, algorithm="RS256", headers={"kid": "rsa-2"})
    missing = jwt.encode(claims(), keys.rsa, algorithm="RS256")
    not_text = by_hand({"alg": "RS256", "kid": 1}, claims())
    for token in (unknown, wrong, missing, not_text):
        assert jwks.verify(token) is None


def test_a_jwks_of_one_key_takes_tokens_without_kid(keys, tmp_path):
    document = {"keys": [public_jwk(keys.ec, kid="only")]}
    checker = verifier({"algorithms": ["ES256"],
                        "jwks_file": write(tmp_path, "jwks.json", json.dumps(document))})
    assert checker.verify(jwt.encode(claims(), keys.ec, algorithm="ES256")) is not None
    other = jwt.encode(claims(), keys.ec, algorithm="ES256", headers={"kid": "other"})
    assert checker.verify(other) is None


def test_hs256_with_a_secret(hs256):
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert hs256.verify(token) == Principal("alice", READ_WRITE, "jwt")
    assert hs256.verify(jwt.encode(claims(), SECRET + "x", algorithm="HS256")) is None


# --- algorithms ------------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none_is_refused_whatever_the_key_source(alg, rs256, hs256, jwks):
    """RFC 8725 §3.1: an unsecured JWS is never accepted (made by hand: PyJWT would not)."""
    for checker in (rs256, hs256, jwks):
        for header in ({"alg": alg, "typ": "JWT"}, {"alg": alg, "kid": "rsa-1"}):
            assert checker.verify(by_hand(header, claims())) is None
            # with a signature that "verifies" under an empty key, too
            mac = by_hand(header, claims(), lambda m: hmac.new(b"", m, hashlib.sha256).digest())
            assert checker.verify(mac) is None


def test_hs256_signed_with_the_public_key_is_refused(rs256, keys):
    """The key-confusion attack (RFC 8725 §2.1): the public key's PEM bytes, which anyone
    has, used as an HMAC secret. Made by hand: PyJWT refuses to sign with a PEM as a secret."""
    pem = public_pem(keys.rsa)
    for key in (pem, pem.strip(), pem.decode().replace("\n", "\r\n").encode()):
        token = by_hand({"alg": "HS256", "typ": "JWT"}, claims(),
                        lambda m, k=key: hmac.new(k, m, hashlib.sha256).digest())
        assert rs256.verify(token) is None


def test_an_algorithm_not_listed_is_refused(rs256, keys):
    assert rs256.verify(jwt.encode(claims(), SECRET, algorithm="HS256")) is None
    assert rs256.verify(jwt.encode(claims(), keys.rsa, algorithm="RS384")) is None
    assert rs256.verify(jwt.encode(claims(), keys.rsa, algorithm="PS256")) is None
    assert rs256.verify(jwt.encode(claims(), keys.ec, algorithm="ES256")) is None


def test_hs256_only_refuses_rs256(hs256, keys):
    assert hs256.verify(jwt.encode(claims(), keys.rsa, algorithm="RS256")) is None
    assert hs256.verify(jwt.encode(claims(), SECRET * 2, algorithm="HS512")) is None


# --- registered claims -----------------------------------------------------------------------

def test_audience_is_checked_when_configured(keys, tmp_path):
    pem = write(tmp_path, "rsa.pem", public_pem(keys.rsa))
    checker = verifier({"algorithms": ["RS256"], "public_key_file": pem,
                        "audience": "files-api"})
    def sign(**c: Any) -> str:
        return jwt.encode(claims(**c), keys.rsa, algorithm="RS256")
    assert checker.verify(sign(aud="files-api")) is not None
    assert checker.verify(sign(aud=["other", "files-api"])) is not None
    assert checker.verify(sign(aud="other")) is None
    assert checker.verify(sign(aud=["other"])) is None
    assert checker.verify(sign()) is None  # no aud at all
    several = verifier({"algorithms": ["RS256"], "public_key_file": pem,
                        "audience": ["files-api", "files-admin"]})
    assert several.verify(sign(aud="files-admin")) is not None
    assert several.verify(sign(aud="billing")) is None


def test_audience_is_not_checked_when_not_configured(rs256, keys):
    assert rs256.verify(jwt.encode(claims(aud="anyone"), keys.rsa, algorithm="RS256"))


def test_issuer_is_checked_when_configured(keys, tmp_path):
    checker = verifier({"algorithms": ["RS256"], "issuer": "https://idp.example",
                        "public_key_file": write(tmp_path, "rsa.pem", public_pem(keys.rsa))})
    def sign(**c: Any) -> str:
        return jwt.encode(claims(**c), keys.rsa, algorithm="RS256")
    assert checker.verify(sign(iss="https://idp.example")) is not None
    assert checker.verify(sign(iss="https://evil.example")) is None
    assert checker.verify(sign(iss="https://idp.example/")) is None
    assert checker.verify(sign()) is None  # no iss at all


def test_exp_has_30_seconds_of_leeway(hs256):
    now = int(time.time())
    def sign(**c: Any) -> str:
        return jwt.encode(claims(**c), SECRET, algorithm="HS256")
    assert hs256.verify(sign(exp=now - 15)) is not None  # within the leeway
    assert hs256.verify(sign(exp=now - 45)) is None
    assert hs256.verify(sign(exp=now - 86400)) is None


def test_nbf_has_30_seconds_of_leeway(hs256):
    now = int(time.time())
    def sign(**c: Any) -> str:
        return jwt.encode(claims(**c), SECRET, algorithm="HS256")
    assert hs256.verify(sign(nbf=now + 15)) is not None
    assert hs256.verify(sign(nbf=now + 45)) is None
    assert hs256.verify(sign(nbf=now - 10)) is not None


def test_exp_is_required_and_must_be_a_number(hs256):
    for exp in (None, "tomorrow", [int(time.time()) + 60]):
        assert hs256.verify(jwt.encode(claims(exp=exp), SECRET, algorithm="HS256")) is None


@pytest.mark.parametrize("garbage", [
    "", "garbage", "a.b.c", "..", "...", "a.b", "Bearer x.y.z", "eyJhbGciOiJIUzI1NiJ9",
    "eyJhbGciOiJIUzI1NiJ9.e30", "eyJhbGciOiJIUzI1NiJ9.e30.", "e30.e30.e30",
    "%%%.%%%.%%%", "\x00.\x00.\x00", "é.é.é", "x" * 10_000, ".".join(["eyJhbGciOiJIUzI1NiJ9"] * 5),
    b64(b"[1, 2]") + "." + b64(b"{}") + ".",  # a header that is not an object
    b64(b'{"alg": "HS256"}') + "." + b64(b"[]") + ".sig",  # a payload that is not an object
    b64(b'{"alg": "HS256"}') + "." + b64(b"not json") + ".sig",
])
def test_garbage_is_refused_without_an_exception(garbage, rs256, hs256, jwks):
    for checker in (rs256, hs256, jwks):
        assert checker.verify(garbage) is None


# --- principal and scopes --------------------------------------------------------------------

@pytest.mark.parametrize("sub", [42, 4.2, True, ["alice"], {"name": "alice"}, "", None])
def test_a_principal_claim_that_is_not_a_name_is_refused(sub, hs256):
    assert hs256.verify(jwt.encode(claims(sub=sub), SECRET, algorithm="HS256")) is None


def test_principal_and_scope_claims_can_be_chosen(keys, tmp_path):
    checker = verifier({"algorithms": ["ES256"], "principal_claim": "email",
                        "scope_claim": "scp",
                        "public_key_file": write(tmp_path, "ec.pem", public_pem(keys.ec))})
    token = jwt.encode(claims(sub="u-123", email="carol@example.org", scope="admin",
                              scp=["read", "delete"]), keys.ec, algorithm="ES256")
    assert checker.verify(token) == Principal(
        "carol@example.org", frozenset({Scope.READ, Scope.DELETE}), "jwt")
    without = jwt.encode(claims(), keys.ec, algorithm="ES256")  # no email claim
    assert checker.verify(without) is None


@pytest.mark.parametrize(("scope", "expected"), [
    ("read write", {Scope.READ, Scope.WRITE}),
    ("  read   delete ", {Scope.READ, Scope.DELETE}),
    (["read", "write", "delete", "admin"], set(Scope)),
    ("openid profile email read offline_access", {Scope.READ}),
    (["openid", "Admin", "READ", "write:files", "write"], {Scope.WRITE}),
    ("", set()),
    ([], set()),
    (None, set()),  # no scope claim: a valid principal that may do nothing scoped
])
def test_scopes_as_a_string_or_a_list_unknown_ones_ignored(scope, expected, hs256):
    principal = hs256.verify(jwt.encode(claims(scope=scope), SECRET, algorithm="HS256"))
    assert principal is not None
    assert principal.scopes == frozenset(expected)


@pytest.mark.parametrize("scope", [7, {"read": True}, ["read", 3]])
def test_a_scope_claim_of_another_shape_is_refused(scope, hs256):
    assert hs256.verify(jwt.encode(claims(scope=scope), SECRET, algorithm="HS256")) is None


# --- each key verifies only its own algorithms (RFC 8725 §3.1, RFC 7517 §4.4) ---------------

def test_a_jwks_keys_own_alg_is_respected(keys, tmp_path):
    """A JWK that names its ``alg`` verifies that algorithm only, even when ``algorithms``
    lists others its key type could do (PS256 next to RS256: same RSA key, another scheme)."""
    document = {"keys": [public_jwk(keys.rsa, kid="rs", alg="RS256"),
                         public_jwk(keys.rsa2, kid="ps", alg="PS256")]}
    checker = verifier({"algorithms": ["RS256", "PS256"],
                        "jwks_file": write(tmp_path, "jwks.json", json.dumps(document))})
    def sign(private: rsa.RSAPrivateKey, alg: str, kid: str) -> str:
        return jwt.encode(claims(), private, algorithm=alg, headers={"kid": kid})
    assert checker.verify(sign(keys.rsa, "RS256", "rs")) is not None
    assert checker.verify(sign(keys.rsa2, "PS256", "ps")) is not None
    assert checker.verify(sign(keys.rsa, "PS256", "rs")) is None
    assert checker.verify(sign(keys.rsa2, "RS256", "ps")) is None


def test_a_jwk_without_alg_verifies_the_listed_algorithms_of_its_type(keys, tmp_path):
    document = {"keys": [public_jwk(keys.rsa, kid="rsa"), public_jwk(keys.ec, kid="ec")]}
    checker = verifier({"algorithms": ["RS256", "PS256", "ES256"],
                        "jwks_file": write(tmp_path, "jwks.json", json.dumps(document))})
    for alg in ("RS256", "PS256"):
        token = jwt.encode(claims(), keys.rsa, algorithm=alg, headers={"kid": "rsa"})
        assert checker.verify(token) is not None, alg
    ec_token = jwt.encode(claims(), keys.ec, algorithm="ES256", headers={"kid": "ec"})
    assert checker.verify(ec_token) is not None


def test_jwks_keys_for_encryption_are_not_used(keys, tmp_path):
    """RFC 7517 §4.2, §4.3: ``use: enc`` or ``key_ops`` without ``verify`` is not a key to
    check signatures with."""
    document = {"keys": [public_jwk(keys.rsa, kid="sig", use="sig"),
                         public_jwk(keys.rsa2, kid="enc", use="enc"),
                         public_jwk(keys.ec, kid="wrap", key_ops=["wrapKey"])]}
    checker = verifier({"algorithms": ["RS256", "ES256"],
                        "jwks_file": write(tmp_path, "jwks.json", json.dumps(document))})
    assert checker.verify(jwt.encode(claims(), keys.rsa, algorithm="RS256",
                                     headers={"kid": "sig"})) is not None
    assert checker.verify(jwt.encode(claims(), keys.rsa2, algorithm="RS256",
                                     headers={"kid": "enc"})) is None
    assert checker.verify(jwt.encode(claims(), keys.ec, algorithm="ES256",
                                     headers={"kid": "wrap"})) is None


def test_a_pem_key_with_two_algorithms_listed(keys, tmp_path):
    """``["RS256", "ES256"]`` with an EC key: the EC key verifies ES256; an RS256 token (even
    signed by a real RSA key) has no key to be checked with."""
    checker = verifier({"algorithms": ["RS256", "ES256"],
                        "public_key_file": write(tmp_path, "ec.pem", public_pem(keys.ec))})
    assert checker.verify(jwt.encode(claims(), keys.ec, algorithm="ES256")) is not None
    assert checker.verify(jwt.encode(claims(), keys.rsa, algorithm="RS256")) is None


@pytest.mark.parametrize("sub", ["alice\nadmin", "alice\r\n", "\x00", "tab\there", "x" * 257,
                                 "del\x7f"])
def test_a_principal_that_is_not_a_name_is_refused(sub, hs256):
    """The same rule as a ``[[tokens]]`` principal: it becomes every record's ``owner``."""
    assert hs256.verify(jwt.encode(claims(sub=sub), SECRET, algorithm="HS256")) is None


@pytest.mark.parametrize("sub", ["carol@example.org", "Jürgen Müller", "x" * 256,
                                 "auth0|5f7c8ec7c33c6c004bbafe82"])
def test_principals_that_are_names(sub, hs256):
    principal = hs256.verify(jwt.encode(claims(sub=sub), SECRET, algorithm="HS256"))
    assert principal is not None
    assert principal.name == sub


def test_a_critical_header_not_understood_is_refused(hs256):
    """RFC 7515 §4.1.11: a ``crit`` extension the recipient does not understand makes the
    token invalid."""
    token = jwt.encode(claims(), SECRET, algorithm="HS256",
                       headers={"crit": ["exp-policy"], "exp-policy": "strict"})
    assert hs256.verify(token) is None
    assert hs256.verify(jwt.encode(claims(), SECRET, algorithm="HS256",
                                   headers={"crit": "exp-policy"})) is None
