"""The benchmark's workloads, each measuring one running server and verifying every byte.

A run returns a flat dict of figures; ``ok`` is False when any stored or received byte differs
from the source (such a run is reported, never counted as a result).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.servers import Running, proc_figures

MIB = 1024 * 1024
Figures = dict[str, Any]


def sha256_of(path: Path, start: int = 0, end: int | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        fh.seek(start)
        left = (end if end is not None else path.stat().st_size) - start
        while left > 0 and (chunk := fh.read(min(4 * MIB, left))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _multipart_payload_sha256(path: Path) -> str:
    """The file inside a multipart body stored as sent (nginx keeps the raw body)."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    boundary = head.split(b"\r\n", 1)[0]
    start = head.index(b"\r\n\r\n") + 4
    end = path.stat().st_size - len(b"\r\n" + boundary + b"--\r\n")
    return sha256_of(path, start, end)


def _downloaded_sha256(url: str) -> str:
    """Our GridFS blobs have no file to hash: read them back through the API (untimed)."""
    curl = subprocess.Popen(["curl", "-sS", "--fail", url], stdout=subprocess.PIPE)
    assert curl.stdout is not None
    digest = hashlib.sha256()
    while chunk := curl.stdout.read(4 * MIB):
        digest.update(chunk)
    return digest.hexdigest() if curl.wait() == 0 else "download failed"


def stored_hashes(run: Running, responses: list[bytes], kind: str) -> list[str]:
    """sha256 of every body the server stored in this run."""
    files = [p for p in run.data.rglob("*") if p.is_file()]
    if run.server.kind == "nginx":
        bodies = [p for p in files if p.parent.name == "bodies"]
        return [_multipart_payload_sha256(p) if kind == "multipart" else sha256_of(p)
                for p in bodies]
    if run.server.kind == "peer":
        return [sha256_of(p) for p in files]
    hashes = []
    for response in responses:
        resource = json.loads(response)
        key = resource["id"]
        blob = run.data / "blobs" / key[:2] / key[2:4] / key
        hashes.append(sha256_of(blob) if blob.exists()
                      else _downloaded_sha256(run.base + resource["download_url"]))
    return hashes


def _upload_args(kind: str, sample: Path) -> list[str]:
    # -T streams the file with a Content-Length, the same bytes on the wire as --data-binary,
    # which would first read the whole file into curl's memory.
    if kind == "multipart":
        return ["-F", f"file=@{sample}"]
    return ["-T", str(sample), "-X", "POST", "-H", "Content-Type: application/octet-stream"]


def _cpu(run: Running) -> tuple[float, float]:
    """(server CPU s, stand-in CPU s) now."""
    ours = proc_figures(run.process.pid)[1]
    standin = run.mongodb.standin if run.mongodb is not None else None
    theirs = proc_figures(standin.process.pid)[1] if standin is not None else 0.0
    return ours, theirs


def upload(run: Running, kind: str, sample: Path, source_sha: str) -> Figures:
    """Workload 1: one large upload with curl."""
    url = run.base + (run.server.multipart_url if kind == "multipart" else run.server.raw_url)
    cpu0, standin0 = _cpu(run)
    start = time.perf_counter()
    result = subprocess.run(["curl", "-sS", "--fail", "-H", "Expect:", *_upload_args(kind, sample),
                             url], capture_output=True, check=True)
    wall = time.perf_counter() - start
    peak, cpu = run.figures()
    standin = _cpu(run)[1] - standin0
    hashes = stored_hashes(run, [result.stdout], kind)
    return {"wall": wall, "peak": peak, "cpu": cpu - cpu0, "standin_cpu": standin,
            "bytes": sample.stat().st_size, "ok": hashes == [source_sha]}


def concurrent(run: Running, sample: Path, source_sha: str, clients: int) -> Figures:
    """Workload 2: ``clients`` multipart uploads of the same file at once."""
    url = run.base + run.server.multipart_url
    cpu0, standin0 = _cpu(run)
    start = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-sS", "--fail", "-H", "Expect:", "-F",
                               f"file=@{sample}", url], stdout=subprocess.PIPE)
             for _ in range(clients)]
    responses = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - start
    failed = sum(p.returncode != 0 for p in procs)
    peak, cpu = run.figures()
    standin = _cpu(run)[1] - standin0
    hashes = stored_hashes(run, responses, "multipart")
    return {"wall": wall, "peak": peak, "cpu": cpu - cpu0, "standin_cpu": standin,
            "failed": failed,
            "bytes": clients * sample.stat().st_size,
            "ok": failed == 0 and hashes == [source_sha] * clients}


