"""``--log-format json`` on the real server: every line it writes, start-up included, is one
JSON object, and each request's access line carries the id the client got."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.serverproc import running_server

pytestmark = pytest.mark.slow


def test_every_line_is_json(tmp_path: Path):
    (tmp_path / "a.txt").write_bytes(b"hello\n")
    with running_server(tmp_path, args=["--log-format", "json"]) as server:
        out = subprocess.run(
            ["curl", "-sS", "-D", "-", "-o", "/dev/null", "-F", f"file=@{tmp_path / 'a.txt'}",
             server.url + "/api/files"], capture_output=True, text=True, check=True, timeout=30)
        headers = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert any(line["event"] == "log" and "listening" in line["message"] for line in lines)
    [upload] = [line for line in lines if line["event"] == "request"
                and line["method"] == "POST"]
    assert upload["status"] == 201
    assert upload["request_id"] == headers["X-Request-Id"]
