"""The command-line client against ``python server.py`` in a subprocess, as people use it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.media_support import camera_jpeg, ffmpeg
from tests.mounts import tmpfs
from tests.serverproc import ROOT, ServerProcess, free_port, running_server, terminate
from tests.tokens import TOKENS, WRONG_TOKEN, bearer, tokens_toml
from tornado_files.client.state import ResumeState

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


def cli(server_url: str, *args: str, state: Path | None = None, timeout: float = 120,
        env: dict[str, str] | None = None, cwd: Path | None = None, text: bool = True
        ) -> subprocess.CompletedProcess[Any]:
    """``tornado-files ARGS`` with ``TORNADO_FILES_URL`` set, ``TORNADO_FILES_TOKEN`` only if
    ``env`` sets it (whatever the calling shell has), and ``--state`` after an upload's; run
    in ``cwd`` if given (this checkout stays importable: it is put on ``PYTHONPATH``)."""
    extra = ["--state", str(state)] if state is not None and args[0] == "upload" else []
    inherited = {k: v for k, v in os.environ.items() if k != "TORNADO_FILES_TOKEN"}
    full_env = {**inherited, "TORNADO_FILES_URL": server_url, **(env or {})}
    if cwd is not None:
        full_env["PYTHONPATH"] = cli_env(server_url)["PYTHONPATH"]
    return subprocess.run([sys.executable, "-m", "tornado_files", *args, *extra],
                          capture_output=True, text=text, timeout=timeout, env=full_env,
                          check=False, cwd=cwd)


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


def test_parallel_uploads_share_one_state_file(server, tmp_path):
    """Twelve runs at once, one --state (as with the default one), six tus uploads each: all
    succeed, every file arrives, and the state ends empty (no run lost another's update or
    tripped over its temporary file)."""
    state = tmp_path / "cache" / "uploads.json"
    runs, paths = [], []
    for run in range(12):
        files = []
        for index in range(6):
            path = tmp_path / f"par-{run}-{index}.bin"
            path.write_bytes(os.urandom(5_000 + run * 10 + index))
            files.append(str(path))
        paths += files
        runs.append(subprocess.Popen(
            [sys.executable, "-m", "tornado_files", "upload", *files, "--tus-threshold", "1KiB",
             "--chunk-size", "8KiB", "--state", str(state)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(server.url),
            cwd=tmp_path))
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0] * 12, [err for _, err in outputs]
    uploaded = dict(line.split("\t")[::2] for out, _ in outputs for line in out.splitlines())
    assert sorted(uploaded.values()) == sorted(paths)
    for file_id, path in uploaded.items():
        assert _resource(server, file_id)["sha256"] == sha256(Path(path))
    assert json.loads(state.read_text()) == {}
    assert sorted(p.name for p in state.parent.iterdir()) == ["uploads.json", "uploads.json.lock"]


def test_download_never_touches_an_existing_file(server, tmp_path):
    """A local file of the same name is not ours to resume (a shorter file is not provably a
    prefix of this one) nor to overwrite: one line, exit 1, the file left byte for byte."""
    source = tmp_path / "src.bin"
    source.write_bytes(os.urandom(3 * MIB))
    file_id = cli(server.url, "upload", str(source)).stdout.split("\t")[0]
    mine = tmp_path / "notes.bin"
    mine.write_bytes(b"the user's own notes\n" * 1000)
    before = mine.read_bytes()
    result = cli(server.url, "download", file_id, "-o", str(mine))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"tornado-files download: error: {mine} already exists; remove it or choose "
        "another name with -o")
    assert mine.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.bin", "src.bin"]


def cli_env(server_url: str) -> dict[str, str]:
    """The environment of ``cli``, for a CLI run elsewhere than this checkout."""
    inherited = {k: v for k, v in os.environ.items() if k != "TORNADO_FILES_TOKEN"}
    path = os.pathsep.join(filter(None, [str(ROOT), inherited.get("PYTHONPATH")]))
    return {**inherited, "TORNADO_FILES_URL": server_url, "PYTHONPATH": path}


def upload_one(server: ServerProcess, path: Path, content: bytes) -> str:
    path.write_bytes(content)
    result = cli(server.url, "upload", str(path))
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\t")[0]


def test_a_missing_folder_is_a_local_error_that_names_the_path(server, tmp_path):
    """Not "server unreachable": exit 4, the path named, nothing asked of the server's
    content."""
    file_id = upload_one(server, tmp_path / "src.bin", os.urandom(1000))
    target = tmp_path / "nodir" / "x.bin"
    before = server.log().count("/content")
    result = cli(server.url, "download", file_id, "-o", str(target))
    assert (result.returncode, result.stdout) == (4, ""), result.stderr
    assert result.stderr == (f"tornado-files download: error: cannot write {target}: the "
                             f"folder {target.parent} does not exist\n")
    assert server.log().count("/content") == before
    afile = tmp_path / "src.bin"
    result = cli(server.url, "download", file_id, "-o", str(afile / "x.bin"))
    assert result.returncode == 4, result.stderr
    assert result.stderr == (f"tornado-files download: error: cannot write {afile}/x.bin: "
                             f"{afile} is not a folder\n")


def test_a_full_disk_is_a_local_error_and_the_download_resumes_later(server, tmp_path):
    content = os.urandom(3 * MIB)
    file_id = upload_one(server, tmp_path / "src.bin", content)
    with tmpfs(tmp_path / "small", "1m") as small:
        target = small / "copy.bin"
        part = small / f"copy.bin.{hashlib.sha256(content).hexdigest()[:16]}.part"
        result = cli(server.url, "download", file_id, "-o", str(target))
        assert (result.returncode, result.stdout) == (4, ""), result.stderr
        assert result.stderr == (f"tornado-files download: error: cannot write {part}: No "
                                 "space left on device\n")
        assert not target.exists()
        kept = part.read_bytes()
        assert 0 < len(kept) < len(content)
        assert content.startswith(kept)
        moved = tmp_path / "copy.bin"
        (tmp_path / part.name).write_bytes(kept)  # room elsewhere: the part file goes along
        result = cli(server.url, "download", file_id, "-o", str(moved))
        assert result.returncode == 0, result.stderr
        assert moved.read_bytes() == content


def test_an_unusable_state_file_is_a_local_error(server, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(5000))
    state = tmp_path / "plain-file"
    state.write_text("not a folder")
    result = cli(server.url, "upload", str(path), "--tus-threshold", "1KiB",
                 state=state / "uploads.json")
    assert (result.returncode, result.stdout) == (4, ""), result.stderr
    assert result.stderr == (f"tornado-files upload: error: cannot read {state}/uploads.json: "
                             "Not a directory\n")


def test_output_dash_writes_the_content_to_stdout(server, tmp_path):
    content = os.urandom(2 * MIB + 3)
    file_id = upload_one(server, tmp_path / "src.bin", content)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = subprocess.run([sys.executable, "-m", "tornado_files", "download", file_id, "-o",
                             "-"], capture_output=True, timeout=60, env=cli_env(server.url),
                            cwd=cwd, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == content
    digest = hashlib.sha256(content).hexdigest()
    assert result.stderr.decode().splitlines()[-1] == \
        f"-\t{len(content)} bytes\tsha256 {digest} verified"
    assert list(cwd.iterdir()) == []


def test_a_closed_stdout_ends_the_download_quietly(server, tmp_path):
    """``download ID -o - | head -c 100``: the reader goes away; no traceback, no message,
    exit 141 (128 + SIGPIPE, as cat ends)."""
    file_id = upload_one(server, tmp_path / "src.bin", os.urandom(16 * MIB))
    with subprocess.Popen([sys.executable, "-m", "tornado_files", "download", file_id, "-o",
                           "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=cli_env(server.url), cwd=tmp_path) as reader:
        assert reader.stdout is not None
        assert reader.stderr is not None
        assert len(reader.stdout.read(100)) == 100
        reader.stdout.close()
        err = reader.stderr.read()
        assert reader.wait(timeout=60) == 141
    assert err == b""


def test_ls_into_a_closed_pipe_is_quiet_and_a_full_stdout_is_a_local_error(server, tmp_path):
    upload_one(server, tmp_path / "listed.bin", b"x")
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", "tornado_files", "ls", "--json"],
                                stdout=full, stderr=subprocess.PIPE, timeout=60,
                                env=cli_env(server.url), cwd=tmp_path, check=False)
    assert result.returncode == 4
    assert result.stderr.decode() == \
        "tornado-files ls: error: cannot write to stdout: No space left on device\n"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    result = subprocess.run([sys.executable, "-m", "tornado_files", "ls"], stdout=write_end,
                            stderr=subprocess.PIPE, timeout=60, env=cli_env(server.url),
                            cwd=tmp_path, check=False)
    os.close(write_end)
    assert (result.returncode, result.stderr) == (141, b"")


def test_a_download_without_o_never_makes_a_dotfile(server, tmp_path):
    """The uploader chooses the name on the server; saved without -o it is made safe as
    browsers make it: leading dots and spaces go (no ``.bash_profile`` or ``.ssh`` appears in
    the user's directory), nothing is left empty. -o is taken as given."""
    names = {".bash_profile": "bash_profile", " .ssh": "ssh", "...": "download",
             "plain.txt": "plain.txt"}
    ids = {}
    for index, name in enumerate(names):
        folder = tmp_path / f"src{index}"
        folder.mkdir()
        (folder / name).write_text(f"export EVIL={index}\n")
        result = cli(server.url, "upload", str(folder / name))
        assert result.returncode == 0, result.stderr
        ids[name] = result.stdout.split("\t")[0]
    home = tmp_path / "home"
    home.mkdir()
    for name, saved in names.items():
        result = cli(server.url, "download", ids[name], cwd=home)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\t")[0] == saved
    assert sorted(p.name for p in home.iterdir()) == sorted(names.values())
    explicit = cli(server.url, "download", ids[".bash_profile"], "-o", ".bash_profile",
                   cwd=home)
    assert explicit.returncode == 0, explicit.stderr
    assert (home / ".bash_profile").read_text() == "export EVIL=0\n"


@pytest.mark.parametrize("leftover", [None, b"x" * 5000], ids=["empty", "overlong-part"])
def test_download_of_an_empty_file_and_an_overlong_part_file(server, tmp_path, leftover):
    """An empty file downloads as one; a part file longer than the file (not a prefix of it,
    whoever wrote it) is started over, not trusted."""
    source = tmp_path / "src.bin"
    source.write_bytes(b"" if leftover is None else os.urandom(1000))
    file_id = cli(server.url, "upload", str(source)).stdout.split("\t")[0]
    target = tmp_path / "out.bin"
    if leftover is not None:
        part_file = tmp_path / f"out.bin.{sha256(source)[:16]}.part"
        part_file.write_bytes(leftover)
    result = cli(server.url, "download", file_id, "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "src.bin"]


def test_an_interrupted_download_is_resumed(server, tmp_path):
    """The first run gets 1 MiB of the answer, then nothing (a loopback proxy holds the
    rest) and is interrupted; its bytes wait in a part file named after the content's sha256.
    The second run asks only for the rest (Range + If-Range), checks the sha256 and renames."""
    content = os.urandom(5 * MIB + 1)
    source = tmp_path / "src.bin"
    source.write_bytes(content)
    file_id = cli(server.url, "upload", str(source)).stdout.split("\t")[0]
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    proxy = StallingProxy(server.port, stall=b"\0", hold_answer=b"GET /api/files/" +
                          file_id.encode() + b"/content", answer_bytes=MIB)
    env = {**os.environ, "TORNADO_FILES_URL": f"http://127.0.0.1:{proxy.port}"}
    try:
        # Ctrl-C as a terminal delivers it: a run started in the background (CI from a
        # non-interactive shell) has SIGINT ignored, and the child would inherit that.
        first = subprocess.Popen(
            [sys.executable, "-m", "tornado_files", "download", file_id, "-o", str(target)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        part = target.parent / f"copy.bin.{sha256(source)[:16]}.part"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (part.exists() and part.stat().st_size):
            time.sleep(0.05)
        time.sleep(0.5)
        first.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = first.communicate(timeout=30)
    finally:
        proxy.close()
    assert first.returncode == 130, err
    assert not target.exists()
    assert 0 < part.stat().st_size < len(content)
    assert content.startswith(part.read_bytes())
    before = server.log().count(" 206 GET ")
    result = cli(server.url, "download", file_id, "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == content
    assert not part.exists()
    assert server.log().count(" 206 GET ") == before + 1  # the rest, not a re-fetch


def test_ls_sorts_by_size_descending(server, tmp_path):
    paths = []
    for name, size in (("sort-small.bin", 10), ("sort-big.bin", 3000), ("sort-mid.bin", 200)):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(os.urandom(size))
    assert cli(server.url, "upload", *map(str, paths)).returncode == 0
    result = cli(server.url, "ls", "--filename", "sort-", "--sort", "-size")
    assert result.returncode == 0, result.stderr
    names = [line.split("\t")[-1] for line in result.stdout.splitlines()]
    assert names == ["sort-big.bin", "sort-mid.bin", "sort-small.bin"]


def test_a_zero_chunk_size_is_bad_usage_not_an_endless_upload(server, tmp_path):
    """--chunk-size 0 used to send empty PATCHes for ever: now exit 2 before any request."""
    path = tmp_path / "zero.bin"
    path.write_bytes(os.urandom(5000))
    before = server.log().count("POST /api/tus/")
    result = cli(server.url, "upload", str(path), "--tus-threshold", "1KiB", "--chunk-size",
                 "0", state=tmp_path / "s.json", timeout=30)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr == ("tornado-files upload: error: --chunk-size: must be more than 0 "
                             "bytes (a size like 8MiB)\n")
    assert server.log().count("POST /api/tus/") == before


def test_ls_size_filters_take_units(server, tmp_path):
    for name, size in (("units-small.bin", 1000), ("units-big.bin", 3000)):
        (tmp_path / name).write_bytes(os.urandom(size))
        assert cli(server.url, "upload", str(tmp_path / name)).returncode == 0
    result = cli(server.url, "ls", "--filename", "units-", "--size-greater-than", "2KiB")
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[-1] for line in result.stdout.splitlines()] == ["units-big.bin"]


def test_ls_long_shows_media_facts_and_the_processing_state(server, tmp_path):
    """A photo, a song, a three-page PDF, a truncated JPEG and a text file, listed with
    --long once the server's media jobs have ended (pending until then)."""
    camera_jpeg(tmp_path / "long-photo.jpg")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "libmp3lame",
           str(tmp_path / "long-song.mp3"))
    pages = [Image.new("RGB", (300, 400), colour) for colour in ("red", "green", "blue")]
    pages[0].save(tmp_path / "long-doc.pdf", save_all=True, append_images=pages[1:])
    whole = (tmp_path / "long-photo.jpg").read_bytes()
    (tmp_path / "long-broken.jpg").write_bytes(whole[: len(whole) // 3])
    (tmp_path / "long-note.txt").write_text("no media here\n")
    names = ["long-photo.jpg", "long-song.mp3", "long-doc.pdf", "long-broken.jpg",
             "long-note.txt"]
    result = cli(server.url, "upload", *(str(tmp_path / name) for name in names))
    assert result.returncode == 0, result.stderr
    columns: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while True:
        listing = cli(server.url, "ls", "--filename", "long-", "--long")
        assert listing.returncode == 0, listing.stderr
        rows = [line.split("\t") for line in listing.stdout.splitlines()]
        assert all(len(row) == 6 for row in rows), rows
        columns = {row[5]: row[4] for row in rows}
        if "pending" not in " ".join(columns.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert columns == {"long-photo.jpg": "1600×1200", "long-song.mp3": "2.0s",
                       "long-doc.pdf": "3 pages", "long-broken.jpg": "1600×1200 failed",
                       "long-note.txt": "-"}
    short = cli(server.url, "ls", "--filename", "long-")
    assert {len(line.split("\t")) for line in short.stdout.splitlines()} == {5}


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


def test_a_full_server_disk_is_said_at_once_not_retried(tmp_path):
    """The server's disk passes its free-space floor mid-PATCH (507): that is no passing
    trouble, so the upload stops at once with the reason (exit 1), keeping its state for a
    later run, instead of minutes of back-off."""
    with tmpfs(tmp_path / "small", "48m") as small, \
            running_server(small, config='min_free_space = "8MiB"\n') as full:
        filler = small / "filler"
        stat = os.statvfs(small)
        filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 14 * MIB))
        path = tmp_path / "big.bin"
        path.write_bytes(os.urandom(12 * MIB))
        state = tmp_path / "s.json"
        started = time.monotonic()
        result = cli(full.url, "upload", str(path), "--tus-threshold", "1MiB",
                     "--chunk-size", "12MiB", state=state, timeout=60)
        took = time.monotonic() - started
        log = full.log()
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "tornado-files upload: error: the server is out of space: try again once room has "
        "been freed")
    assert took < 20
    assert log.count(" 507 PATCH /api/tus/") == 1
    assert " HEAD /api/tus/" not in log
    assert len(json.loads(state.read_text())) == 1  # run it again later: it continues


def test_unreachable_server(tmp_path):
    port = free_port()
    result = cli(f"http://127.0.0.1:{port}", "ls")
    assert result.returncode == 3
    assert result.stderr.strip() == \
        f"tornado-files ls: error: cannot reach http://127.0.0.1:{port}: connection refused"


NAMES = ["résumé.pdf", 'say "hi".txt', "東京レポート.txt", "📦 box.bin", "two\nlines\r.txt"]


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
        # tus carries the name base64-encoded in Upload-Metadata; multipart as browsers write it
        # (WHATWG: only '"', CR and LF percent-encoded), which the server decodes: both exact.
        assert stored["original_filename"] == path.name
        assert stored["sha256"] == sha256(path)


@pytest.mark.parametrize("tus", [False, True], ids=["multipart", "tus"])
def test_data_keeps_its_types_and_never_moves_the_upload(server, tmp_path, tus):
    """``--data`` is stored as given, over tus as over multipart: numbers stay numbers, and
    its ``route``, ``filename`` and ``filetype`` keys stay in data (the file still goes to
    --route under its own name)."""
    data = {"route": "/api/images", "filename": ".bashrc", "filetype": "image/png",
            "count": 3, "ratio": 0.25, "ok": True, "none": None, "tags": ["a", 1],
            "nested": {"k": [False]}}
    path = tmp_path / "typed.bin"
    path.write_bytes(os.urandom(4000))
    threshold = ["--tus-threshold", "1KiB"] if tus else []
    result = cli(server.url, "upload", str(path), "--route", "/api/small", "--data",
                 json.dumps(data), *threshold, state=tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    stored = _resource(server, result.stdout.split("\t")[0])
    assert stored["data"] == data
    assert (stored["route"], stored["filename"]) == ("/api/small", "typed.bin")
    assert stored["declared_type"] == "application/octet-stream"
    assert (" 204 PATCH /api/tus/" in server.log()) or not tus


class StallingProxy:
    """A loopback TCP proxy in front of the server (the CLI opens one connection per
    request). The first request that starts with ``stall`` stops after ``forward`` bytes:
    the rest is read from the client and dropped, so the server sees a body that stops
    arriving, while its answer still reaches the client. The first request that starts with
    ``busy`` is answered 503 by the proxy itself, as a load balancer in front would. All
    other requests pass straight through."""

    BUSY = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"

    def __init__(self, target_port: int, stall: bytes, busy: bytes | None = None,
                 forward: int = 64 * 1024, hold_answer: bytes | None = None,
                 answer_bytes: int = 0) -> None:
        self.target_port = target_port
        self.stall, self.busy, self.forward = stall, busy, forward
        # The first request that starts with ``hold_answer`` gets ``answer_bytes`` of its
        # answer, then nothing more until the proxy closes (a download that stops arriving).
        self.hold_answer, self.answer_bytes = hold_answer, answer_bytes
        self.requests: list[bytes] = []  # request lines, in order of arrival
        self.stalled = self.refused = self.held = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept)]
        self._threads[0].start()

    def close(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=10)
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(client,))
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        with closing(client):
            first = _recv(client)
            self.requests.append(first.split(b"\r\n", 1)[0])
            if self.busy is not None and first.startswith(self.busy) and not self.refused:
                self.refused += 1
                client.sendall(self.BUSY)
                client.shutdown(socket.SHUT_WR)
                while _recv(client):
                    pass
                return
            limit = answer_limit = None
            if first.startswith(self.stall) and not self.stalled:
                self.stalled += 1
                limit = self.forward
            if self.hold_answer is not None and first.startswith(self.hold_answer) \
                    and not self.held:
                self.held += 1
                answer_limit = self.answer_bytes
            self._forward(client, first, limit, answer_limit)

    def _forward(self, client: socket.socket, first: bytes, limit: int | None,
                 answer_limit: int | None = None) -> None:
        with closing(socket.create_connection(("127.0.0.1", self.target_port))) as upstream:
            answer = threading.Thread(target=self._answer,
                                      args=(upstream, client, answer_limit))
            answer.start()
            sent, chunk = 0, first
            while chunk:
                keep = chunk if limit is None else chunk[: max(0, limit - sent)]
                sent += len(keep)
                with suppress(OSError):  # the server may have dropped this request
                    upstream.sendall(keep)
                chunk = _recv(client)
            with suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
            answer.join()

    def _answer(self, upstream: socket.socket, client: socket.socket,
                limit: int | None = None) -> None:
        sent = 0
        while chunk := _recv(upstream):
            if limit is not None and sent + len(chunk) >= limit:
                with suppress(OSError):
                    client.sendall(chunk[: limit - sent])
                self._stop.wait()  # hold: the client waits for bytes that never come
                return
            sent += len(chunk)
            client.sendall(chunk)
        with suppress(OSError):
            client.shutdown(socket.SHUT_WR)  # the client reads the answer, then closes


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(256 * 1024)
    except OSError:
        return b""


def test_a_post_dropped_as_idle_is_sent_again(tmp_path):
    with running_server(tmp_path, config="idle_timeout = 2.0\n") as idle_server:
        proxy = StallingProxy(idle_server.port, stall=b"POST ")
        try:
            path = tmp_path / "stalled.bin"
            path.write_bytes(os.urandom(3 * MIB))
            started = time.monotonic()
            result = cli(f"http://127.0.0.1:{proxy.port}", "upload", str(path))
        finally:
            proxy.close()
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 30
        assert proxy.stalled == 1
        assert len(proxy.requests) == 2, "the stalled POST was answered 408, then sent again"
        log = idle_server.log()
        assert log.count(" 408 POST /api/files") == 1
        assert log.count(" 201 POST /api/files") == 1
        with urllib.request.urlopen(idle_server.url + "/api/files") as response:  # noqa: S310
            files = json.load(response)["files"]
        assert [f["sha256"] for f in files] == [sha256(path)], "stored once, complete"
        assert result.stdout.split("\t")[0] == files[0]["id"]


def test_a_tus_patch_dropped_as_idle_is_resumed(tmp_path):
    """The server drops a PATCH whose body stalls (503 with Retry-After, 408 before that
    change) and keeps what reached storage; the first HEAD after it meets a 503 from the
    proxy. The CLI waits, asks again, and resumes from the server's offset."""
    with running_server(tmp_path, config="idle_timeout = 2.0\n") as idle_server:
        proxy = StallingProxy(idle_server.port, stall=b"PATCH ", busy=b"HEAD ")
        try:
            path = tmp_path / "stalled.bin"
            path.write_bytes(os.urandom(3 * MIB + 7))
            state = tmp_path / "state.json"
            result = cli(f"http://127.0.0.1:{proxy.port}", "upload", str(path),
                         "--tus-threshold", "1MiB", "--chunk-size", "1MiB", state=state)
        finally:
            proxy.close()
        assert result.returncode == 0, result.stderr
        assert (proxy.stalled, proxy.refused) == (1, 1)
        methods = [line.split(b" ")[0] for line in proxy.requests]
        assert methods[:4] == [b"POST", b"PATCH", b"HEAD", b"HEAD"]
        log = idle_server.log()
        assert log.count("201 POST /api/tus/") == 1, "the upload was resumed, not begun again"
        assert "200 HEAD /api/tus/" in log
        with urllib.request.urlopen(idle_server.url + "/api/files") as response:  # noqa: S310
            files = json.load(response)["files"]
        assert [f["sha256"] for f in files] == [sha256(path)]
        assert json.loads(state.read_text()) == {}


def start_server(tmp_path: Path, port: int, name: str) -> ServerProcess:
    """``python server.py`` on a given port and data directory (a restart reuses both), with
    the shortest lease a PATCH cut short can leave behind (60 s, not twice the default
    idle_timeout)."""
    log_path = tmp_path / f"{name}.log"
    config = tmp_path / "config.toml"
    config.write_text("idle_timeout = 5.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "server.py", "--port", str(port), "--data-dir",
             str(tmp_path / "data"), "--config", str(config)], stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2], env=env)
    server = ServerProcess(process, port, tmp_path / "data", log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, server.log()
        with suppress(OSError), urllib.request.urlopen(  # noqa: S310 (our loopback server)
                server.url + "/healthz", timeout=2) as response:
            if json.load(response)["status"] == "ok":
                return server
        time.sleep(0.1)
    terminate(process)
    raise AssertionError(f"server did not start: {server.log()}")


def tus_offset(server_url: str, location: str) -> int:
    request = urllib.request.Request(  # noqa: S310 (our own 127.0.0.1 server)
        server_url + location, method="HEAD", headers={"Tus-Resumable": "1.0.0"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return int(response.headers["Upload-Offset"])


def test_upload_rides_out_a_server_restart(tmp_path):
    """The server is stopped (SIGTERM) mid-upload and started again on the same port and data
    directory two seconds later: the CLI's PATCH fails, its HEADs meet a refused connection
    (retried with back-off like a PATCH), and the upload finishes where the server left off."""
    port = free_port()
    server = start_server(tmp_path, port, "first")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(96 * MIB))
    state = tmp_path / "state.json"
    env = {**os.environ, "TORNADO_FILES_URL": server.url}
    client = subprocess.Popen(
        [sys.executable, "-m", "tornado_files", "upload", str(big), "--tus-threshold", "1MiB",
         "--chunk-size", "1MiB", "--state", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        offset, deadline = 0, time.monotonic() + 60
        while offset < 8 * MIB and time.monotonic() < deadline:
            if state.exists() and (entries := json.loads(state.read_text() or "{}")):
                offset = tus_offset(server.url, next(iter(entries.values())))
            time.sleep(0.02)
        terminate(server.process)
        assert client.poll() is None, "the client must still be uploading at the restart"
        time.sleep(2)
        server = start_server(tmp_path, port, "second")
        out, err = client.communicate(timeout=180)
        assert client.returncode == 0, err + server.log()
        file_id = out.split("\t")[0]
        assert offset < 96 * MIB, "the restart must land mid-file"
        with urllib.request.urlopen(  # noqa: S310 (our own 127.0.0.1 server)
                f"{server.url}/api/files/{file_id}") as response:
            assert json.load(response)["sha256"] == sha256(big)
        assert "201 POST /api/tus/" not in server.log(), "resumed, not begun again"
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        terminate(server.process)


# -- access control: --token / TORNADO_FILES_TOKEN on every command, and shareable links ------

@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """A server that requires tokens (tests/tokens.py): alice and bob read, write and delete,
    reader only reads."""
    with running_server(tmp_path_factory.mktemp("cli-auth"), config=tokens_toml()) as running:
        yield running


def record(server: ServerProcess, file_id: str, who: str = "alice") -> tuple[int, dict]:
    """(status, record) of ``GET /api/files/{id}`` as ``who``."""
    request = urllib.request.Request(f"{server.url}/api/files/{file_id}",  # noqa: S310
                                     headers=bearer(who))
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310 (our loopback server)
            return response.status, dict(json.load(response))
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Real curl, no credentials; ``-w`` output (the status) ends stdout after a newline."""
    return subprocess.run(["curl", "-sS", *args, "-w", "\n%{http_code}"],
                          capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("how", ["option", "environment"])
def test_every_command_sends_the_token(auth_server, tmp_path, how):
    """upload (multipart and tus), ls, download and rm, with --token or $TORNADO_FILES_TOKEN:
    each request carries it, and the files belong to its principal."""
    token = TOKENS["alice"][0]
    option = ["--token", token] if how == "option" else []
    env = {"TORNADO_FILES_TOKEN": token} if how == "environment" else {}
    small = tmp_path / f"{how}-note.txt"
    small.write_text("hello\n")
    big = tmp_path / f"{how}-big.bin"
    big.write_bytes(os.urandom(300_001))
    uploaded = cli(auth_server.url, "upload", str(small), str(big), *option,
                   "--tus-threshold", "100KiB", "--chunk-size", "64KiB",
                   state=tmp_path / "s.json", env=env)
    assert uploaded.returncode == 0, uploaded.stderr
    ids = [line.split("\t")[0] for line in uploaded.stdout.splitlines()]
    assert len(ids) == 2
    assert auth_server.log().count("PATCH /api/tus/") >= 5  # the big one went over tus
    for file_id in ids:
        assert record(auth_server, file_id)[1]["owner"] == "alice"
    listed = cli(auth_server.url, "ls", "--filename", f"{how}-", "--sort", "filename",
                 *option, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ids[::-1]
    out = tmp_path / "back.bin"
    fetched = cli(auth_server.url, "download", ids[1], "-o", str(out), *option, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert out.read_bytes() == big.read_bytes()
    removed = cli(auth_server.url, "rm", *ids, *option, env=env)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.splitlines() == [f"deleted {file_id}" for file_id in ids]
    assert [record(auth_server, file_id)[0] for file_id in ids] == [404, 404]


NEEDS_TOKEN = "this server needs a token: give --token or set TORNADO_FILES_TOKEN"
NOT_ACCEPTED = "the token was not accepted (it is wrong or has expired)"


def test_a_missing_or_wrong_token_is_one_clear_line(auth_server, tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(5000))
    file_id = cli(auth_server.url, "upload", str(path), "--token",
                  TOKENS["alice"][0]).stdout.split("\t")[0]
    before = files_of(auth_server)
    wrong = {"TORNADO_FILES_TOKEN": WRONG_TOKEN}
    cases = [
        (["ls"], {}, NEEDS_TOKEN),
        (["ls", "--token", WRONG_TOKEN], {}, NOT_ACCEPTED),
        (["upload", str(path)], wrong, NOT_ACCEPTED),
        (["upload", str(path), "--tus-threshold", "1KiB"], wrong, NOT_ACCEPTED),
        (["download", file_id, "-o", str(tmp_path / "x")], wrong, NOT_ACCEPTED),
        (["rm", file_id], {}, NEEDS_TOKEN),
        (["link", file_id], wrong, NOT_ACCEPTED),
        (["upload", str(path), "--token", TOKENS["reader"][0]], {},
         "not allowed: the token lacks the 'write' scope"),
        (["rm", file_id, "--token", TOKENS["bob"][0]], {},
         "not allowed: only the file's owner (or an admin) may do this"),
    ]
    for args, env, message in cases:
        result = cli(auth_server.url, *args, env=env, state=tmp_path / "s.json")
        assert (result.returncode, result.stderr.strip().splitlines()[-1]) == \
            (1, f"tornado-files {args[0]}: error: {message}"), args
    assert not (tmp_path / "x").exists()
    assert record(auth_server, file_id)[0] == 200, "still there after the refused rm"
    assert files_of(auth_server) == before, "nothing was uploaded by the refused ones"


def test_a_token_from_a_windows_file_works_and_is_never_echoed(auth_server, tmp_path):
    """``TORNADO_FILES_TOKEN="$(cat token.txt)"`` keeps a CR from a Windows file: the CLI
    printed ``Invalid header value b'Bearer <the token>\\r'`` (the secret in a terminal or a CI
    log). The line end is dropped; a control character inside is one line without it."""
    token = TOKENS["alice"][0]
    listed = cli(auth_server.url, "ls", env={"TORNADO_FILES_TOKEN": token + "\r"})
    assert listed.returncode == 0, listed.stderr
    broken = cli(auth_server.url, "ls", env={"TORNADO_FILES_TOKEN": token[:5] + "\x07" + token})
    assert broken.returncode == 2
    assert token not in broken.stderr + broken.stdout
    assert len(broken.stderr.strip().splitlines()) == 1


def files_of(server: ServerProcess) -> list[str]:
    request = urllib.request.Request(server.url + "/api/files?limit=1000",  # noqa: S310
                                     headers=bearer("alice"))
    with urllib.request.urlopen(request) as response:  # noqa: S310 (our loopback server)
        return [item["id"] for item in json.load(response)["files"]]


def test_link_prints_a_url_curl_downloads_without_credentials(auth_server, tmp_path):
    content = os.urandom(100_000)
    path = tmp_path / "shared.bin"
    path.write_bytes(content)
    token = ["--token", TOKENS["alice"][0]]
    file_id = cli(auth_server.url, "upload", str(path), *token).stdout.split("\t")[0]
    made = cli(auth_server.url, "link", file_id, "--expires", "15m", *token)
    assert made.returncode == 0, made.stderr
    (url,) = made.stdout.splitlines()
    assert url.startswith(f"{auth_server.url}/api/files/{file_id}/content?")
    assert "shared.bin: the link works until " in made.stderr
    whole = curl("-o", str(tmp_path / "whole.bin"), url)
    assert whole.stdout.splitlines()[-1] == b"200", whole.stderr
    assert (tmp_path / "whole.bin").read_bytes() == content
    ranged = curl("-r", "1000-1999", url)
    body, status = ranged.stdout.rsplit(b"\n", 1)
    assert (status, body) == (b"206", content[1000:2000])
    headers = curl("-I", url).stdout.decode().lower()
    assert 'content-disposition: attachment; filename="shared.bin"' in headers
    # Without the signature the same path needs a token; an altered signature is refused.
    plain = curl(url.split("?")[0]).stdout.decode()
    assert plain.endswith("401")
    assert '"unauthorized"' in plain
    tampered = curl(url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")).stdout.decode()
    assert tampered.endswith("403")
    assert '"invalid_signature"' in tampered


def test_link_inline_and_expiry(auth_server, tmp_path):
    path = tmp_path / "note.txt"
    path.write_text("shown in the browser\n")
    token = ["--token", TOKENS["alice"][0]]
    file_id = cli(auth_server.url, "upload", str(path), *token).stdout.split("\t")[0]
    inline = cli(auth_server.url, "link", file_id, "--inline", *token).stdout.strip()
    headers = curl("-I", inline).stdout.decode().lower()
    assert "content-disposition: inline" in headers
    short = cli(auth_server.url, "link", file_id, "--expires", "1s", *token).stdout.strip()
    time.sleep(2.1)  # the expiry is rounded up to the second
    expired = curl(short).stdout.decode()
    assert expired.endswith("403")
    error = json.loads(expired.rsplit("\n", 1)[0])["errors"][0]
    assert (error["code"], error["meta"]["expired"]) == ("invalid_signature", True)


def test_link_refusals_are_one_clear_line(auth_server, server, tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("x")
    token = ["--token", TOKENS["alice"][0]]
    file_id = cli(auth_server.url, "upload", str(path), *token).stdout.split("\t")[0]
    open_id = cli(server.url, "upload", str(path)).stdout.split("\t")[0]
    cases = [
        (auth_server, [file_id, "--expires", "30d", *token], 1,
         "--expires 30d is longer than this server allows (at most 7d)"),
        (auth_server, [file_id, "--expires", "1.5h", *token], 2,
         "--expires: '1.5h' is not a duration: use a whole number and s, m, h or d, like 90s, "
         "15m, 1h, 7d"),
        (auth_server, ["0" * 32, *token], 1, "not found"),
        (auth_server, [file_id], 1, NEEDS_TOKEN),
        (server, [open_id], 1, "this server does not make signed links (it has no signing_key)"),
    ]
    for where, args, status, message in cases:
        result = cli(where.url, "link", *args)
        assert (result.returncode, result.stderr.strip(), result.stdout) == \
            (status, f"tornado-files link: error: {message}", ""), args


def test_an_upload_remembered_under_another_token_is_begun_anew(auth_server, tmp_path):
    """The state file names an unfinished tus upload for this very file, but it is bob's
    (begun with his token): alice's run leaves it alone and uploads the file as a new one; a
    run with a wrong token is told so (by the HEAD that asks for the offset)."""
    path = tmp_path / "shared-machine.bin"
    path.write_bytes(os.urandom(200_000))
    request = urllib.request.Request(  # noqa: S310 (our own 127.0.0.1 server)
        auth_server.url + "/api/tus/", data=b"", method="POST",
        headers={**bearer("bob"), "Tus-Resumable": "1.0.0", "Upload-Length": "200000"})
    with urllib.request.urlopen(request) as response:  # noqa: S310
        bobs = response.headers["Location"]
    state = tmp_path / "state.json"
    key = ResumeState.fingerprint(path, auth_server.url, "/api/files")
    state.write_text(json.dumps({key: bobs}))
    wrong = cli(auth_server.url, "upload", str(path), "--tus-threshold", "100KiB",
                "--token", WRONG_TOKEN, state=state)  # its HEAD has no body to explain it
    assert (wrong.returncode, wrong.stderr.strip().splitlines()[-1]) == \
        (1, f"tornado-files upload: error: {NOT_ACCEPTED}")
    result = cli(auth_server.url, "upload", str(path), "--tus-threshold", "100KiB",
                 "--token", TOKENS["alice"][0], state=state)
    assert result.returncode == 0, result.stderr
    file_id = result.stdout.split("\t")[0]
    assert not bobs.endswith(file_id)
    assert record(auth_server, file_id)[1]["owner"] == "alice"
    assert json.loads(state.read_text()) == {}
