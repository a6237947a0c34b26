"""Issue 13 on a real server process: a request of many file parts under a lowered open-file
limit, and ``GET /healthz`` from another client answering while heavy requests run."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import sqlite3
import time
import urllib.request
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from typing import Any

import pytest

from tests.serverproc import running_server
from tests.support import Part, multipart
from tornado_files.metadata.sqlite_uploads import COLUMNS, upload_row
from tornado_files.models import UploadState, utcnow

pytestmark = pytest.mark.slow

MANY = """
max_parts = 2000

[[routes]]
path = "/api/many"
max_body_size = "64MiB"
max_files = 2000
"""


def _post(url: str, body: bytes, content_type: str, method: str = "POST",
          **headers: str) -> int:
    request = urllib.request.Request(url, data=body, method=method,  # noqa: S310 (loopback)
                                     headers={"Content-Type": content_type, **headers})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _slowest_healthz(url: str, running: concurrent.futures.Future[Any]) -> float:
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


def _while_healthz_answers(url: str, work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread while this one asks ``/healthz``; every answer within 1 s."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(work)
        slowest = _slowest_healthz(url, running)
        result = running.result()
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s while {work} ran"
    return result


def _fill_uploads(database: str, count: int) -> None:
    """``count`` unfinished tus uploads, written straight into the server's SQLite (creating
    them over HTTP would take minutes); they expire in a day, so nothing sweeps them."""
    now = utcnow()
    states = [UploadState(id=f"{n:032x}", route="/api/files", storage="disk", length=10,
                          offset=0, created=now, expires=now + timedelta(days=1),
                          original_filename="x", declared_type="application/octet-stream")
              for n in range(count)]
    sql = (f"INSERT INTO uploads ({', '.join(COLUMNS)}) "  # noqa: S608 (fixed names)
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")
    with closing(sqlite3.connect(database, timeout=10)) as db, db:
        db.executemany(sql, [upload_row(s) for s in states])


def test_healthz_answers_while_heavy_requests_of_each_kind_run(tmp_path):
    """Issue 13, measured on a real server with its default limits: a long filename, PATCHes
    that grow ``data`` to its cap, and tus creations at the cap of unfinished uploads."""
    with running_server(tmp_path) as server:
        url = server.url
        # A 512 KiB name in a part header (12 s of event loop before): over the part-header
        # cap (16 KiB), so refused with 413 as soon as that much arrived.
        body, ctype = multipart([Part("file", b"hello", "n" * (512 * 1024) + ".txt")])
        status = _while_healthz_answers(url, lambda: _post(url + "/api/files", body, ctype))
        assert status == 413
        # data grown by PATCHes to the cap: the last one is refused.
        body, ctype = multipart([Part("file", b"x", "x.txt")])
        request = urllib.request.Request(url + "/api/files", data=body, method="POST",  # noqa: S310
                                         headers={"Content-Type": ctype})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            file_url = url + json.load(response)["url"]
        third = "é" * (190 * 1024)  # 380 KiB as UTF-8: two fit in 1 MiB, three do not

        def grow() -> list[int]:
            bodies = [json.dumps({"data": {key: third}}, ensure_ascii=False) for key in "abc"]
            return [_post(file_url, body.encode(), "application/json", method="PATCH")
                    for body in bodies]

        assert _while_healthz_answers(url, grow) == [200, 200, 413]
        # tus creations at the cap of unfinished uploads (10,000 by default).
        _fill_uploads(str(server.data_dir / "metadata.sqlite3"), 10_000)
        tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "10",
               "Upload-Metadata": "filename " + base64.b64encode(b"a.txt").decode()}

        def create() -> list[int]:
            return [_post(url + "/api/tus/", b"", "application/offset+octet-stream", **tus)
                    for _ in range(20)]

        assert set(_while_healthz_answers(url, create)) == {503}
        assert "ERROR" not in server.log()
