"""The command-line client against ``python server.py`` in a subprocess, as people use it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
CONFIG = """
[[routes]]
path = "/api/small"
max_body_size = "1MiB"

[[routes]]
path = "/api/images"
max_body_size = "64MiB"
allowed_mime_types = ["image/png"]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("cli"), config=CONFIG) as running:
        yield running


def cli(server_url: str, *args: str, state: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    extra = ["--state", str(state)] if state is not None and args[0] == "upload" else []
    env = {**os.environ, "TORNADO_FILES_URL": server_url}
    return subprocess.run([sys.executable, "-m", "tornado_files", *args, *extra],
                          capture_output=True, text=True, timeout=timeout, env=env, check=False)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upload_ls_download_rm(server, tmp_path):
    small = tmp_path / "note.txt"
    small.write_text("hello\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * MIB + 5))
    result = cli(server.url, "upload", str(small), str(big), "--tus-threshold", "1MiB",
                 "--chunk-size", "1MiB", "--data", '{"project": "x"}', state=tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    ids = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert len(ids) == 2
    listing = cli(server.url, "ls", "--filename", "big.bin")
    assert listing.stdout.split("\t")[0] == ids[1]
    page = json.loads(cli(server.url, "ls", "--json", "--route", "/api/files").stdout)
    assert {f["id"] for f in page["files"]} >= set(ids)
    out = tmp_path / "back.bin"
    fetched = cli(server.url, "download", ids[1], "-o", str(out))
    assert fetched.returncode == 0, fetched.stderr
    assert "verified" in fetched.stdout
    assert sha256(out) == sha256(big)
    removed = cli(server.url, "rm", ids[0])
    assert removed.stdout.strip() == f"deleted {ids[0]}"
    gone = cli(server.url, "download", ids[0], "-o", str(tmp_path / "x"))
    assert gone.returncode == 1
    assert gone.stderr.strip() == "tornado-files download: error: not found"


def test_upload_resumes_after_the_client_is_killed(server, tmp_path):
    big = tmp_path / "video.bin"
    big.write_bytes(os.urandom(160 * MIB))  # big enough that the kill lands mid-file
    state = tmp_path / "state.json"
    env = {**os.environ, "TORNADO_FILES_URL": server.url}
    first = subprocess.Popen(
        [sys.executable, "-m", "tornado_files", "upload", str(big), "--tus-threshold", "1MiB",
         "--chunk-size", "1MiB", "--state", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    location, offset = None, 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and offset < 4 * MIB:
        if state.exists() and (entries := json.loads(state.read_text() or "{}")):
            location = next(iter(entries.values()))
            request = urllib.request.Request(  # noqa: S310 (our own 127.0.0.1 server)
                server.url + location, method="HEAD", headers={"Tus-Resumable": "1.0.0"})
            with urllib.request.urlopen(request) as response:  # noqa: S310
                offset = int(response.headers["Upload-Offset"])
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # no goodbye: a crash or a closed laptop
    first.communicate(timeout=30)
    assert location is not None
    assert 0 < offset < 160 * MIB, "the first run must stop mid-file"
    second = cli(server.url, "upload", str(big), "--tus-threshold", "1MiB", "--chunk-size",
                 "8MiB", state=state)
    assert second.returncode == 0, second.stderr
    file_id = second.stdout.split("\t")[0]
    assert location.endswith(file_id), "the same upload was continued"
    out = tmp_path / "back.bin"
    assert cli(server.url, "download", file_id, "-o", str(out)).returncode == 0
    assert sha256(out) == sha256(big)
    assert json.loads(state.read_text()) == {}


def test_download_resumes_a_truncated_file(server, tmp_path):
    content = os.urandom(5 * MIB + 1)
    source = tmp_path / "src.bin"
    source.write_bytes(content)
    file_id = cli(server.url, "upload", str(source)).stdout.split("\t")[0]
    partial = tmp_path / "partial.bin"
    partial.write_bytes(content[: 2 * MIB])
    before = server.log().count(" 206 GET ")
    result = cli(server.url, "download", file_id, "-o", str(partial))
    assert result.returncode == 0, result.stderr
    assert partial.read_bytes() == content
    assert server.log().count(" 206 GET ") == before + 1  # a Range request, not a re-fetch


@pytest.mark.parametrize(("route", "content", "message"), [
    ("/api/small", b"\0" * (2 * MIB), "too large — the limit here is 1MiB"),
    ("/api/images", b"%PDF-1.4\n" + b"\0" * 100_000,
     "only image/png accepted here (this file is application/pdf)"),
])
def test_refusals_are_one_clear_line(server, tmp_path, route, content, message):
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    result = cli(server.url, "upload", str(path), "--route", route)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"tornado-files upload: error: {message}"


def test_unreachable_server(tmp_path):
    port = free_port()
    result = cli(f"http://127.0.0.1:{port}", "ls")
    assert result.returncode == 3
    assert result.stderr.strip() == \
        f"tornado-files ls: error: cannot reach http://127.0.0.1:{port}: connection refused"


NAMES = ["résumé.pdf", 'say "hi".txt', "東京レポート.txt", "📦 box.bin", "two\nlines\r.txt"]


def browser_name(name: str) -> str:
    """The name as a browser writes it into multipart/form-data (WHATWG HTML): UTF-8, with
    only ``"``, CR and LF percent-encoded; the server stores what it was sent."""
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _resource(server: ServerProcess, file_id: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{server.url}/api/files/{file_id}") as response:  # noqa: S310
        return dict(json.load(response))


@pytest.mark.parametrize("tus", [False, True], ids=["multipart", "tus"])
def test_filenames_are_sent_as_browsers_send_them(server, tmp_path, tus):
    paths = []
    for index, name in enumerate(NAMES):
        folder = tmp_path / str(index)
        folder.mkdir()
        path = folder / name
        path.write_bytes(os.urandom(2000 + index))
        paths.append(path)
    threshold = ["--tus-threshold", "1KiB"] if tus else []
    result = cli(server.url, "upload", *map(str, paths), *threshold, state=tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    ids = [line.split("\t")[0] for line in result.stdout.splitlines() if "\t" in line]
    assert len(ids) == len(NAMES)
    for file_id, path in zip(ids, paths, strict=True):
        stored = _resource(server, file_id)
        # tus carries the name base64-encoded in Upload-Metadata: exact, CR/LF and all.
        assert stored["original_filename"] == (path.name if tus else browser_name(path.name))
        assert stored["sha256"] == sha256(path)
