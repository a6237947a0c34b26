"""tus under access control, in-process: the grant is checked again when the last bytes of an
upload arrive — a JWT that expired while a long PATCH ran cannot finish the upload — and the
upload belongs to its creator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import jwt
import pytest
from tornado.ioloop import IOLoop

from tests.support import raw_request
from tornado_files.app import build_services
from tornado_files.auth.authenticator import Authenticator
from tornado_files.auth.jwt_verifier import JwtVerifier
from tornado_files.config import Config
from tornado_files.services import Services

SECRET = "a-jwt-secret-of-at-least-32-characters!"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"jwt": {"algorithms": ["HS256"], "secret": SECRET},
            "signing_key": "a-signing-key-of-at-least-32-characters"}


@pytest.fixture
def services(config: Config, io_loop: IOLoop) -> Iterator[Services]:
    """The configured server, with no clock-skew leeway so a JWT expires when it says."""
    built = build_services(config)
    assert config.auth.jwt is not None
    verifier = JwtVerifier(replace(config.auth.jwt, leeway=0))
    built = replace(built, auth=Authenticator(tokens=built.auth.tokens, jwt=verifier,
                                              links=built.auth.links))
    io_loop.run_sync(built.startup)
    yield built
    io_loop.run_sync(built.close)


def token(subject: str, lifetime: float) -> str:
    claims = {"sub": subject, "scope": "read write", "exp": int(time.time() + lifetime)}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.gen_test(timeout=30)
async def test_a_credential_that_expired_during_the_last_patch_cannot_complete(
        http_client, base_url, http_port, residue):
    short = token("alice", 2)
    created = await http_client.fetch(base_url + "/api/tus/", method="POST", body=b"", headers={
        **TUS, "Upload-Length": "10", "Authorization": f"JWT {short}"})
    url = created.headers["Location"]

    def slow_chunks() -> Iterator[bytes]:
        yield b"12345"
        time.sleep(3.5)  # the token expires while the PATCH is open
        yield b"67890"
    head = (f"PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            f"Authorization: JWT {short}\r\nContent-Length: 10\r\n\r\n").encode()
    answer = await asyncio.get_running_loop().run_in_executor(
        None, lambda: raw_request(http_port, head, slow_chunks(), timeout=15))
    assert answer.status == 401
    assert json.loads(answer.body)["errors"][0]["code"] == "unauthorized"
    fresh = {"Authorization": f"Bearer {token('alice', 60)}", **TUS}
    offset = await http_client.fetch(base_url + url, method="HEAD", headers=fresh)
    assert offset.headers["Upload-Offset"] == "0"  # not completed, the chunk not kept
    done = await http_client.fetch(base_url + url, method="PATCH", body=b"1234567890",
                                   headers={**fresh, "Upload-Offset": "0",
                                            "Content-Type": "application/offset+octet-stream"})
    assert done.code == 204
    resource = await http_client.fetch(base_url + "/api/files/" + url.rsplit("/", 1)[1],
                                       headers=fresh)
    assert json.loads(resource.body)["owner"] == "alice"
    stranger = {"Authorization": f"Bearer {token('mallory', 60)}", **TUS}
    other = await http_client.fetch(base_url + "/api/tus/", method="POST", body=b"",
                                    headers={**fresh, "Upload-Length": "3"})
    refused = await http_client.fetch(base_url + other.headers["Location"], method="PATCH",
                                      body=b"abc", raise_error=False,
                                      headers={**stranger, "Upload-Offset": "0",
                                               "Content-Type": "application/offset+octet-stream"})
    assert refused.code == 403
    still = await http_client.fetch(base_url + other.headers["Location"], method="HEAD",
                                    headers=fresh)
    assert still.headers["Upload-Offset"] == "0"
    ended = await http_client.fetch(base_url + other.headers["Location"], method="DELETE",
                                    headers=fresh)
    assert ended.code == 204
    residue.assert_clean(committed=1)
