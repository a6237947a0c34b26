"""Signed links (docs/security.md), in-process: download links with Range and without
credentials, every tampering refused, expiry, deleted files; upload links capped at their
max_size mid-stream with nothing left, owned by their maker, with their data; private_reads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.support import Part, error_of, multipart
from tests.tokens import TOKENS, tokens_setting
from tests.tokens import bearer as auth

CONTENT = os.urandom(200_000)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "tokens": tokens_setting(),
        "signing_key": "a-signing-key-of-at-least-32-characters",
        "max_link_lifetime": 3600,
        "routes": [{"path": "/api/docs", "max_body_size": "1MiB"}],
    }


async def fetch(client: AsyncHTTPClient, url: str, method: str = "GET",
                body: bytes | None = None, **headers: str) -> HTTPResponse:
    return await client.fetch(url, method=method, body=body, headers=headers,
                              raise_error=False, allow_nonstandard_methods=True)


async def upload(client: AsyncHTTPClient, base: str, who: str, content: bytes = CONTENT
                 ) -> dict[str, Any]:
    body, ctype = multipart([Part("file", content, "f.bin")])
    response = await fetch(client, base + "/api/files", "POST", body, **auth(who),
                           **{"Content-Type": ctype})
    assert response.code == 201, response.body
    return dict(json.loads(response.body))


async def make_link(client: AsyncHTTPClient, base: str, path: str, who: str,
                    **body: Any) -> dict[str, Any]:
    response = await fetch(client, base + path, "POST", json.dumps(body).encode(), **auth(who),
                           **{"Content-Type": "application/json"})
    assert response.code == 201, response.body
    return dict(json.loads(response.body))


def altered(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return f"{parts.path}?{urlencode(params)}"


@pytest.mark.gen_test
async def test_a_download_link_serves_the_content_to_anyone(http_client, base_url):
    created = await upload(http_client, base_url, "alice")
    link = await make_link(http_client, base_url, f"/api/files/{created['id']}/links", "alice",
                           expires_in=600)
    assert link["url"].startswith(created["download_url"] + "?")
    assert link["expires"].endswith("Z")
    whole = await fetch(http_client, base_url + link["url"])  # no credential at all
    assert whole.code == 200
    assert hashlib.sha256(whole.body).hexdigest() == created["sha256"]
    assert whole.headers["Content-Disposition"].startswith("attachment;")
    ranged = await fetch(http_client, base_url + link["url"], Range="bytes=100-199")
    assert ranged.code == 206
    assert ranged.body == CONTENT[100:200]
    head = await fetch(http_client, base_url + link["url"], "HEAD")
    assert head.code == 200
    assert head.headers["Content-Length"] == str(len(CONTENT))
    inline = await make_link(http_client, base_url, f"/api/files/{created['id']}/links",
                             "bob", disposition="inline")  # bob may read alice's file
    shown = await fetch(http_client, base_url + inline["url"])
    assert shown.headers["Content-Disposition"].startswith("attachment;")  # not a safe type
    assert shown.body == CONTENT


@pytest.mark.gen_test
async def test_every_tampering_is_refused_and_says_not_expired(http_client, base_url):
    created = await upload(http_client, base_url, "alice")
    other = await upload(http_client, base_url, "alice", b"other file")
    url = (await make_link(http_client, base_url, f"/api/files/{created['id']}/links",
                           "alice"))["url"]
    sig = dict(parse_qsl(urlsplit(url).query))["sig"]
    expires = dict(parse_qsl(urlsplit(url).query))["expires"]
    tampered = [
        altered(url, expires=str(int(expires) + 3600)),  # longer life
        altered(url, sig=("A" if sig[0] != "A" else "B") + sig[1:]),
        altered(url, sig=None),
        altered(url, disposition="inline"),  # a parameter added
        altered(url, expires=None),
        url.replace(created["id"], other["id"]),  # another file
        url.replace("/content?", "?alt=media&"),  # another path to the same bytes
    ]
    for bad in tampered:
        response = await fetch(http_client, base_url + bad)
        if "sig=" not in bad:
            assert response.code == 401, bad  # no signature: an ordinary request, no token
            continue
        error = error_of(response, 403, "invalid_signature")
        assert error["meta"] == {"expired": False}, bad
    for method in ("DELETE", "PATCH"):  # the signature is for GET (and HEAD) only
        response = await fetch(http_client, base_url + url.replace("/content", ""), method,
                               b"{}" if method == "PATCH" else None)
        error_of(response, 403, "invalid_signature")
    assert (await fetch(http_client, base_url + created["url"], **auth("alice"))).code == 200


@pytest.mark.gen_test
async def test_expired_and_deleted(http_client, base_url):
    created = await upload(http_client, base_url, "alice")
    short = await make_link(http_client, base_url, f"/api/files/{created['id']}/links",
                            "alice", expires_in=1)
    long = await make_link(http_client, base_url, f"/api/files/{created['id']}/links", "alice")
    await asyncio.sleep(2.1)
    expired = await fetch(http_client, base_url + short["url"])
    assert error_of(expired, 403, "invalid_signature")["meta"] == {"expired": True}
    too_long = await fetch(http_client, base_url + f"/api/files/{created['id']}/links", "POST",
                           b'{"expires_in": 3601}', **auth("alice"))
    error_of(too_long, 400, "invalid_parameter")
    deleted = await fetch(http_client, base_url + created["url"], "DELETE", **auth("alice"))
    assert deleted.code == 204
    error_of(await fetch(http_client, base_url + long["url"]), 404, "not_found")


@pytest.mark.stores
@pytest.mark.gen_test
async def test_an_upload_link_is_one_capped_upload_owned_by_its_maker(http_client, base_url,
                                                                       residue):
    link = await make_link(http_client, base_url, "/api/upload-links", "alice",
                           route="/api/docs", max_size=10_000, expires_in=600,
                           data={"ticket": 42})
    assert link["url"].startswith("/api/docs?")
    body, ctype = multipart([Part("data", b'{"ticket": 1, "note": "from the uploader"}'),
                             Part("file", b"x" * 10_000, "ok.bin")])
    stored = await fetch(http_client, base_url + link["url"], "POST", body,
                         **{"Content-Type": ctype})
    assert stored.code == 201, stored.body
    resource = json.loads(stored.body)
    assert resource["owner"] == "alice"
    assert resource["route"] == "/api/docs"
    assert resource["data"] == {"ticket": 42, "note": "from the uploader"}  # the link's wins
    raw = await fetch(http_client, base_url + link["url"], "POST", b"raw bytes",
                      **{"Content-Type": "application/octet-stream", "X-Filename": "r.bin"})
    assert raw.code == 201
    assert json.loads(raw.body)["owner"] == "alice"
    # Over max_size: refused mid-stream (chunked, so nothing declared it up front).
    big, big_type = multipart([Part("file", os.urandom(50_000), "big.bin")])

    async def chunks(write: Any) -> None:
        for at in range(0, len(big), 4096):
            await write(big[at:at + 4096])
    over = await http_client.fetch(base_url + link["url"], method="POST", raise_error=False,
                                   body_producer=chunks, headers={"Content-Type": big_type})
    assert over.code == 413
    assert json.loads(over.body)["errors"][0]["code"] in ("file_too_large", "request_too_large")
    # One file per request, and the body has no room for a second file's worth of bytes.
    two, two_type = multipart([Part("files", b"a" * 10, "a.bin"), Part("files", b"b", "b.bin")])
    refused = await fetch(http_client, base_url + link["url"], "POST", two,
                          **{"Content-Type": two_type})
    error_of(refused, 400, "too_many_files")
    padded, padded_type = multipart([Part("pad1", b"p" * 50_000), Part("pad2", b"p" * 50_000),
                                     Part("file", b"x", "x.bin")])  # fields under every cap
    too_big = await fetch(http_client, base_url + link["url"], "POST", padded,
                          **{"Content-Type": padded_type})
    error_of(too_big, 413, "request_too_large")
    # The link is for POST to that route only.
    elsewhere = await fetch(http_client, base_url + link["url"].replace("/api/docs", "/api/files"),
                            "POST", b"x", **{"Content-Type": "application/octet-stream"})
    error_of(elsewhere, 403, "invalid_signature")
    default = await make_link(http_client, base_url, "/api/upload-links", "alice")
    assert default["url"].startswith("/api/files?")
    listing = await fetch(http_client, base_url + default["url"])  # GET: not what it signs
    error_of(listing, 403, "invalid_signature")
    residue.assert_clean(committed=2)


@pytest.mark.gen_test
async def test_an_upload_link_expires(http_client, base_url, residue):
    link = await make_link(http_client, base_url, "/api/upload-links", "bob", expires_in=1)
    await asyncio.sleep(2.1)
    late = await fetch(http_client, base_url + link["url"], "POST", b"late",
                       **{"Content-Type": "application/octet-stream"})
    assert error_of(late, 403, "invalid_signature")["meta"] == {"expired": True}
    over_route = await fetch(http_client, base_url + "/api/upload-links", "POST",
                             b'{"route": "/api/docs", "max_size": 2000000}', **auth("bob"))
    error_of(over_route, 400, "invalid_parameter")
    unknown = await fetch(http_client, base_url + "/api/upload-links", "POST",
                          b'{"route": "/nowhere"}', **auth("bob"))
    error_of(unknown, 400, "invalid_parameter")
    residue.assert_clean()


class TestPrivateReads:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {
            "tokens": tokens_setting(),
            "signing_key": "a-signing-key-of-at-least-32-characters",
            "private_reads": True,
        }

    @pytest.mark.stores
    @pytest.mark.gen_test
    async def test_each_reads_only_their_own_and_admin_all(self, http_client, base_url):
        mine = await upload(http_client, base_url, "alice")
        theirs = await upload(http_client, base_url, "bob", b"bob's")
        for path in (mine["url"], mine["download_url"]):
            error_of(await fetch(http_client, base_url + path, **auth("bob")), 403, "forbidden")
            assert (await fetch(http_client, base_url + path, **auth("alice"))).code == 200
            assert (await fetch(http_client, base_url + path, **auth("admin"))).code == 200
        error_of(await fetch(http_client, base_url + f"{mine['url']}/links", "POST", b"{}",
                             **auth("bob")), 403, "forbidden")

        async def listed(who: str, query: str = "") -> list[str]:
            response = await fetch(http_client, base_url + "/api/files" + query, **auth(who))
            assert response.code == 200, response.body
            return [f["id"] for f in json.loads(response.body)["files"]]
        assert await listed("bob") == [theirs["id"]]
        assert await listed("alice") == [mine["id"]]
        assert sorted(await listed("admin")) == sorted([mine["id"], theirs["id"]])
        assert await listed("admin", "?owner=alice") == [mine["id"]]
        error_of(await fetch(http_client, base_url + "/api/files?owner=alice", **auth("bob")),
                 403, "forbidden")
        # A link alice made is her grant: it works for anyone.
        link = await make_link(http_client, base_url, f"{mine['url']}/links", "alice")
        assert (await fetch(http_client, base_url + link["url"])).body == CONTENT


class TestOpenModeWithoutSigningKey:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {}

    @pytest.mark.gen_test
    async def test_links_are_not_enabled_and_everything_else_is_open(self, http_client,
                                                                      base_url):
        created = await upload(http_client, base_url, "alice")  # any header is ignored
        assert created["owner"] is None
        response = await fetch(http_client, base_url + f"{created['url']}/links", "POST", b"{}")
        error_of(response, 404, "not_found")


@pytest.mark.gen_test
async def test_no_secret_reaches_the_log(http_client, base_url, caplog):
    """Tokens (good and bad) and link signatures never appear in any log line, access
    lines included (the signature of a used link is redacted)."""
    caplog.set_level(logging.DEBUG)
    created = await upload(http_client, base_url, "alice")
    link = await make_link(http_client, base_url, f"{created['url']}/links", "alice")
    assert (await fetch(http_client, base_url + link["url"])).code == 200
    bad = "a-wrong-token-that-is-long-enough"
    assert (await fetch(http_client, base_url + "/api/files",
                        **{"X-Auth-Token": bad})).code == 401
    tampered = altered(link["url"], expires="1")
    assert (await fetch(http_client, base_url + tampered)).code == 403
    sig = dict(parse_qsl(urlsplit(link["url"]).query))["sig"]
    # The name spelt another way is the same parameter (and the same secret); a token in the
    # query is refused (401) but was written to the access line whole.
    respelt = link["url"].replace("sig=", "%73ig=")
    assert (await fetch(http_client, base_url + respelt)).code == 200
    in_query = f"/api/files?access_token={TOKENS['alice'][0]}&jwt={bad}"
    assert (await fetch(http_client, base_url + in_query)).code == 401
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "sig=REDACTED" in text  # the access lines were there, redacted
    for secret in (TOKENS["alice"][0], bad, sig):
        assert secret not in text
