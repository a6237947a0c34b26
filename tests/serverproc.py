"""``python server.py`` started as a real subprocess on 127.0.0.1, and its memory figures."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status(self, field: str) -> int:
        """A /proc/<pid>/status figure in bytes (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_server(tmp_path: Path, args: Sequence[str] = (),
                   config: str | None = None, nofile: int | None = None,
                   root: Path = ROOT, env: Mapping[str, str] | None = None,
                   port: int | None = None) -> Iterator[ServerProcess]:
    """Start the server, wait for /healthz, yield; then SIGTERM (SIGKILL after 10 s).
    ``nofile`` lowers the server's open-file limit (``RLIMIT_NOFILE``, soft and hard).

    ``root`` is the checkout whose ``server.py`` runs (another commit's ``git worktree``, to
    compare): the script's directory comes first on ``sys.path``, so that checkout's own
    ``tornado_files`` is imported, not the one installed in the virtualenv. ``env`` adds
    variables to the server's environment (which otherwise has no ``TORNADO_FILES_*``);
    ``port`` reuses a port (a restart), else a free one is picked."""
    port = free_port() if port is None else port
    data_dir = tmp_path / "data"
    log_path = tmp_path / "server.log"
    argv = [sys.executable, str(root / "server.py"), "--port", str(port),
            "--data-dir", str(data_dir), *args]
    if config is not None:
        config_path = tmp_path / "config.toml"
        config_path.write_text(config)
        argv += ["--config", str(config_path)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}
    environ.update(env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                                   env=environ, preexec_fn=_limit_files(nofile))
    server = ServerProcess(process, port, data_dir, log_path)
    try:
        _wait_healthy(server)
        yield server
    finally:
        terminate(process)


def _limit_files(nofile: int | None) -> Callable[[], None] | None:
    if nofile is None:
        return None

    def limit() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return limit


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a process we started, by its PID; a second SIGTERM if it is still draining
    uploads after 2 s (a test's stalled clients would hold it ``shutdown_timeout``); SIGKILL
    if it has not exited in ``timeout``."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=2)
        return
    except subprocess.TimeoutExpired:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _wait_healthy(server: ServerProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited: {server.log()}")
        try:
            # http://127.0.0.1 only: the URL is built here, never taken from outside.
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as response:  # noqa: S310
                if json.load(response)["status"] == "ok":
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not become healthy: {server.log()}")
