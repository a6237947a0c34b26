"""The benchmark (issue 5, first part): tornado-files against its peers, in one run.

Each server runs as a subprocess on 127.0.0.1, one at a time, in alternating rounds
(A B C … A B C …) so machine drift hits all alike. Workload so far: one large multipart
upload (curl -F) and one large raw upload (curl -T). For every run: wall time, server peak RSS
(VmHWM) and CPU seconds from /proc, and a check that the stored bytes hash to the source's
sha256 (a run that loses bytes is not a result). Figures are medians with min-max, and ratios to
tuned nginx from the same rounds.

Setup (outside the test suite): `bench/setup.sh` (nginx from Debian; the peers in bench/.venv).
Usage: .venv/bin/python bench/run.py [--quick] [--rounds 3] [--size-mib 1024]
Writes bench/results/latest.md (and a dated copy).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = Path(os.environ.get("BENCH_PEER_PYTHON", ROOT / "bench" / ".venv" / "bin" / "python"))
MIB = 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_figures(pid: int) -> tuple[int, float]:
    """(peak RSS bytes, CPU seconds) of a live process."""
    hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return hwm, (int(fields[11]) + int(fields[12])) / TICK


def sha256_of(path: Path, start: int = 0, end: int | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        fh.seek(start)
        left = (end if end is not None else path.stat().st_size) - start
        while left > 0 and (chunk := fh.read(min(4 * MIB, left))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def multipart_payload_sha256(path: Path) -> str:
    """sha256 of the file inside a stored multipart body (nginx stores the body as sent)."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    boundary = head.split(b"\r\n", 1)[0]
    start = head.index(b"\r\n\r\n") + 4
    end = path.stat().st_size - len(b"\r\n" + boundary + b"--\r\n")
    return sha256_of(path, start, end)


def newest_file(folder: Path) -> Path:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime)


@dataclass
class Server:
    name: str
    start: Callable[[int, Path], list[str]]
    multipart_url: str
    raw_url: str
    stored: Callable[[Path, bytes, str], str]  # (data dir, response, kind) → sha256 stored


def _ours(data: Path, response: bytes, kind: str) -> str:
    resource = json.loads(response)
    blob = data / "blobs" / resource["id"][:2] / resource["id"][2:4] / resource["id"]
    return sha256_of(blob)


def _peer(data: Path, response: bytes, kind: str) -> str:
    return sha256_of(newest_file(data))


def _nginx_stored(data: Path, response: bytes, kind: str) -> str:
    body = newest_file(data / "bodies")
    return multipart_payload_sha256(body) if kind == "multipart" else sha256_of(body)


NGINX_CONF = """
daemon off; master_process off; worker_processes 1; error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; client_max_body_size 0; client_body_in_file_only on;
  client_body_temp_path {dir}/bodies; {tuning}
  proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://127.0.0.1:{port}/done; proxy_pass_request_body off;
                 proxy_set_header Content-Length ""; }}
    location = /done {{ return 201 '{{"stored": true}}'; }}
  }}
}}
"""


def _nginx(tuning: str) -> Callable[[int, Path], list[str]]:
    def start(port: int, data: Path) -> list[str]:
        (data / "bodies").mkdir(parents=True, exist_ok=True)
        conf = data / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=data, port=port, tuning=tuning))
        return ["/usr/sbin/nginx", "-c", str(conf), "-p", str(data)]
    return start


def servers() -> list[Server]:
    python = str(PEER_PYTHON)
    peers = ROOT / "bench" / "peers"
    return [
        Server("nginx tuned (1m body buffer)", _nginx("client_body_buffer_size 1m;"),
               "/upload", "/upload", _nginx_stored),
        Server("nginx default", _nginx(""), "/upload", "/upload", _nginx_stored),
        Server("tornado-files", lambda p, d: [sys.executable, str(ROOT / "server.py"),
                                              "--port", str(p), "--data-dir", str(d)],
               "/api/files", "/api/files", _ours),
        Server("Starlette (uvicorn)", lambda p, d: [python, str(peers / "starlette_app.py"),
                                                    str(p), str(d)],
               "/multipart", "/raw", _peer),
        Server("aiohttp", lambda p, d: [python, str(peers / "aiohttp_app.py"), str(p), str(d)],
               "/multipart", "/raw", _peer),
        Server("Tornado buffered", lambda p, d: [python, str(peers / "tornado_buffered.py"),
                                                 str(p), str(d)],
               "/multipart", "/raw", _peer),
    ]


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited at start")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("server did not listen")


def one_run(server: Server, kind: str, sample: Path, source_sha: str, work: Path) -> dict:
    port = free_port()
    data = work / f"data-{port}"
    data.mkdir()
    process = subprocess.Popen(server.start(port, data), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, process)
        url = f"http://127.0.0.1:{port}" + (server.multipart_url if kind == "multipart"
                                            else server.raw_url)
        args = (["-F", f"file=@{sample}"] if kind == "multipart" else
                ["-T", str(sample), "-X", "POST", "-H", "Content-Type: application/octet-stream"])
        start = time.perf_counter()
        result = subprocess.run(["curl", "-sS", "-H", "Expect:", *args, url],
                                capture_output=True, check=True)
        wall = time.perf_counter() - start
        peak, cpu = proc_figures(process.pid)
        ok = server.stored(data, result.stdout, kind) == source_sha
        return {"wall": wall, "peak": peak, "cpu": cpu, "ok": ok}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data, ignore_errors=True)


def report(results: dict[tuple[str, str], list[dict]], size_mib: int, rounds: int) -> str:
    lines = [f"# Benchmark: {size_mib} MiB uploads, {rounds} alternating round(s)", "",
             f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, {platform.platform()}.", ""]
    for kind in ("multipart", "raw"):
        base = [r["wall"] for r in results[("nginx tuned (1m body buffer)", kind)]]
        nginx = statistics.median(base)
        lines += [f"## {kind}", "", "| server | median s | min-max s | MB/s | x tuned nginx |"
                  " peak RSS MiB | CPU s | bytes verified |", "|---|---|---|---|---|---|---|---|"]
        for (name, k), runs in results.items():
            if k != kind:
                continue
            walls = [r["wall"] for r in runs]
            med = statistics.median(walls)
            lines.append(
                f"| {name} | {med:.2f} | {min(walls):.2f}-{max(walls):.2f} | "
                f"{size_mib * MIB / 1e6 / med:.0f} | {nginx / med:.2f} | "
                f"{max(r['peak'] for r in runs) / MIB:.0f} | "
                f"{statistics.median(r['cpu'] for r in runs):.2f} | "
                f"{'yes' if all(r['ok'] for r in runs) else 'NO — bytes lost'} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100 MiB, 1 round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    size, rounds = (100, 1) if args.quick else (args.size_mib, args.rounds)
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        sample = work / "sample.bin"
        with sample.open("wb") as fh:
            for _ in range(size):
                fh.write(os.urandom(MIB))
        source_sha = sha256_of(sample)
        for _ in range(rounds):
            for kind in ("multipart", "raw"):
                for server in servers():
                    run = one_run(server, kind, sample, source_sha, work)
                    results.setdefault((server.name, kind), []).append(run)
                    print(f"{server.name:30} {kind:9} {run['wall']:.2f}s "
                          f"rss {run['peak'] / MIB:.0f} MiB ok={run['ok']}", flush=True)
    text = report(results, size, rounds)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(text)
    (out / f"run-{time.strftime('%Y%m%d-%H%M')}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
