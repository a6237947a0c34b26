"""Seeded fuzzing of the JWT path (docs/security.md): mutated JWKS members must end in keys or
one ``ValueError`` line at start-up, never another exception (an oct key without ``k`` and a
JWK with ``alg: none`` were tracebacks); mutated tokens must end in ``None`` or the one
principal the signed token names, never an exception (a 500). Each case comes from
``random.Random(f"{SEED}:{index}")``, so a failure is reproduced from its index alone."""

from __future__ import annotations

import base64
import json
import random
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tornado_files.auth.jwt_keys import from_jwks
from tornado_files.auth.jwt_verifier import JwtSettings, JwtVerifier

SEED = 14
CASES = 3000
ALGORITHM_SETS = (["RS256"], ["ES256"], ["EdDSA"], ["ES384", "ES512"],
                  ["RS256", "PS256", "ES256", "EdDSA"])
JWK_FIELDS = ("kty", "alg", "kid", "use", "key_ops", "crv", "x", "y", "n", "e", "x5c")
JWK_VALUES: tuple[Any, ...] = (
    None, 5, 1.5, True, "", "x", "a" * 5000, [], {}, ["verify"], ["sign"], "sig", "enc", "RS256",
    "ES256", "EdDSA", "none", "HS256", "P-256", "P-384", "secp256k1", "Ed25519", "X25519", "RSA",
    "EC", "OKP", "oct", "AQAB", "AA")
HEADER_VALUES: tuple[Any, ...] = (None, 5, "", "RS256", "ES256", "HS256", "none", [], {}, "r",
                                  "e", ["b64"], ["x"], False, True)
CLAIM_VALUES: tuple[Any, ...] = (None, 5, "", "s", [], {}, "a", ["a"], "i", 1e20, -1e20, True,
                                 "read write admin", ["admin"], "x" * 300)


@pytest.fixture(scope="module")
def public_jwks() -> list[dict[str, Any]]:
    return [RSAAlgorithm.to_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                                .public_key(), as_dict=True),
            ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(),
                               as_dict=True),
            OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key(),
                                as_dict=True)]


def test_mutated_jwks_members_load_or_are_one_line(public_jwks):
    refusals: set[str] = set()
    for index in range(CASES):
        rng = random.Random(f"{SEED}:{index}")
        member = dict(rng.choice(public_jwks))
        for _ in range(rng.randint(1, 4)):
            field = rng.choice(JWK_FIELDS)
            if rng.random() < 0.2:
                member.pop(field, None)
            else:
                member[field] = rng.choice(JWK_VALUES)
        algorithms = rng.choice(ALGORITHM_SETS)
        try:
            keys = from_jwks(json.dumps({"keys": [member]}), algorithms)
        except ValueError as error:
            refusals.add(str(error))
            continue
        for key in keys:  # whatever loaded verifies only listed algorithms
            assert key.algorithms, index
            assert set(key.algorithms) <= set(algorithms), index
    assert refusals
    assert all("\n" not in line and line.startswith("jwt.jwks_file: ") for line in refusals)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_mutated_tokens_are_refused_or_name_the_signer(public_jwks):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    member = {**RSAAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": "r"}
    keys = from_jwks(json.dumps({"keys": [member, {**public_jwks[1], "kid": "e"}]}),
                     ["RS256", "ES256"])
    verifier = JwtVerifier(JwtSettings(keys, by_kid=True, issuer="i", audience=("a",)))
    now = int(time.time())
    good = jwt.encode({"sub": "s", "exp": now + 600, "aud": "a", "iss": "i"}, private,
                      algorithm="RS256", headers={"kid": "r"})
    assert verifier.verify(good) is not None
    for index in range(CASES):
        rng = random.Random(f"{SEED}:{index}")
        header: dict[str, Any] = {"alg": "RS256", "kid": "r", "typ": "JWT"}
        claims: dict[str, Any] = {"sub": "s", "exp": now + 600, "aud": "a", "iss": "i"}
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.5:
                header[rng.choice(("alg", "kid", "crit", "b64", "typ", "jku"))] = rng.choice(
                    HEADER_VALUES)
            else:
                claims[rng.choice(("sub", "exp", "nbf", "iat", "aud", "iss", "scope"))] = (
                    rng.choice(CLAIM_VALUES))
        signature = (good.split(".")[2] if rng.random() < 0.5
                     else _b64(rng.randbytes(rng.randint(0, 300))))
        token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."
        token += signature
        if rng.random() < 0.3:
            chars = list(token)
            for _ in range(rng.randint(1, 5)):
                chars[rng.randrange(len(chars))] = rng.choice("=.!aZ0-_ \x00é")
            token = "".join(chars)
        principal = verifier.verify(token)
        assert principal is None or principal.name == "s", index
