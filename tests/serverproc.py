"""Real subprocesses on 127.0.0.1: ``python server.py`` (and its memory figures), and the
stand-ins of the services it talks to (moto, Azurite, the GCS emulator, the MongoDB stand-in),
each started, waited for and stopped by its PID in one way."""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loopback_call(port: int, method: str, path: str, headers: Mapping[str, str] | None = None,
                  body: bytes = b"", timeout: float = 10.0) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:``port``: (status, body). Raises ``OSError`` when nothing
    answers (refused, reset, ``timeout`` seconds of silence)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def answers_http(path: str) -> Callable[[int], bool]:
    """A readiness check: True once the port answers ``GET path`` with any status at all."""
    def answers(port: int) -> bool:
        try:
            loopback_call(port, "GET", path, timeout=2)
        except OSError:
            return False
        return True

    return answers


def accepts_tcp(port: int) -> bool:
    """A readiness check: True once the port accepts a TCP connection."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class StandIn:
    """A stand-in service we started: its process and the loopback port it serves."""
    process: subprocess.Popen[bytes]
    port: int

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID, SIGKILL if it has not exited after ``timeout`` seconds; a process
        already gone is left as it is (idempotent)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL by PID (an abrupt death, for fault tests); idempotent."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def launch_standin(name: str, argv: Callable[[int], Sequence[str]],
                   ready: Callable[[int], bool], timeout: float, port: int | None = None,
                   ) -> StandIn:
    """Start ``argv(port)`` on ``port`` (a free one when None), its output in a temporary file,
    and return once ``ready(port)`` is true. Raises ``RuntimeError`` naming ``name`` with the
    last 2,000 bytes of its output when it exits or is not ready within ``timeout`` seconds; it
    is stopped (by PID) first."""
    port = free_port() if port is None else port
    with tempfile.TemporaryFile() as output:  # the child keeps its own descriptor
        process = subprocess.Popen([*argv(port)], stdout=output, stderr=output,
                                   stdin=subprocess.DEVNULL)
        standin = StandIn(process, port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if ready(port):
                return standin
            time.sleep(0.1)
        exited = process.poll() is not None
        standin.stop()
        output.seek(max(0, output.seek(0, os.SEEK_END) - 2000))
        tail = output.read().decode(errors="replace")
    why = (f"exited ({process.returncode})" if exited
           else f"did not answer within {timeout} s")
    raise RuntimeError(f"{name} on 127.0.0.1:{port} {why}: {tail}")


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
