"""Invariant 1, bounded memory: the server's peak RSS does not grow with the size of an upload
or a download. Bounds, not timings: 1 GiB streams through a subprocess server."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
GIB = 1024 * MIB
BOUND = 64 * MIB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("bounds")) as running:
        yield running


@pytest.fixture(scope="module")
def gigabyte(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of non-trivial content written piece by piece (never whole in memory)."""
    path = tmp_path_factory.mktemp("gib") / "one.gib"
    block = hashlib.sha256(b"seed").digest() * (MIB // 32)
    with path.open("wb") as fh:
        for i in range(GIB // MIB):
            fh.write(block[i % 32:] + block[: i % 32])
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def curl(*args: str) -> bytes:
    result = subprocess.run(["curl", "--silent", "--show-error", "--fail-with-body", *args],
                            capture_output=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()[:500]
    return result.stdout


def warm_up(server: ServerProcess) -> int:
    """One small upload and download first, so the baseline includes every import and pool."""
    resource = json.loads(curl("-F", "file=@/etc/hostname", server.url + "/api/files"))
    curl("-o", "/dev/null", server.url + resource["download_url"])
    return server.status("VmHWM")


def test_one_gib_multipart_upload_then_download_in_bounded_memory(server, gigabyte, tmp_path):
    baseline = warm_up(server)
    resource = json.loads(curl("-F", f"file=@{gigabyte}", server.url + "/api/files"))
    after_upload = server.status("VmHWM")
    assert resource["size"] == GIB
    assert resource["sha256"] == sha256_of(gigabyte)
    assert after_upload - baseline < BOUND, (baseline, after_upload)

    out = tmp_path / "back.bin"
    curl("-o", str(out), server.url + resource["download_url"])
    after_download = server.status("VmHWM")
    assert sha256_of(out) == resource["sha256"]
    assert after_download - baseline < BOUND, (baseline, after_download)


CLIENTS = 32
CONCURRENT_BOUND = 96 * MIB  # issue 5: <= 128 MiB peak for 32 concurrent uploads, all told


def test_32_concurrent_uploads_in_bounded_memory(tmp_path):
    """Each request queues at most a small window of hashing and writing, so memory grows with
    the number of uploads in flight, not with their size (a fresh server: VmHWM never falls)."""
    sample = tmp_path / "c.bin"
    block = hashlib.sha256(b"concurrent").digest() * (MIB // 32)
    with sample.open("wb") as fh:
        for i in range(32):
            fh.write(block[i:] + block[:i])
    (tmp_path / "srv").mkdir()
    with running_server(tmp_path / "srv") as server:
        baseline = warm_up(server)
        clients = [subprocess.Popen(["curl", "--silent", "--show-error", "--fail-with-body",
                                     "-F", f"file=@{sample}", server.url + "/api/files"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for _ in range(CLIENTS)]
        answers = [client.communicate(timeout=600) for client in clients]
        peak = server.status("VmHWM")
    assert [c.returncode for c in clients] == [0] * CLIENTS, answers[0][1]
    resources = [json.loads(out) for out, _ in answers]
    assert len({r["id"] for r in resources}) == CLIENTS
    assert {r["sha256"] for r in resources} == {sha256_of(sample)}
    print(f"\n{CLIENTS} concurrent 32 MiB uploads: peak RSS {baseline / MIB:.0f} MiB before, "
          f"{peak / MIB:.0f} MiB after")
    assert peak - baseline < CONCURRENT_BOUND, (baseline, peak)