REJECTION_CASES = {
    "declared, Expect: 100-continue": ["-H", "Expect: 100-continue"],
    "declared, no Expect": ["-H", "Expect:"],
    "chunked, no Expect": ["-H", "Transfer-Encoding: chunked", "-H", "Expect:"],
    "chunked, Expect: 100-continue": ["-H", "Transfer-Encoding: chunked",
                                      "-H", "Expect: 100-continue"],
}


def rejection(run: Running, sample: Path, case: str) -> Figures:
    """Workload 3: a large raw body at a small cap. What curl saw (status, exit code, bytes
    it sent) and, for tornado-files, how many body bytes the server read (``meta.received``)."""
    url = run.base + run.server.raw_url
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "60", "-T", str(sample), "-X", "POST",
         *REJECTION_CASES[case], "-w", "\n%{http_code} %{size_upload} %{time_total}", url],
        capture_output=True, check=False)
    body, _, tail = result.stdout.rpartition(b"\n")
    status, sent, seconds = tail.decode().split()
    received = None
    if run.server.kind == "ours":
        try:
            received = json.loads(body)["errors"][0]["meta"]["received"]
        except (ValueError, KeyError, IndexError):
            received = None
    return {"status": int(status), "curl_exit": result.returncode, "sent": int(sent),
            "seconds": float(seconds), "received": received,
            "stored": stored_body_bytes(run)}


def stored_body_bytes(run: Running) -> int:
    """Bytes of request bodies the server kept (temp files included): a rejection keeps none.
    nginx's own rejected bodies never reach its body directory either."""
    skip = {"nginx.conf", "error.log", "nginx.pid", "metadata.sqlite3",
            "metadata.sqlite3-wal", "metadata.sqlite3-shm"}
    return sum(p.stat().st_size for p in run.data.rglob("*") if p.is_file() and p.name not in skip)


def prepare_download(run: Running, sample: Path) -> str:
    """Put the sample where the server serves it (untimed); returns its path on the server."""
    if run.server.kind == "ours":
        out = subprocess.run(["curl", "-sS", "--fail", "-H", "Expect:", "-T", str(sample), "-X",
                              "POST", run.base + "/api/files"], capture_output=True, check=True)
        return str(json.loads(out.stdout)["download_url"])
    folder = run.data / "files" if run.server.kind == "nginx" else run.data
    folder.mkdir(exist_ok=True)
    os.link(sample, folder / "sample.bin")
    assert run.server.download_url is not None
    return run.server.download_url.format(name="sample.bin")


def download(run: Running, path: str, sample: Path, source_sha: str) -> Figures:
    """Workload 4a: one whole download with curl (timed to /dev/null, then verified)."""
    cpu0, standin0 = _cpu(run)
    start = time.perf_counter()
    result = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}",
                             run.base + path], capture_output=True, check=True)
    wall = time.perf_counter() - start
    peak, cpu = run.figures()
    standin = _cpu(run)[1] - standin0
    ok = int(result.stdout) == sample.stat().st_size and \
        _downloaded_sha256(run.base + path) == source_sha
    return {"wall": wall, "peak": peak, "cpu": cpu - cpu0, "standin_cpu": standin,
            "bytes": sample.stat().st_size, "ok": ok}


def ranges(run: Running, path: str, sample: Path, count: int, seed: int) -> Figures:
    """Workload 4b: ``count`` random 1 MiB Range reads on one keep-alive connection; latency
    p50/p99 overall and p99 of the first and the last tenth of the file (independent of the
    offset when the reader seeks instead of reading what it skips)."""
    size = sample.stat().st_size
    offsets = random.Random(seed).choices(range(size - MIB), k=count)  # noqa: S311 (repeatable)
    connection = http.client.HTTPConnection("127.0.0.1", run.port, timeout=60)
    latencies: list[tuple[int, float]] = []
    ok = True
    with sample.open("rb") as source:
        for offset in offsets:
            start = time.perf_counter()
            connection.request("GET", path, headers={"Range": f"bytes={offset}-{offset + MIB - 1}"})
            response = connection.getresponse()
            body = response.read()
            latencies.append((offset, time.perf_counter() - start))
            source.seek(offset)
            ok = ok and response.status == 206 and body == source.read(MIB)
    connection.close()
    every = sorted(t for _, t in latencies)
    low = sorted(t for o, t in latencies if o < size // 10)
    high = sorted(t for o, t in latencies if o >= size - size // 10)
    return {"p50": _pct(every, 50), "p99": _pct(every, 99), "p99_first_tenth": _pct(low, 99),
            "p99_last_tenth": _pct(high, 99), "ok": ok, "count": count}


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]
