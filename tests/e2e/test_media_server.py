"""Media jobs in the real server process (docs/media.md): jobs left pending by one run are
finished by the next, a job that outlives job_timeout fails with its worker killed, and the
server's memory does not grow with the size of the images its workers decode."""

from __future__ import annotations

import io
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.media_support import png_declaring
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024


def upload(server: ServerProcess, path: Path, wait: int | None = None) -> dict[str, Any]:
    argv = ["curl", "-sS", "--fail-with-body", "-X", "POST", "-T", str(path),
            "-H", f"X-Filename: {path.name}",
            "-H", "Content-Type: application/octet-stream"]
    if wait is not None:
        argv += ["-H", f"Prefer: wait={wait}"]
    out = subprocess.run([*argv, server.url + "/api/files"], capture_output=True, check=True,
                         timeout=120)
    return dict(json.loads(out.stdout))


def resource(server: ServerProcess, file_id: str) -> dict[str, Any]:
    # http://127.0.0.1 only: the URL is built here.
    with urllib.request.urlopen(f"{server.url}/api/files/{file_id}", timeout=10) as answer:  # noqa: S310
        return dict(json.load(answer))


def settled(server: ServerProcess, file_id: str, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        found = resource(server, file_id)
        if found["processing"] != "pending" or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def picture(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (40, 90, 160)).save(path, "JPEG", quality=90)
    return path


def test_jobs_left_pending_are_finished_after_a_restart(tmp_path: Path):
    paths = [picture(tmp_path / f"p{i}.jpg", (300 + i, 200)) for i in range(3)]
    with running_server(tmp_path, config="[derivatives]\nworkers = 0\n") as server:
        # workers = 0: this process runs no jobs, as if it stopped before it could.
        created = [upload(server, path) for path in paths]
        assert [c["processing"] for c in created] == ["pending"] * 3
        time.sleep(1.5)
        assert all(resource(server, c["id"])["processing"] == "pending" for c in created)
    with running_server(tmp_path) as server:
        done = [settled(server, c["id"]) for c in created]
        assert [d["processing"] for d in done] == ["done"] * 3
        assert [d["metadata"]["image"]["width"] for d in done] == [300, 301, 302]


def test_a_job_that_outlives_job_timeout_fails_and_its_worker_is_killed(tmp_path: Path):
    # 400 megapixels of grey: a 1 MiB file whose decoding takes a few seconds.
    png_declaring(tmp_path / "huge.png", 20000, 20000, bit_depth=8, rows=True)
    config = ("[derivatives]\njob_timeout = 1\nmax_image_pixels = 500000000\n"
              'worker_memory = "2GiB"\n')
    with running_server(tmp_path, config=config) as server:
        created = upload(server, tmp_path / "huge.png", wait=20)
        assert created["processing"] == "failed"
        assert created["metadata"]["error"] == "Processing took longer than job_timeout (1 s)."
        time.sleep(0.5)
        assert children(server.process.pid) == []  # no worker left decoding
        small = upload(server, picture(tmp_path / "small.jpg", (64, 48)), wait=20)
        assert small["processing"] == "done"


def test_server_memory_does_not_grow_with_the_images_decoded(tmp_path: Path):
    small = picture(tmp_path / "small.jpg", (640, 480))
    big = tmp_path / "big.png"
    # 64 megapixels: about 190 MiB decoded, in the worker.
    Image.effect_noise((8000, 8000), 60).convert("RGB").save(big, "PNG", compress_level=1)
    with running_server(tmp_path) as server:
        assert upload(server, small, wait=20)["processing"] == "done"
        before = server.status("VmHWM")
        created = upload(server, big, wait=30)
        assert created["processing"] == "done", created["metadata"]
        grown = server.status("VmHWM") - before
        assert grown < 24 * MIB, f"server peak RSS grew {grown / MIB:.1f} MiB"
        workers = children(server.process.pid)
        assert workers, "the workers are the server's children"
        image = created["metadata"]["image"]
        assert (image["width"], image["height"]) == (8000, 8000)
        with urllib.request.urlopen(server.url + created["file_urls"]["thumbnail"],  # noqa: S310
                                    timeout=10) as answer:
            assert Image.open(io.BytesIO(answer.read())).size == (200, 200)


def test_sigterm_mid_job_leaves_it_for_the_next_start_at_once(tmp_path: Path):
    big = tmp_path / "noise.png"
    Image.effect_noise((6000, 6000), 60).convert("RGB").save(big, "PNG", compress_level=1)
    with running_server(tmp_path) as server:
        created = upload(server, big)
        deadline = time.monotonic() + 20
        while not children(server.process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert children(server.process.pid), "no worker started"
        server.process.terminate()
        assert server.process.wait(timeout=15) == 0
    started = time.monotonic()
    with running_server(tmp_path) as server:
        done = settled(server, created["id"])
        # Well within the 30 s lease: the stopping server gave the job back.
        assert time.monotonic() - started < 20
        assert done["processing"] == "done", done["metadata"]


def test_stopping_answers_uploads_waiting_for_their_jobs(tmp_path: Path):
    path = picture(tmp_path / "waiting.jpg", (320, 240))
    with running_server(tmp_path, config="[derivatives]\nworkers = 0\n") as server:
        # workers = 0: the job never runs here, so the upload waits its whole 20 s.
        waiting = subprocess.Popen(
            ["curl", "-sS", "-X", "POST", "-T", str(path), "-H", "X-Filename: waiting.jpg",
             "-H", "Prefer: wait=20", "-w", "\n%{http_code}", server.url + "/api/files"],
            stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        started = time.monotonic()
        server.process.terminate()
        assert server.process.wait(timeout=15) == 0
        body, _, status = waiting.communicate(timeout=15)[0].rpartition("\n")
        assert time.monotonic() - started < 5
        assert status == "201"
        assert json.loads(body)["processing"] == "pending"
        assert " ERROR " not in server.log()


def test_workers_end_with_a_killed_server(tmp_path: Path):
    big = tmp_path / "noise.png"
    Image.effect_noise((6000, 6000), 60).convert("RGB").save(big, "PNG", compress_level=1)
    with running_server(tmp_path) as server:
        upload(server, big)
        deadline = time.monotonic() + 20
        while not children(server.process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = children(server.process.pid)
        assert workers
        server.process.kill()
        server.process.wait(timeout=10)
        time.sleep(1)
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
                 and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()]
        assert alive == [], [Path(f"/proc/{pid}/status").read_text()[:400] for pid in alive]
