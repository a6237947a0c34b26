"""The servers the benchmark compares, each started as a subprocess on 127.0.0.1.

A server here is a name, a command line for (port, data directory), the URLs of its upload
and download endpoints, and a way to find the bytes it stored so every run can be verified.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = Path(os.environ.get("BENCH_PEER_PYTHON", ROOT / "bench" / ".venv" / "bin" / "python"))
PEERS = ROOT / "bench" / "peers"
TICK = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, str(ROOT))
from tests.mongo_support import start_standin  # noqa: E402  (the suite's stand-in, same way)
from tests.serverproc import free_port, terminate  # noqa: E402

NGINX_TUNED = "nginx tuned (1m body buffer)"
NGINX_TUNED_2 = "nginx tuned, 2 workers"
NGINX_DEFAULT = "nginx default"
OURS = "tornado-files"
OURS_2 = "tornado-files --processes 2"
OURS_GRIDFS = "tornado-files gridfs"

NGINX_CONF = """
daemon off; {workers} error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; client_max_body_size {cap}; client_body_in_file_only on;
  client_body_temp_path {dir}/bodies; {tuning}
  proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{ listen 127.0.0.1:{port};
    location /upload {{ proxy_pass http://127.0.0.1:{port}/done; proxy_pass_request_body off;
                 proxy_set_header Content-Length ""; }}
    location = /done {{ return 201 '{{"stored": true}}'; }}
    location /files/ {{ alias {dir}/files/; }}
  }}
}}
"""


@dataclass
class Server:
    """``start(port, data, cap)`` returns the argv; ``cap`` is the body cap in bytes or 0.
    ``needs_mongodb``: run with a fresh MongoDB stand-in (its URI is appended by ``running``)."""

    name: str
    start: Callable[[int, Path, int], list[str]]
    multipart_url: str
    raw_url: str
    kind: str  # "nginx", "ours", "peer": how stored bytes are found
    download_url: str | None = None  # "/files/{name}" for servers that serve a directory
    needs_mongodb: bool = False


def _nginx(tuning: str, workers: int = 1) -> Callable[[int, Path, int], list[str]]:
    """One worker runs without a master process (nothing but the worker to measure); more
    need the master. As root the workers keep root (the data directory is private)."""
    processes = "master_process off; worker_processes 1;" if workers == 1 else \
        ("user root; " if os.geteuid() == 0 else "") + \
        f"master_process on; worker_processes {workers};"

    def start(port: int, data: Path, cap: int) -> list[str]:
        (data / "bodies").mkdir(parents=True, exist_ok=True)
        (data / "files").mkdir(exist_ok=True)
        conf = data / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=data, port=port, tuning=tuning, cap=cap or 0,
                                          workers=processes))
        return ["/usr/sbin/nginx", "-c", str(conf), "-p", str(data)]
    return start


def _tornado_files(root: Path, processes: int = 1) -> Callable[[int, Path, int], list[str]]:
    """``server.py`` of the checkout at ``root``, run by this interpreter (the same venv)."""
    def start(port: int, data: Path, cap: int) -> list[str]:
        argv = [sys.executable, str(root / "server.py"), "--port", str(port),
                "--data-dir", str(data)]
        if processes != 1:
            argv += ["--processes", str(processes)]
        return [*argv, "--max-upload-size", str(cap)] if cap else argv
    return start


_ours = _tornado_files(ROOT)


def _peer(script: str) -> Callable[[int, Path, int], list[str]]:
    def start(port: int, data: Path, cap: int) -> list[str]:
        return [str(PEER_PYTHON), str(PEERS / script), str(port), str(data)]
    return start


def gridfs_server() -> Server:
    """tornado-files with GridFS blobs and MongoDB records (a fresh stand-in per run)."""
    return Server(OURS_GRIDFS, _ours, "/api/files", "/api/files", "ours", needs_mongodb=True)


def baseline_name(name: str, label: str) -> str:
    """The row of the previous code beside ``name`` (``OURS`` or ``OURS_GRIDFS``)."""
    return f"{name} @ {label}"


def baseline_servers(root: Path, label: str) -> tuple[Server, Server]:
    """The previous code checked out at ``root`` (``--baseline``), run exactly as tornado-files
    is: disk + SQLite, and GridFS + MongoDB on a fresh stand-in."""
    start = _tornado_files(root)
    return (Server(baseline_name(OURS, label), start, "/api/files", "/api/files", "ours"),
            Server(baseline_name(OURS_GRIDFS, label), start, "/api/files", "/api/files", "ours",
                   needs_mongodb=True))


def upload_servers(gridfs: bool, extra: Sequence[Server] = ()) -> list[Server]:
    """Workloads 1 and 2 (``gridfs``: also tornado-files on GridFS; ``extra``: after ours)."""
    servers = [
        Server(NGINX_TUNED, _nginx("client_body_buffer_size 1m;"), "/upload", "/upload",
               "nginx", "/files/{name}"),
        Server(NGINX_DEFAULT, _nginx(""), "/upload", "/upload", "nginx"),
        Server(OURS, _ours, "/api/files", "/api/files", "ours"),
        *extra,
        Server("Starlette (uvicorn)", _peer("starlette_app.py"), "/multipart", "/raw", "peer"),
        Server("aiohttp", _peer("aiohttp_app.py"), "/multipart", "/raw", "peer"),
        Server("Tornado buffered", _peer("tornado_buffered.py"), "/multipart", "/raw", "peer"),
    ]
    if gridfs:
        servers.insert(3, gridfs_server())
    return servers


def concurrent_servers(extra: Sequence[Server] = ()) -> list[Server]:
    """Workload 2: those of workload 1, and nginx and tornado-files with two processes each
    (a process per core on these 2-core machines) right after their one-process rows."""
    servers = upload_servers(False, extra)
    servers.insert(1, Server(NGINX_TUNED_2, _nginx("client_body_buffer_size 1m;", workers=2),
                             "/upload", "/upload", "nginx", "/files/{name}"))
    at = [s.name for s in servers].index(OURS) + 1
    servers.insert(at, Server(OURS_2, _tornado_files(ROOT, processes=2), "/api/files",
                              "/api/files", "ours"))
    return servers


def download_servers(gridfs: bool, extra: Sequence[Server] = ()) -> list[Server]:
    """Workload 4: nginx static (sendfile), the peers' file responses, and ours."""
    return [s for s in upload_servers(gridfs, extra)
            if s.name in (NGINX_TUNED, OURS, OURS_GRIDFS) or s in extra] \
        + [Server("Starlette FileResponse", _peer("starlette_app.py"), "", "", "peer",
                  "/files/{name}"),
           Server("aiohttp FileResponse", _peer("aiohttp_app.py"), "", "", "peer",
                  "/files/{name}")]


