"""A client's and an attacker's view of a ``python server.py`` subprocess (tests/serverproc.py),
for scripts/hardening_probe.py: requests sent as bytes or through http.client, answers judged
as tests/fuzzing.py judges them (2xx, or a 4xx with a JSON:API body), what a request left in
the data directory, ``/healthz`` latency while something else runs, peak memory, tmpfs mounts.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests import fuzzing
from tests.serverproc import ServerProcess
from tornado_files.storage.disk import MARKER

KIB, MIB = 1024, 1024 * 1024
FOUR = tuple(range(400, 500))
BOUNDARY = b"probe-boundary"
MULTIPART = "Content-Type: multipart/form-data; boundary=" + BOUNDARY.decode()
JSON = {"Content-Type": "application/json"}
TUS = "Tus-Resumable: 1.0.0"
OCTETS = "Content-Type: application/offset+octet-stream"
Result = tuple[bool, str]  # passed, and why
T = TypeVar("T")


@dataclass
class Answer:
    status: int | None  # None: closed without an answer
    problem: str | None  # fuzzing.judge: a 5xx, a 4xx without a JSON:API body, silence
    headers: dict[str, str]  # names in lower case
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        with suppress(ValueError, KeyError, IndexError, TypeError):
            return str(self.json()["errors"][0]["code"])
        return ""


def request(method: str, path: str, body: bytes = b"", *headers: str | bytes,
            length: bool = True) -> bytes:
    """An HTTP/1.1 request as bytes; ``str`` headers go out as UTF-8, ``bytes`` as they are."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1",
             *(h.encode() if isinstance(h, str) else h for h in headers)]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def raw(s: ServerProcess, data: bytes, deadline: float = 60.0) -> Answer:
    """``data`` on a new connection; the first answer (tests/fuzzing.py sends and judges)."""
    out = fuzzing.send(s.port, fuzzing.Case("probe", 0, data, []), deadline)
    lines = out.head.decode("latin-1").split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return Answer(out.status, out.problem, headers, out.body, out.elapsed)


def call(s: ServerProcess, method: str, path: str, body: bytes = b"",
         headers: Mapping[str, str | bytes] | None = None, timeout: float = 60.0) -> Answer:
    """An ordinary request through http.client (which knows that HEAD answers have no body)."""
    started = time.monotonic()
    with closing(http.client.HTTPConnection("127.0.0.1", s.port, timeout=timeout)) as conn:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
    head = f"Content-Type: {response.getheader('Content-Type', '')}".encode()
    return Answer(response.status, fuzzing.judge(response.status, head, data),
                  {k.lower(): v for k, v in response.getheaders()}, data,
                  time.monotonic() - started)


def get(s: ServerProcess, path: str) -> Any:
    if (answer := call(s, "GET", path)).status != 200:
        raise RuntimeError(f"GET {path}: {answer.status} {answer.code}")
    return answer.json()


def upload(s: ServerProcess, content: bytes, name: str = "f.bin",
           ctype: str = "application/octet-stream", path: str = "/api/files") -> Answer:
    """A raw upload (the body is the file)."""
    return raw(s, request("POST", path, content, f"Content-Type: {ctype}", f"X-Filename: {name}"))


def new_file(s: ServerProcess, content: bytes = b"hello world\n", name: str = "a.txt") -> str:
    if (answer := upload(s, content, name, "text/plain")).status != 201:
        raise RuntimeError(f"upload: {answer.status} {answer.code}")
    return str(answer.json()["id"])


def part(name: str, content: bytes = b"", filename: str | bytes | None = None,
         head: bytes = b"") -> bytes:
    """One multipart part: its Content-Disposition, the header lines ``head``, its content."""
    disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
    if filename is not None:
        raw_name = filename.encode() if isinstance(filename, str) else filename
        disposition += b'; filename="' + raw_name + b'"'
    return disposition + b"\r\n" + head + b"\r\n" + content


FILE = part("file", b"hello world\n", "a.txt", b"Content-Type: text/plain\r\n")


def form(*parts: bytes, pre: bytes = b"", post: bytes = b"") -> bytes:
    """A multipart/form-data body: a preamble, the parts, the closing boundary, an epilogue."""
    return (pre + b"".join(b"--" + BOUNDARY + b"\r\n" + p + b"\r\n" for p in parts)
            + b"--" + BOUNDARY + b"--\r\n" + post)


def post_form(s: ServerProcess, *parts: bytes, pre: bytes = b"", post: bytes = b"",
              path: str = "/api/files") -> Answer:
    return raw(s, request("POST", path, form(*parts, pre=pre, post=post), MULTIPART))


