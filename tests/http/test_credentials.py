"""How credentials travel and what a client sees when they fail (docs/security.md), in-process:
``token_sha256`` entries, ``X-Auth-Token``, ``Authorization: Bearer`` and ``JWT`` with an RS256
token from a real key; ``Basic`` counts as no credential; every bad credential — whatever part
of it was wrong — gets the same 401 with ``error="invalid_token"``; and no token, JWT or link
signature reaches a log line."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.support import PNG_1PX, Part, multipart, read_until_closed

ALICE = "alice-token-0123456789"
BOB = "bob-secret-token-0123456789"  # configured only as its SHA-256
ISSUER = "https://idp.example"
AUDIENCE = "files-api"


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def config_overrides(tmp_path: Path, idp_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    pem = tmp_path / "idp.pem"
    pem.write_bytes(idp_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return {
        "tokens": [
            {"token": ALICE, "principal": "alice", "scopes": ["read", "write"]},
            {"token_sha256": hashlib.sha256(BOB.encode()).hexdigest().upper(),
             "principal": "bob", "scopes": ["read", "write"]},
        ],
        "jwt": {"algorithms": ["RS256"], "public_key_file": str(pem), "issuer": ISSUER,
                "audience": AUDIENCE},
        "signing_key": "a-signing-key-of-at-least-32-characters",
    }


def id_token(key: Any, **changes: Any) -> str:
    now = int(time.time())
    claims = {"sub": "carol", "scope": "openid read write", "iss": ISSUER, "aud": AUDIENCE,
              "iat": now, "exp": now + 300, **changes}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="RS256")


async def fetch(client: AsyncHTTPClient, url: str, method: str = "GET",
                body: bytes | None = None, **headers: str) -> HTTPResponse:
    return await client.fetch(url, method=method, body=body, headers=headers,
                              raise_error=False)


async def upload(client: AsyncHTTPClient, base: str, **headers: str) -> HTTPResponse:
    body, ctype = multipart([Part("file", PNG_1PX, "p.png")])
    return await fetch(client, base + "/api/files", "POST", body, **headers,
                       **{"Content-Type": ctype})


@pytest.mark.gen_test
async def test_each_way_of_sending_a_credential(http_client, base_url, idp_key):
    carol = id_token(idp_key)
    for headers, owner in (
        ({"Authorization": f"Bearer {ALICE}"}, "alice"),
        ({"Authorization": f"bearer {ALICE}"}, "alice"),  # RFC 9110 §11.1: any case
        ({"Authorization": f"  Bearer   {ALICE}  "}, "alice"),
        ({"X-Auth-Token": ALICE}, "alice"),
        ({"Authorization": f"Bearer {BOB}"}, "bob"),  # a token_sha256 entry
        ({"X-Auth-Token": BOB}, "bob"),
        ({"Authorization": f"JWT {carol}"}, "carol"),
        ({"Authorization": f"Bearer {carol}"}, "carol"),
        ({"X-Auth-Token": carol}, "carol"),
    ):
        response = await upload(http_client, base_url, **headers)
        assert response.code == 201, (headers, response.body)
        assert json.loads(response.body)["owner"] == owner


@pytest.mark.gen_test
async def test_no_credential_is_a_plain_challenge(http_client, base_url):
    """RFC 6750 §3.1: a request without a credential gets the challenge without an error
    code. ``Basic`` (or any other scheme) and an empty ``Bearer`` are no credential."""
    basic = base64.b64encode(f"alice:{ALICE}".encode()).decode()
    for headers in ({}, {"Authorization": f"Basic {basic}"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer   "}, {"X-Auth-Token": "  "},
                    {"Authorization": f"Digest {ALICE}"}, {"Authorization": ALICE}):
        response = await fetch(http_client, base_url + "/api/files", **headers)
        assert response.code == 401, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="tornado-files"', headers
        assert json.loads(response.body)["errors"][0]["code"] == "unauthorized"


def _none(idp_key: rsa.RSAPrivateKey) -> str:
    payload = id_token(idp_key).split(".")[1]
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{unsigned}.{payload}."


@pytest.mark.gen_test
async def test_every_bad_credential_gets_the_same_answer(http_client, base_url, idp_key):
    """RFC 6750 §3.1 ``invalid_token``; the answer never says which part was wrong: the
    body and the challenge are the same for each (the error's ``id`` aside)."""
    now = int(time.time())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = {
        "unknown token": ALICE[:-1] + "X",
        "another key": id_token(other),
        "alg none": _none(idp_key),
        "wrong audience": id_token(idp_key, aud="billing"),
        "no audience": id_token(idp_key, aud=None),
        "wrong issuer": id_token(idp_key, iss="https://evil.example"),
        "expired": id_token(idp_key, exp=now - 3600),
        "not yet valid": id_token(idp_key, nbf=now + 3600),
        "no exp": id_token(idp_key, exp=None),
        "sub not a string": id_token(idp_key, sub=42),
        "HS256": jwt.encode({"sub": "carol", "exp": now + 60}, "s" * 32, algorithm="HS256"),
        "garbage": "eyJhbGciOiJSUzI1NiJ9.garbage.garbage",
    }
    answers = set()
    for name, token in bad.items():
        for headers in ({"Authorization": f"Bearer {token}"}, {"X-Auth-Token": token}):
            response = await fetch(http_client, base_url + "/api/files", **headers)
            assert response.code == 401, name
            error = json.loads(response.body)["errors"][0]
            assert error.pop("id")
            answers.add((response.headers["WWW-Authenticate"], json.dumps(error, sort_keys=True),
                         response.headers["Content-Type"]))
    assert len(answers) == 1, answers
    challenge, error, _ = answers.pop()
    assert challenge == 'Bearer realm="tornado-files", error="invalid_token"'
    assert json.loads(error)["code"] == "unauthorized"


@pytest.mark.gen_test
async def test_a_valid_jwt_without_the_scope_is_forbidden(http_client, base_url, idp_key):
    reader = id_token(idp_key, scope="openid read")
    response = await upload(http_client, base_url, Authorization=f"JWT {reader}")
    assert response.code == 403
    assert "WWW-Authenticate" not in response.headers
    assert json.loads(response.body)["errors"][0]["code"] == "forbidden"
    listing = await fetch(http_client, base_url + "/api/files", Authorization=f"JWT {reader}")
    assert listing.code == 200


@pytest.mark.gen_test
async def test_no_secret_reaches_the_log(http_client, base_url, idp_key, caplog):
    """Issue 14: tokens, JWTs and signatures never appear in log lines; a signed link's query
    is left out of the access log."""
    caplog.set_level(logging.INFO)
    alice = {"Authorization": f"Bearer {ALICE}"}
    created = await upload(http_client, base_url, **alice)
    file_id = json.loads(created.body)["id"]
    made = await fetch(http_client, f"{base_url}/api/files/{file_id}/links", "POST", b"{}",
                       **alice, **{"Content-Type": "application/json"})
    url = json.loads(made.body)["url"]
    signature = url.rsplit("sig=", 1)[1]
    assert (await fetch(http_client, base_url + url)).code == 200
    assert (await fetch(http_client, base_url + url.replace("sig=", "sig=x"))).code == 403
    expired = id_token(idp_key, exp=int(time.time()) - 3600)
    for headers in ({"X-Auth-Token": BOB}, {"Authorization": f"JWT {expired}"},
                    {"Authorization": f"Bearer {ALICE}x"}):
        await fetch(http_client, base_url + "/api/files", **headers)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"/api/files/{file_id}/content" in logged  # the access lines are there
    for secret in (ALICE, BOB, expired, expired.split(".")[2], signature):
        assert secret not in logged


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("header", [b"X-Auth-Token", b"Authorization"])
@pytest.mark.parametrize("stray", [b"\r", b"\x00", b"\x7f", b"\x01"])
async def test_a_malformed_header_does_not_log_its_credential(http_server, http_port, caplog,
                                                              header, stray):
    """A token read from a file with Windows line endings arrives as ``token\\r``: Tornado
    refuses the header (RFC 9110 §5.5) and logs why, quoting the value — which must not carry
    the token into the log."""
    caplog.set_level(logging.INFO)
    value = (b"Bearer " if header == b"Authorization" else b"") + ALICE.encode() + stray
    head = (b"GET /api/files HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b": " + value
            + b"\r\n\r\n")
    data = await asyncio.get_running_loop().run_in_executor(None, read_until_closed, http_port,
                                                            head)
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Invalid header value" in logged  # Tornado's line is there, says why
    assert ALICE not in logged
    assert ALICE[:-4] not in logged