@dataclass
class Running:
    server: Server
    process: subprocess.Popen[bytes]
    port: int
    data: Path
    mongodb: Any = None  # the stand-in of a GridFS run (its process, for its CPU figures)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def figures(self) -> tuple[int, float]:
        return proc_figures(self.process.pid)


def proc_figures(pid: int) -> tuple[int, float]:
    """(peak RSS bytes, CPU seconds) of a live process and its live descendants (nginx's
    workers, tornado-files' ``--processes`` workers), from /proc: the peaks and the CPU of
    each process summed. A one-process server is just itself."""
    hwm, cpu = 0, 0.0
    for member in _tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                hwm += int(line.split()[1]) * 1024
        cpu += (int(fields[11]) + int(fields[12])) / TICK
    return hwm, cpu


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        member = todo.pop()
        found.append(member)
        todo.extend(children.get(member, ()))
    return found


@contextmanager
def running(server: Server, work: Path, cap: int = 0) -> Iterator[Running]:
    """Start ``server`` with a fresh data directory (and, for GridFS, a fresh stand-in, so its
    memory never carries one run's gigabytes into the next); SIGTERM (then SIGKILL) by PID."""
    port = free_port()
    data = work / f"data-{port}"
    data.mkdir()
    argv = server.start(port, data, cap)
    standin = None
    if server.needs_mongodb:
        standin = start_standin()
        argv += ["--mongodb-uri", standin.uri("bench"), "--storage", "gridfs"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, process)
        yield Running(server, process, port, data, standin)
    finally:
        terminate(process, timeout=20)
        if standin is not None:
            standin.stop()
        subprocess.run(["rm", "-rf", str(data)], check=False)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited at start")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("server did not listen")
