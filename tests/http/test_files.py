"""Reading, changing, deleting and listing files (docs/api.md), in-process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.support import PNG_1PX, Part, error_of, multipart

CONTENT = os.urandom(3 * 1024 * 1024 + 17)  # several read chunks, not a multiple of any


async def upload(client: AsyncHTTPClient, base_url: str, content: bytes, name: str,
                 ctype: str = "application/octet-stream", path: str = "/api/files",
                 data: dict[str, Any] | None = None) -> dict[str, Any]:
    parts = [Part("file", content, name, ctype)]
    if data is not None:
        parts.insert(0, Part("data", json.dumps(data).encode()))
    body, content_type = multipart(parts)
    response = await client.fetch(base_url + path, method="POST", body=body,
                                  headers={"Content-Type": content_type})
    assert response.code == 201
    return json.loads(response.body)


async def fetch(client: AsyncHTTPClient, url: str, **kwargs: Any) -> Any:
    return await client.fetch(url, raise_error=False, **kwargs)


@pytest.mark.stores
@pytest.mark.gen_test
async def test_get_resource_and_404(http_client, base_url):
    created = await upload(http_client, base_url, b"hello", "a.txt")
    got = await fetch(http_client, base_url + created["url"])
    assert json.loads(got.body) == created
    error_of(await fetch(http_client, base_url + "/api/files/" + "0" * 32), 404, "not_found")
    error_of(await fetch(http_client, base_url + "/api/files/not-an-id"), 404, "not_found")


@pytest.mark.gen_test
async def test_head_of_the_resource_is_get_without_a_body(http_client, base_url):
    # RFC 9110 §9.3.2: HEAD wherever GET is, with the same header fields.
    created = await upload(http_client, base_url, b"hello", "a.txt")
    got = await fetch(http_client, base_url + created["url"])
    head = await fetch(http_client, base_url + created["url"], method="HEAD")
    assert head.code == 200
    assert head.body == b""
    assert head.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert head.headers["Content-Length"] == str(len(got.body))
    missing = await fetch(http_client, base_url + "/api/files/" + "0" * 32, method="HEAD")
    assert missing.code == 404


@pytest.mark.stores
@pytest.mark.gen_test
async def test_download_headers_and_bytes(http_client, base_url):
    raw = await http_client.fetch(base_url + "/api/files", method="POST", body=CONTENT, headers={
        "Content-Type": "application/octet-stream", "X-Filename": "we%22ird%0D%0Aname.bin"})
    created = json.loads(raw.body)
    assert created["original_filename"] == 'we"ird\r\nname.bin'
    response = await fetch(http_client, base_url + created["download_url"])
    assert response.code == 200
    assert response.body == CONTENT
    headers = response.headers
    assert headers["Content-Length"] == str(len(CONTENT))
    assert headers["ETag"] == f'"{hashlib.sha256(CONTENT).hexdigest()}"'
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Type"] == created["mime_type"]
    assert headers["Last-Modified"].endswith("GMT")
    disposition = headers["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    assert "\r" not in disposition
    assert "\n" not in disposition
    assert "filename*=UTF-8''we%22irdname.bin" in disposition
    alt = await fetch(http_client, base_url + created["url"] + "?alt=media")
    assert alt.body == CONTENT
    head = await fetch(http_client, base_url + created["download_url"], method="HEAD")
    assert head.code == 200
    assert head.body == b""
    assert head.headers["Content-Length"] == str(len(CONTENT))


@pytest.mark.stores
@pytest.mark.gen_test
@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-0", 0, 1), ("bytes=100-1048675", 100, 1048676), ("bytes=3145700-", 3145700, None),
    ("bytes=-17", -17, None), ("bytes=1048575-1048577", 1048575, 1048578),
])
async def test_ranges(http_client, base_url, header, start, end):
    created = await upload(http_client, base_url, CONTENT, "r.bin")
    response = await fetch(http_client, base_url + created["download_url"],
                           headers={"Range": header})
    assert response.code == 206
    expected = CONTENT[start:end]
    assert response.body == expected
    first = start % len(CONTENT)
    assert response.headers["Content-Range"] == \
        f"bytes {first}-{first + len(expected) - 1}/{len(CONTENT)}"


@pytest.mark.gen_test
async def test_unsatisfiable_range_and_conditionals(http_client, base_url):
    created = await upload(http_client, base_url, CONTENT, "c.bin")
    url = base_url + created["download_url"]
    bad = await fetch(http_client, url, headers={"Range": f"bytes={len(CONTENT)}-"})
    error_of(bad, 416, "range_not_satisfiable")
    assert bad.headers["Content-Range"] == f"bytes */{len(CONTENT)}"
    etag = (await fetch(http_client, url, method="HEAD")).headers["ETag"]
    cached = await fetch(http_client, url, headers={"If-None-Match": etag})
    assert cached.code == 304
    assert cached.body == b""
    stale = await fetch(http_client, url, headers={"If-None-Match": '"other"'})
    assert stale.code == 200
    fresh_range = await fetch(http_client, url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh_range.code == 206
    changed = await fetch(http_client, url, headers={"Range": "bytes=0-9", "If-Range": '"x"'})
    assert changed.code == 200
    assert len(changed.body) == len(CONTENT)


@pytest.mark.gen_test
async def test_inline_only_for_safe_types(http_client, base_url):
    png = await upload(http_client, base_url, PNG_1PX, "p.png")
    html = await upload(http_client, base_url, b"<html><body><script>x</script></body></html>",
                        "x.html", "text/html")
    assert html["mime_type"] == "text/html"
    inline = await fetch(http_client, base_url + png["download_url"] + "?disposition=inline")
    assert inline.headers["Content-Disposition"].startswith("inline; ")
    forced = await fetch(http_client, base_url + html["download_url"] + "?disposition=inline")
    assert forced.headers["Content-Disposition"].startswith("attachment; ")
    bad = await fetch(http_client, base_url + png["download_url"] + "?disposition=evil")
    error_of(bad, 400, "invalid_parameter")


@pytest.mark.gen_test
async def test_text_is_served_with_its_charset(http_client, base_url):
    """A browser shown UTF-8 text without a charset guesses (often windows-1252): mojibake."""
    utf8 = await upload(http_client, base_url, "café ☕ 東京\n".encode(), "u.txt", "text/plain")
    ascii_ = await upload(http_client, base_url, b"plain ascii\n", "a.txt", "text/plain")
    latin = await upload(http_client, base_url, "café\n".encode("latin-1"), "l.txt")
    png = await upload(http_client, base_url, PNG_1PX, "p.png")
    for created, expected in ((utf8, "text/plain; charset=utf-8"),
                              (ascii_, "text/plain; charset=utf-8"),
                              (latin, "text/plain; charset=iso-8859-1"), (png, "image/png")):
        for disposition in ("inline", "attachment"):
            got = await fetch(http_client, base_url + created["download_url"]
                              + "?disposition=" + disposition)
            assert got.headers["Content-Type"] == expected, (created["filename"], disposition)
        head = await fetch(http_client, base_url + created["download_url"], method="HEAD")
        assert head.headers["Content-Type"] == expected
    assert utf8["mime_type"] == "text/plain"  # the record keeps the bare type (filters match it)


@pytest.mark.stores
@pytest.mark.gen_test
async def test_patch_put_and_delete(http_client, base_url, residue):
    created = await upload(http_client, base_url, b"x", "a.txt", data={"keep": 1, "drop": 2})
    url = base_url + created["url"]
    patched = await fetch(http_client, url, method="PATCH", body=json.dumps(
        {"filename": "../b.txt", "data": {"drop": None, "new": "v"}}))
    assert patched.code == 200
    resource = json.loads(patched.body)
    assert resource["filename"] == "b.txt"
    assert resource["data"] == {"keep": 1, "new": "v"}
    assert resource["original_filename"] == "a.txt"
    assert resource["modified"] >= created["modified"]
    replaced = json.loads((await fetch(http_client, url, method="PUT",
                                       body=json.dumps({"data": {"only": True}}))).body)
    assert replaced["data"] == {"only": True}
    assert replaced["filename"] == "b.txt"
    for body, code in ((b"[1]", "invalid_json"), (b"{bad", "invalid_json"),
                       (b'{"size": 3}', "invalid_parameter"), (b'{"data": 3}', "invalid_json")):
        error_of(await fetch(http_client, url, method="PATCH", body=body), 400, code)
    too_big = await fetch(http_client, url, method="PATCH", body=b" " * (1024 * 1024 + 1))
    error_of(too_big, 413, "request_too_large")
    missing = base_url + "/api/files/" + "f" * 32
    error_of(await fetch(http_client, missing, method="PATCH", body=b"{}"), 404, "not_found")
    residue.assert_clean(committed=1)
    deleted = await fetch(http_client, url, method="DELETE")
    assert deleted.code == 204
    residue.assert_clean(committed=0)
    error_of(await fetch(http_client, url, method="DELETE"), 404, "not_found")
    error_of(await fetch(http_client, base_url + created["download_url"]), 404, "not_found")


@pytest.mark.stores
@pytest.mark.gen_test(timeout=60)
async def test_concurrent_patches_keep_every_key(http_client, base_url):
    # Issue 13: 50 PATCHes at once, each adding its own key, all answered 200 — so all 50
    # keys must be there afterwards (no lost update).
    created = await upload(http_client, base_url, b"x", "a.txt", data={"keep": 1})
    url = base_url + created["url"]
    answers = await asyncio.gather(*(
        fetch(http_client, url, method="PATCH", body=json.dumps({"data": {f"k{n}": n}}))
        for n in range(50)))
    assert [a.code for a in answers] == [200] * 50
    final = json.loads((await fetch(http_client, url)).body)
    assert final["data"] == {"keep": 1, **{f"k{n}": n for n in range(50)}}


@pytest.mark.stores
@pytest.mark.gen_test
async def test_if_match_makes_a_change_conditional(http_client, base_url):
    created = await upload(http_client, base_url, b"x", "a.txt", data={"n": 0})
    url = base_url + created["url"]
    etag = (await fetch(http_client, url)).headers["ETag"]
    first = await fetch(http_client, url, method="PATCH", body=json.dumps({"data": {"n": 1}}),
                        headers={"If-Match": etag})
    assert first.code == 200
    # The same ETag again: the file changed since, so the change is refused (RFC 9110 §13.1.1).
    stale = await fetch(http_client, url, method="PUT", body=json.dumps({"data": {"n": 2}}),
                        headers={"If-Match": etag})
    error_of(stale, 412, "precondition_failed")
    weak = await fetch(http_client, url, method="PATCH", body=b"{}",
                       headers={"If-Match": "W/" + first.headers["ETag"]})
    error_of(weak, 412, "precondition_failed")  # If-Match compares strongly
    current = await fetch(http_client, url)
    assert current.headers["ETag"] == first.headers["ETag"]  # PATCH's ETag is GET's
    assert json.loads(current.body)["data"] == {"n": 1}
    chained = await fetch(http_client, url, method="PUT", body=json.dumps({"data": {"n": 3}}),
                          headers={"If-Match": f'"other", {first.headers["ETag"]}'})
    assert chained.code == 200
    assert (await fetch(http_client, url, method="PATCH", body=b"{}",
                        headers={"If-Match": "*"})).code == 200
    missing = base_url + "/api/files/" + "f" * 32
    error_of(await fetch(http_client, missing, method="PATCH", body=b"{}",
                         headers={"If-Match": "*"}), 404, "not_found")
    # DELETE evaluates it too: a stale ETag keeps the file.
    error_of(await fetch(http_client, url, method="DELETE", headers={"If-Match": etag}),
             412, "precondition_failed")
    assert (await fetch(http_client, url)).code == 200
    latest = (await fetch(http_client, url)).headers["ETag"]
    assert (await fetch(http_client, url, method="DELETE",
                        headers={"If-Match": latest})).code == 204


@pytest.mark.gen_test
async def test_patch_refuses_keys_mongodb_cannot_name(http_client, base_url):
    created = await upload(http_client, base_url, b"x", "a.txt")
    url = base_url + created["url"]
    for key in ("a.b", "$set", ""):
        answer = await fetch(http_client, url, method="PATCH",
                             body=json.dumps({"data": {key: 1}}))
        error_of(answer, 400, "invalid_parameter")
    assert json.loads((await fetch(http_client, url)).body)["data"] == {}


@pytest.mark.stores
@pytest.mark.gen_test(timeout=30)
async def test_listing_filters_sorting_and_paging(http_client, base_url):
    made = []
    for i in range(7):
        made.append(await upload(http_client, base_url, b"line of text\n" * (i + 1),
                                 f"File_{i}.txt",
                                 data={"group": "odd" if i % 2 else "even"}))
    made.append(await upload(http_client, base_url, PNG_1PX, "pixel.png"))

    async def listing(query: str) -> dict[str, Any]:
        response = await fetch(http_client, base_url + "/api/files" + query)
        assert response.code == 200, response.body
        return json.loads(response.body)

    newest_first = [f["id"] for f in (await listing(""))["files"]]
    assert newest_first == [f["id"] for f in reversed(made)]
    assert [f["filename"] for f in (await listing("?mime_type=image/*"))["files"]] == ["pixel.png"]
    assert len((await listing("?mime_type=text/plain"))["files"]) == 7
    sizes = [f["size"] for f in (await listing("?size_greater_than=26&size_less_than=65"))["files"]]
    assert sorted(sizes) == [39, 52]
    assert len((await listing("?filename=file_"))["files"]) == 7
    assert len((await listing("?data.group=odd"))["files"]) == 3
    assert len((await listing(f"?sha256={made[0]['sha256']}"))["files"]) == 1
    assert [f["size"] for f in (await listing("?sort=size&limit=3"))["files"]] == [13, 26, 39]
    assert (await listing("?added_since=2000-01-01T00:00:00Z"))["files"]
    assert not (await listing("?added_since=2999-01-01T00:00:00Z"))["files"]
    seen: list[str] = []
    url = "?sort=-size&limit=3"
    while url:
        page = await listing(url if url.startswith("?") else url[len("/api/files"):])
        seen += [f["id"] for f in page["files"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == 8
    for query in ("?sort=colour", "?limit=0", "?limit=1001", "?size_less_than=-1",
                  "?added_since=yesterday", "?cursor=garbage", "?colour=red", "?limit=1&limit=2"):
        error_of(await fetch(http_client, base_url + "/api/files" + query), 400,
                 "invalid_parameter")


@pytest.mark.gen_test
async def test_ranges_on_an_empty_file_follow_rfc_9110(http_client, base_url):
    # §14.1.2: on a zero-length representation only a suffix range with a non-zero length is
    # satisfiable (the whole, empty representation: a plain 200); every other range is 416.
    created = await upload(http_client, base_url, b"", "empty.txt")
    url = base_url + created["download_url"]
    suffix = await fetch(http_client, url, headers={"Range": "bytes=-5"})
    assert suffix.code == 200
    assert suffix.body == b""
    assert suffix.headers["Content-Length"] == "0"
    for header in ("bytes=0-", "bytes=0-0", "bytes=-0"):
        refused = await fetch(http_client, url, headers={"Range": header})
        assert refused.code == 416, header
        assert refused.headers["Content-Range"] == "bytes */0"


@pytest.mark.stores
@pytest.mark.gen_test(timeout=60)
async def test_a_listing_page_is_bounded_in_bytes(http_client, base_url):
    """Each file's data may take 1 MiB: with ``limit=1000`` one page could be a gigabyte held
    in memory (a newcomer measured 198 MiB for 200 files). A page ends near 4 MiB of JSON and
    ``next`` goes on; every file comes exactly once, in order."""
    ids = []
    for n in range(6):
        created = await upload(http_client, base_url, b"x", f"{n}.txt")
        grown = await fetch(http_client, base_url + created["url"], method="PATCH",
                            body=json.dumps({"data": {"blob": "d" * 900_000}}))
        assert grown.code == 200
        ids.append(created["id"])
    url: str | None = base_url + "/api/files?limit=1000"
    pages = []
    while url is not None:
        response = await fetch(http_client, url)
        assert response.code == 200
        assert len(response.body) < 5 * 1024 * 1024
        page = json.loads(response.body)
        pages.append([f["id"] for f in page["files"]])
        url = base_url + page["next"] if page["next"] else None
    assert len(pages) >= 2
    assert [i for page in pages for i in page] == ids[::-1]  # newest first, none twice