def tus_create(s: ServerProcess, length: int, body: bytes = b"") -> Answer:
    extra = [OCTETS] if body else []
    return raw(s, request("POST", "/api/tus/", body, TUS, f"Upload-Length: {length}", *extra))


def tus_patch(s: ServerProcess, url: str, offset: int, body: bytes) -> Answer:
    return raw(s, request("PATCH", url, body, TUS, OCTETS, f"Upload-Offset: {offset}"))


def offset_of(s: ServerProcess, url: str) -> int:
    return int(call(s, "HEAD", url, headers={"Tus-Resumable": "1.0.0"}).headers["upload-offset"])


def sql(s: ServerProcess, query: str, *args: Any) -> Any:
    """One row from the server's SQLite (read only, beside the running server)."""
    with closing(sqlite3.connect(s.data_dir / "metadata.sqlite3", timeout=10)) as db:
        return db.execute(query, args).fetchone()


def hold_patch(s: ServerProcess, url: str, declared: int, sent: bytes) -> socket.socket:
    """A tus PATCH that announced ``declared`` bytes and sent ``sent``: its open socket, once
    the PATCH holds the upload's lease (seen in SQLite, so no probe PATCH can win it first)."""
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    sock.sendall(request("PATCH", url, b"", TUS, OCTETS, "Upload-Offset: 0",
                         f"Content-Length: {declared}", length=False) + sent)
    for _ in range(200):
        if sql(s, "SELECT lease_token FROM uploads WHERE id = ?", url.rsplit("/", 1)[1])[0]:
            return sock
        time.sleep(0.05)
    sock.close()
    raise RuntimeError("the held PATCH never took the lease")


def attempt(work: Callable[[], Result]) -> Result:
    """``work``'s verdict; an exception (a stall, a crash) fails the case, not the probe."""
    try:
        return work()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"[:160]


def expect(answer: Answer, *statuses: int, code: str = "") -> Result:
    """No problem (an expected 5xx such as 507 needs a JSON:API body too), one of
    ``statuses`` if given, the error ``code`` if given."""
    said = f"{answer.status} {answer.code}".strip() if answer.status else "no answer"
    if answer.status in statuses and answer.status is not None and answer.status >= 500:
        json_body = "application/json" in answer.headers.get("content-type", "") and answer.code
        answer.problem = None if json_body else f"{answer.status} without a JSON:API body"
    if answer.problem:
        return False, answer.problem[:120]
    return (not statuses or answer.status in statuses) and (not code or answer.code == code), said


def both(first: Result, second: Result) -> Result:
    return first[0] and second[0], f"{first[1]}; {second[1]}"


def stored(s: ServerProcess) -> tuple[int, frozenset[str]]:
    """Records listed, and files in the data directory (SQLite's and the store marker aside)."""
    files = frozenset(str(p.relative_to(s.data_dir)) for p in s.data_dir.rglob("*")
                      if p.is_file() and p.name != MARKER
                      and not p.name.startswith("metadata.sqlite3"))
    return len(get(s, "/api/files?limit=1000")["files"]), files


def nothing_left(s: ServerProcess, before: tuple[int, frozenset[str]]) -> Result:
    for _ in range(30):  # clean-up after a refusal may finish just after the answer
        if (now := stored(s)) == before:
            return True, "nothing left"
        time.sleep(0.1)
    return False, f"left: {now[0] - before[0]} record(s), files {sorted(now[1] - before[1])[:3]}"


def watched(s: ServerProcess, work: Callable[[], T]) -> tuple[T, float]:
    """``work``'s result, and the slowest ``/healthz`` another client got every 50 ms meanwhile
    (at least one, even when ``work`` is over at once)."""
    slowest, probes, done = 0.0, 0, threading.Event()

    def poll() -> None:
        nonlocal slowest, probes
        while not done.is_set() or not probes:
            probes += 1
            started = time.monotonic()
            with suppress(OSError):
                call(s, "GET", "/healthz", timeout=10)
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        return work(), slowest
    finally:
        done.set()
        thread.join()


def peak_growth(s: ServerProcess, work: Callable[[], T]) -> tuple[T, int]:
    """``work``'s result, and how far the server's peak RSS (VmHWM) rose above its RSS before."""
    with suppress(OSError):  # writing 5 resets VmHWM (Linux 4.0+)
        Path(f"/proc/{s.process.pid}/clear_refs").write_text("5")
    before = s.status("VmRSS")
    return work(), s.status("VmHWM") - before


@contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (needs root), unmounted and removed afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True, timeout=30)
    try:
        if readonly:
            remount(path, "ro")
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False, timeout=30).returncode:
            subprocess.run(["umount", "--lazy", str(path)], check=False, timeout=30)
        path.rmdir()


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, timeout=30)


def free_mib(path: Path) -> float:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / MIB
