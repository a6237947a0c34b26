"""One large raw upload to each blob store in one run: disk, GridFS and the object stores'
stand-ins (S3: moto; Azure: azurite; GCS: gcp-storage-emulator), as the tests start them.

For each store: the server's CPU seconds per GiB (the stand-in's own CPU shown apart, not
counted), its RSS before the upload (after a 1 MiB warm-up) and its peak RSS during it.

    .venv/bin/python bench/object_upload.py [--size-mib 1024] [--stores disk,gridfs,s3,azure,gcs]
        [--out object-stores]

Writes bench/results/<out>.md. The stand-ins keep every byte on this machine (moto and the
GCS emulator in memory), so the figures say what our process costs per byte, not how fast a
real bucket is (docs/object-storage.md).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.servers import proc_figures  # noqa: E402
from tests.azure_support import start_azurite  # noqa: E402
from tests.gcs_support import start_gcs_emulator  # noqa: E402
from tests.mongo_support import fresh_database, start_standin  # noqa: E402
from tests.s3_support import start_s3  # noqa: E402
from tests.serverproc import running_server  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB
ROUTE = '[[routes]]\npath = "/api/bench"\nmax_body_size = "64GiB"\nstorage = "{}"\n'


@dataclass
class Store:
    """How the server reaches one store: its TOML, environment and stand-in PID."""

    label: str
    config: str = ""
    env: dict[str, str] = field(default_factory=dict)
    path: str = "/api/files"
    standin_pid: int | None = None
    max_mib: int | None = None  # a stand-in too slow for the full size gets this much


@contextmanager
def disk() -> Iterator[Store]:
    yield Store("disk")


@contextmanager
def gridfs() -> Iterator[Store]:
    standin = start_standin()
    try:
        config = f'mongodb_uri = "{standin.uri(fresh_database())}"\n' + ROUTE.format("gridfs")
        pid = standin.standin.process.pid if standin.standin else None
        yield Store("GridFS (mongoeco)", config, path="/api/bench", standin_pid=pid)
    finally:
        standin.stop()


@contextmanager
def s3() -> Iterator[Store]:
    service = start_s3()
    try:
        config = (f'[s3]\nbucket = "{service.new_bucket()}"\nendpoint = "{service.endpoint}"\n'
                  + ROUTE.format("s3"))
        pid = service.standin.process.pid if service.standin else None
        yield Store("S3 (moto)", config, path="/api/bench", standin_pid=pid)
    finally:
        service.stop()


@contextmanager
def azure() -> Iterator[Store]:
    azurite = start_azurite()
    try:
        config = (f'[azure]\ncontainer = "{azurite.new_container()}"\n'
                  f'endpoint = "{azurite.endpoint}"\n' + ROUTE.format("azure"))
        env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        yield Store("Azure (azurite)", config, env, "/api/bench", azurite.standin.process.pid)
    finally:
        azurite.stop()


@contextmanager
def gcs() -> Iterator[Store]:
    emulator = start_gcs_emulator()
    try:
        config = (f'[gcs]\nbucket = "{emulator.new_bucket()}"\n'
                  f'endpoint = "{emulator.endpoint}"\n' + ROUTE.format("gcs"))
        # The emulator rewrites a session's whole file at every chunk (quadratic): 256 MiB.
        yield Store("GCS (gcp-storage-emulator)", config, path="/api/bench",
                    standin_pid=emulator.standin.process.pid, max_mib=256)
    finally:
        emulator.stop()


STORES: dict[str, Callable[[], AbstractContextManager[Store]]] = {
    "disk": disk, "gridfs": gridfs, "s3": s3, "azure": azure, "gcs": gcs}


def body(size: int) -> Iterator[bytes]:
    block = hashlib.sha512(b"bench").digest() * (MIB // 64)
    for i in range(size // MIB):
        yield block[i % 64:] + block[: i % 64]


def upload(port: int, path: str, size: int) -> float:
    """Seconds for one raw upload of ``size`` bytes; fails unless 201."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    started = time.monotonic()
    conn.request("POST", path, body=body(size), headers={
        "Content-Length": str(size), "Content-Type": "application/octet-stream"})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    if answer.status != 201:
        raise RuntimeError(f"upload answered {answer.status}")
    return time.monotonic() - started


def rss(pid: int) -> int:
    """Resident bytes of ``pid`` now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(store: Store, size: int) -> str:
    config = store.config + "[derivatives]\nenabled = false\n"
    with tempfile.TemporaryDirectory() as work, \
            running_server(Path(work), ["--max-upload-size", "64GiB"], config=config,
                           env=store.env) as server:
        pid = server.process.pid
        upload(server.port, store.path, MIB)  # warm-up: imports, connections, pools
        before = rss(pid)
        _, cpu_before = proc_figures(pid)
        standin_before = proc_figures(store.standin_pid)[1] if store.standin_pid else 0.0
        seconds = upload(server.port, store.path, size)
        peak, cpu_after = proc_figures(pid)
        standin_after = proc_figures(store.standin_pid)[1] if store.standin_pid else 0.0
    per_gib = (cpu_after - cpu_before) * GIB / size
    standin = (standin_after - standin_before) * GIB / size
    return (f"| {store.label} | {size // MIB} | {size / MIB / seconds:.0f} | {per_gib:.2f} | "
            f"{standin:.2f} | {before / MIB:.0f} | {peak / MIB:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--out", default="object-stores")
    args = parser.parse_args()
    size = args.size_mib * MIB
    rows = []
    for name in args.stores.split(","):
        with STORES[name]() as store:
            rows.append(measure(store, min(size, (store.max_mib or size) * MIB)))
            print(rows[-1], flush=True)
    lines = [f"# One {args.size_mib} MiB raw upload to each blob store, one run", "",
             "| store | MiB | MiB/s | our CPU s/GiB | stand-in CPU s/GiB (not ours) | "
             "our RSS before MiB | our peak RSS MiB |",
             "| --- | --- | --- | --- | --- | --- | --- |", *rows, ""]
    out = ROOT / "bench" / "results" / f"{args.out}.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
