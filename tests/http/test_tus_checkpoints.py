"""Checkpoints of a long tus PATCH, in-process on every stack: what reached storage is counted
every ``tus_checkpoint`` bytes while the PATCH goes on (HEAD sees it), and the file is whole
and right at the end; a PATCH with a checksum stays all or nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import raw_request

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"tus_checkpoint": "1MiB"}


def slow_patch(port: int, url: str, data: bytes, piece: int = 256 * 1024,
               pause: float = 0.05, **headers: str) -> Any:
    """A PATCH of ``data`` in pieces with pauses between them, on a real socket."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (f"PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            f"{extra}Content-Length: {len(data)}\r\n\r\n").encode()

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), piece):
            yield data[start:start + piece]
            time.sleep(pause)
    return raw_request(port, head, pieces(), timeout=60)


async def create(http_client, base_url, length: int) -> str:
    created = await http_client.fetch(base_url + "/api/tus/", method="POST", body=b"",
                                      headers={**TUS, "Upload-Length": str(length)})
    return str(created.headers["Location"])


@pytest.mark.stores
@pytest.mark.gen_test(timeout=60)
async def test_a_long_patch_counts_its_bytes_on_the_way(http_client, base_url, http_port,
                                                        residue):
    content = os.urandom(5 * MIB + 123)
    url = await create(http_client, base_url, len(content))
    sending = asyncio.get_running_loop().run_in_executor(
        None, lambda: slow_patch(http_port, url, content))
    seen = set()
    while not sending.done():
        head = await http_client.fetch(base_url + url, method="HEAD", headers=TUS)
        seen.add(int(head.headers["Upload-Offset"]))
        await asyncio.sleep(0.05)
    answer = await sending
    assert answer.status == 204
    assert any(0 < offset < len(content) for offset in seen), seen  # counted on the way
    resource = json.loads((await http_client.fetch(
        base_url + "/api/files/" + url.rsplit("/", 1)[1])).body)
    assert resource["sha256"] == hashlib.sha256(content).hexdigest()
    assert resource["size"] == len(content)
    residue.assert_clean(committed=1)


@pytest.mark.gen_test(timeout=60)
async def test_a_patch_with_a_checksum_stays_all_or_nothing(http_client, base_url, http_port,
                                                            residue):
    content = os.urandom(3 * MIB)
    url = await create(http_client, base_url, len(content))
    wrong = base64.b64encode(hashlib.sha256(b"not this").digest()).decode()
    answer = await asyncio.get_running_loop().run_in_executor(
        None, lambda: slow_patch(http_port, url, content, pause=0,
                                 **{"Upload-Checksum": f"sha256 {wrong}"}))
    assert answer.status == 460
    head = await http_client.fetch(base_url + url, method="HEAD", headers=TUS)
    assert head.headers["Upload-Offset"] == "0"  # no checkpoint counted any of it
    await http_client.fetch(base_url + url, method="DELETE", headers=TUS)
    residue.assert_clean()
