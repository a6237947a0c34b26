"""The access line (docs/deploying.md, Logs): one per request, its id also in
``X-Request-Id``, the keys of a JSON line, secrets redacted."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import pytest

from tests.support import Part, multipart
from tornado_files.logs import ACCESS_KEYS, JsonLogFormatter


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tornado.access"]


@pytest.mark.gen_test
async def test_one_line_per_request_with_its_id(http_client, base_url, caplog):
    caplog.set_level(logging.INFO, logger="tornado.access")
    body, ctype = multipart([Part("file", b"x" * 1000, "a.txt")])
    created = await http_client.fetch(base_url + "/api/files", method="POST", body=body,
                                      headers={"Content-Type": ctype})
    file_id = json.loads(created.body)["id"]
    got = await http_client.fetch(f"{base_url}/api/files/{file_id}/content?sig=secret&x=1")
    missing = await http_client.fetch(base_url + "/nowhere", raise_error=False)
    lines = [json.loads(JsonLogFormatter().format(r)) for r in access_records(caplog)]
    assert [line["status"] for line in lines] == [201, 200, 404]
    upload, download, lost = lines
    for line, response in zip(lines, (created, got, missing), strict=True):
        assert line["event"] == "request"
        assert set(ACCESS_KEYS) <= set(line)
        assert line["request_id"] == response.headers["X-Request-Id"]
        assert len(line["request_id"]) == 32
    assert len({line["request_id"] for line in lines}) == 3
    assert (upload["method"], upload["file_id"], upload["bytes_in"]) == ("POST", file_id,
                                                                         len(body))
    assert upload["bytes_out"] == len(created.body)
    assert (download["file_id"], download["bytes_out"]) == (file_id, 1000)
    assert download["path"] == f"/api/files/{file_id}/content?sig=REDACTED&x=REDACTED"
    assert "secret" not in json.dumps(lines)
    assert lost["file_id"] is None
    assert lost["principal"] is None  # the server is open: nobody in particular


def test_a_json_line_of_an_ordinary_log_and_of_an_error():
    formatter = JsonLogFormatter()
    record = logging.LogRecord("tornado_files", logging.WARNING, __file__, 1, "low %s",
                               ("space",), None)
    line: dict[str, Any] = json.loads(formatter.format(record))
    assert (line["event"], line["level"], line["logger"], line["message"]) == (
        "log", "WARNING", "tornado_files", "low space")
    assert line["time"].endswith("Z")
    assert line["pid"] == os.getpid()  # which worker wrote it, with --processes
    assert not set(ACCESS_KEYS) & set(line)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(formatter.format(failed))["exc_info"]
