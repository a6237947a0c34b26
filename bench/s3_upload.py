"""One large raw upload to an S3 route (moto in server mode, as in the tests) beside the same
upload to the disk, in one run: the server's CPU seconds per GiB (moto's own CPU shown apart,
not counted) and the server's peak RSS.

    .venv/bin/python bench/s3_upload.py [--size-mib 1024] [--out s3]

Writes bench/results/<out>.md. moto keeps every part in memory on this machine, so the figures
say what our process costs, not how fast a real bucket is (docs/object-storage.md).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.servers import proc_figures  # noqa: E402
from tests.s3_support import S3Service, start_s3  # noqa: E402
from tests.serverproc import running_server  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB


def body(size: int) -> Iterator[bytes]:
    block = hashlib.sha512(b"bench").digest() * (MIB // 64)
    for i in range(size // MIB):
        yield block[i % 64:] + block[: i % 64]


def upload(port: int, path: str, size: int) -> float:
    """Seconds for one raw upload of ``size`` bytes; fails unless 201."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.monotonic()
    conn.request("POST", path, body=body(size), headers={
        "Content-Length": str(size), "Content-Type": "application/octet-stream"})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    if answer.status != 201:
        raise RuntimeError(f"upload answered {answer.status}")
    return time.monotonic() - started


def measure(label: str, size: int, s3: S3Service | None) -> str:
    config = "[derivatives]\nenabled = false\n"
    path = "/api/files"
    if s3 is not None:
        config += (f'[s3]\nbucket = "{s3.new_bucket()}"\nendpoint = "{s3.endpoint}"\n'
                   '[[routes]]\npath = "/api/s3"\nmax_body_size = "64GiB"\nstorage = "s3"\n')
        path = "/api/s3"
    with tempfile.TemporaryDirectory() as work, \
            running_server(Path(work), ["--max-upload-size", "64GiB"], config=config) as server:
        upload(server.port, path, MIB)  # warm-up: imports, connections
        _, cpu_before = proc_figures(server.process.pid)
        moto_before = proc_figures(s3.process.pid)[1] if s3 and s3.process else 0.0
        seconds = upload(server.port, path, size)
        peak, cpu_after = proc_figures(server.process.pid)
        moto_after = proc_figures(s3.process.pid)[1] if s3 and s3.process else 0.0
    per_gib = (cpu_after - cpu_before) * GIB / size
    return (f"| {label} | {size // MIB} | {size / MIB / seconds:.0f} | {per_gib:.2f} | "
            f"{(moto_after - moto_before) * GIB / size:.2f} | {peak / MIB:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--out", default="s3")
    args = parser.parse_args()
    size = args.size_mib * MIB
    s3 = start_s3()
    try:
        rows = [measure("tornado-files disk", size, None),
                measure("tornado-files s3 (moto)", size, s3)]
    finally:
        s3.stop()
    lines = [f"# One {args.size_mib} MiB raw upload: disk and S3 (moto), one run", "",
             "| server | MiB | MiB/s | our CPU s/GiB | moto CPU s/GiB (not ours) | "
             "our peak RSS MiB |", "| --- | --- | --- | --- | --- | --- |", *rows, ""]
    out = ROOT / "bench" / "results" / f"{args.out}.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
