"""The real worker process over its protocol: one JSON line in, one out, in order; failures
(bad lines, decode errors, MemoryError under RLIMIT_AS, unexpected exceptions) are answers
and the worker goes on; stdout carries nothing but the answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.media_support import png_declaring, request

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024**3
# Runs the worker with ``process`` wrapped: it prints, writes to fd 1 and, for a source
# named "explode.png", raises; everything else goes to the real process().
NOISY = """
import os, sys
import tornado_files.media.worker as worker
real = worker.process
def noisy(request):
    print("library noise on stdout")
    os.write(1, b"raw noise on fd 1\\n")
    if str(request.get("source", "")).endswith("explode.png"):
        raise RuntimeError("an unexpected bug")
    return real(request)
worker.process = noisy
sys.exit(worker.main(sys.argv[1:]))
"""


def start(*, memory: int = 2 * GIB, noisy: bool = False) -> subprocess.Popen[bytes]:
    head = ["-c", NOISY] if noisy else ["-m", "tornado_files.media.worker"]
    return subprocess.Popen(
        [sys.executable, *head, "--memory-bytes", str(memory), "--cpu-seconds", "60"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def talk(worker: subprocess.Popen[bytes], lines: list[str]) -> tuple[list[dict], str, int]:
    """Sends the lines (a lone surrogate is sent as the byte it escapes), closes stdin,
    returns (answers, stderr, exit status)."""
    sent = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
    out, err = worker.communicate(sent, timeout=60)
    answers = [json.loads(line) for line in out.decode("utf-8").splitlines()]
    return answers, err.decode("utf-8", "replace"), worker.returncode


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (120, 80), (0, 90, 200)).save(path)
    return path


def test_requests_in_a_row_and_a_failure_does_not_stop_the_worker(tmp_path, picture):
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    answers, _, status = talk(start(), [
        json.dumps(request(picture, "image/png", tmp_path / "a")),
        json.dumps(request(tmp_path / "junk.jpg", "image/jpeg", tmp_path / "b")),
        "this is not json",
        json.dumps(request(picture, "image/png", tmp_path / "c", format="jpeg"))])
    assert status == 0
    assert [a["ok"] for a in answers] == [True, False, False, True]
    assert answers[0]["metadata"] == {"image": {"width": 120, "height": 80}}
    assert answers[2] == {"ok": False, "error": "The request is not a JSON line.",
                          "metadata": {}}
    assert answers[3]["derivatives"][0]["path"] == str(tmp_path / "c" / "thumbnail.jpg")


def test_each_answer_comes_before_the_next_request_is_sent(tmp_path, picture):
    worker = start()
    assert worker.stdin is not None
    assert worker.stdout is not None
    try:
        for name in ("a", "b"):
            line = json.dumps(request(picture, "image/png", tmp_path / name)) + "\n"
            worker.stdin.write(line.encode())
            worker.stdin.flush()
            answer = json.loads(worker.stdout.readline())
            assert answer["derivatives"][2]["path"] == str(tmp_path / name / "fullsize.webp")
        worker.stdin.close()
        assert worker.wait(timeout=30) == 0
        assert worker.stdout.read() == b""
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)
        for stream in (worker.stdin, worker.stdout, worker.stderr):
            if stream is not None:
                stream.close()


def test_memory_error_under_rlimit_as_is_an_answer_and_the_worker_goes_on(tmp_path, picture):
    big = tmp_path / "big.png"  # 16000x16000 1-bit: 32 MB of rows, 256 MB once decoded
    png_declaring(big, 16000, 16000, rows=True)
    answers, err, status = talk(start(memory=300 * 1024**2), [
        json.dumps(request(big, "image/png", tmp_path / "a", max_image_pixels=300_000_000)),
        json.dumps(request(picture, "image/png", tmp_path / "b"))])
    assert status == 0, err
    assert answers[0]["ok"] is False
    assert "memory" in answers[0]["error"]
    assert answers[0]["metadata"] == {"image": {"width": 16000, "height": 16000}}
    assert answers[1]["ok"] is True
    assert list((tmp_path / "a").iterdir()) == []


def test_ffmpeg_that_cannot_load_under_the_memory_limit_is_a_clean_failure(tmp_path):
    song = tmp_path / "song.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=d=0.2",
                    str(song)], check=True, timeout=60)
    answers, err, status = talk(start(memory=150 * 1024**2), [
        json.dumps(request(song, "audio/x-wav", tmp_path / "a")), "\udcff not utf-8"])
    assert status == 0, err
    assert answers[0] == {"ok": False, "metadata": {},
                          "error": "ffprobe could not start within the worker's memory limit."}
    assert answers[1]["ok"] is False


def test_stdout_stays_pure_json_and_unexpected_errors_are_answered(tmp_path, picture):
    Image.new("RGB", (10, 10)).save(tmp_path / "explode.png")
    answers, err, status = talk(start(noisy=True), [
        json.dumps(request(tmp_path / "explode.png", "image/png", tmp_path / "a")),
        json.dumps(request(picture, "image/png", tmp_path / "b"))])
    assert status == 0
    assert answers[0] == {"ok": False, "error": "The job failed unexpectedly.", "metadata": {}}
    assert answers[1]["ok"] is True
    assert "library noise on stdout" in err
    assert "raw noise on fd 1" in err
    assert "RuntimeError: an unexpected bug" in err
    assert "Traceback" in err


def test_limits_are_set_and_bad_arguments_refused():
    probe = subprocess.run(
        [sys.executable, "-c", "import resource, sys\n"
         "from tornado_files.media.worker import set_limits\n"
         "set_limits(3 * 1024**3, 77)\n"
         "print(resource.getrlimit(resource.RLIMIT_AS), resource.getrlimit(resource.RLIMIT_CPU))\n"
         "sum(i * i for i in range(30_000_000))  # about a CPU second or more\n"
         "from tornado_files.media.worker import limit_next_job\n"
         "limit_next_job(77)\n"
         "print(resource.getrlimit(resource.RLIMIT_CPU)[0])"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    first, later = probe.stdout.strip().splitlines()
    # Each job gets its 77 CPU seconds on top of what the worker used before it.
    assert first.startswith(f"{(3 * GIB, 3 * GIB)} (77, ") or first.startswith(
        f"{(3 * GIB, 3 * GIB)} (78, ")
    assert int(later) >= 78
    refused = subprocess.run(
        [sys.executable, "-m", "tornado_files.media.worker", "--memory-bytes", "0",
         "--cpu-seconds", "5"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2
    assert refused.stdout == ""
