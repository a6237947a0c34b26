"""Debian's nginx in front of tornado-files, run by a test with the documented configuration.

``deploy/nginx/tornado-files.conf`` is the file docs/deploying.md shows; the tests run it as it
is, with only its two ``PLACEHOLDER`` lines (the upstream address and nginx's ``listen``)
replaced. Around it goes a main configuration of the test's own: a prefix directory in the
test's tmp holding the pid file, the logs and every temporary path, so nginx writes nothing
outside it. The main process runs as whoever runs the tests; under root (CI) its workers drop
to ``nobody`` as Debian's packaged nginx drops to ``www-data``; they cannot write in the test's
tmp, so a configuration that made nginx spool a body to its temporary files fails the tests
(the documented one streams both ways). Ended by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.serverproc import ROOT, free_port

NGINX = "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx" / "tornado-files.conf"
UPSTREAM_LINE = "    server 127.0.0.1:8888;"
LISTEN_LINE = "    listen 80;"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

MAIN = """\
{user}worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
{temp_paths}
    include {site};
}}
"""


def site_config(upstreams: Sequence[str], listen: str) -> str:
    """The documented site file with its placeholders replaced: one ``server`` line per
    ``host:port`` in ``upstreams``, and ``listen`` (``127.0.0.1:port``). Each placeholder line
    must be in the file exactly once (an edited file fails here, not in a confusing way)."""
    text = SITE.read_text()
    for line in (UPSTREAM_LINE, LISTEN_LINE):
        found = [existing for existing in text.splitlines() if existing.startswith(line)]
        assert len(found) == 1, f"{SITE}: expected one line starting {line.strip()!r}"
        assert "PLACEHOLDER" in found[0], found[0]
    servers = "\n".join(f"    server {upstream};" for upstream in upstreams)
    lines = []
    for existing in text.splitlines():
        if existing.startswith(UPSTREAM_LINE):
            lines.append(servers)
        elif existing.startswith(LISTEN_LINE):
            lines.append(f"    listen {listen};")
        else:
            lines.append(existing)
    return "\n".join(lines) + "\n"


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    port: int
    prefix: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def running_nginx(tmp_path: Path, upstreams: Sequence[str]) -> Iterator[Nginx]:
    """nginx on a free loopback port proxying to ``upstreams`` (``host:port`` each), in the
    foreground; yields once it answers, then SIGQUIT (graceful), SIGKILL after 10 s."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    site = prefix / "tornado-files.conf"
    site.write_text(site_config(upstreams, f"127.0.0.1:{port}"))
    temp_paths = "\n".join(f"    {name}_temp_path {prefix / name};" for name in TEMP_PATHS)
    # As root, nginx's workers switch to an unprivileged user (nobody by default): name one
    # that exists on Debian. As anyone else, the directive would only earn a warning.
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(MAIN.format(user=user, prefix=prefix, temp_paths=temp_paths, site=site))
    globals_ = f"daemon off; pid {prefix / 'nginx.pid'}; error_log {prefix / 'error.log'} info;"
    argv = [NGINX, "-p", f"{prefix}/", "-e", str(prefix / "error.log"), "-c", str(conf),
            "-g", globals_]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    nginx = Nginx(process, port, prefix)
    try:
        _wait_listening(nginx)
        yield nginx
    finally:
        _stop(process)


def _wait_listening(nginx: Nginx, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nginx.process.poll() is not None:
            stderr = nginx.process.stderr.read().decode() if nginx.process.stderr else ""
            raise RuntimeError(f"nginx exited: {stderr}{nginx.error_log()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", nginx.port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen: {nginx.error_log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stderr is not None:
        process.stderr.close()


def tree_peak_rss(pid: int) -> int:
    """The largest peak RSS (``VmHWM``, bytes) of ``pid`` and its child processes: the server
    itself, or each worker when it runs ``--processes N``."""
    peaks = [_status(pid, "VmHWM")]
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    peaks += [_status(int(child), "VmHWM") for child in children]
    return max(peaks)


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)
