"""Issue 13 on a real server process: a request of many file parts under a lowered open-file
limit, and ``GET /healthz`` from another client answering while heavy requests run."""

from __future__ import annotations

import concurrent.futures
import os
import time
import urllib.request

import pytest

from tests.serverproc import running_server
from tests.support import Part, multipart

pytestmark = pytest.mark.slow

MANY = """
[[routes]]
path = "/api/many"
max_body_size = "64MiB"
max_files = 2000
"""


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 (loopback)
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _slowest_healthz(url: str, running: concurrent.futures.Future[int]) -> float:
    slowest, probes = 0.0, 0
    while not running.done() or probes == 0:
        started = time.monotonic()
        with urllib.request.urlopen(url + "/healthz", timeout=30) as response:  # noqa: S310
            assert response.status == 200
        slowest = max(slowest, time.monotonic() - started)
        probes += 1
        time.sleep(0.02)
    return slowest


def test_1500_parts_under_a_1024_open_file_limit(tmp_path):
    """Each part's file was kept open until the request ended: 1,500 parts under the common
    1,024 limit answered 503. Now a part's file closes when the part ends."""
    parts = [Part("files", os.urandom(2000), f"{i}.bin") for i in range(1500)]
    body, ctype = multipart(parts)
    with running_server(tmp_path, config=MANY, nofile=1024) as server, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(_post, server.url + "/api/many", body, ctype)
        slowest = _slowest_healthz(server.url, running)
        assert running.result() == 201, server.log()[-2000:]
        assert slowest < 1.0, f"/healthz took {slowest:.2f} s during the upload"
        assert "ERROR" not in server.log()
