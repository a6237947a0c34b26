"""Issue 13's hardening cases, tried as real clients and attackers would, against the
``server.py`` (and command-line client) of a checkout: this one, or an older commit's worktree.

    .venv/bin/python scripts/hardening_probe.py [--server-root DIR] [--kinds 1,2,3,4,5,6]

It starts its own servers (disk + SQLite in temporary directories, 127.0.0.1 only), prints one
line per case (kind, name, PASS or FAIL, why) and a JSON summary ``{kind: {"tried": n,
"failed": m}}``, with scripts/fuzz.py's run (2,000 multipart and 500 raw cases, seed 13) under
``"fuzz"``; exit status 0. The judge is the issue's: never a 5xx for client input, a JSON:API
body for every 4xx, nothing left by a refused request, ``/healthz`` within 1 s while a hostile
request runs, memory in proportion. A case that needs a setting the server does not know fails
as "not supported". Kind 4 mounts small tmpfs file systems, so it runs only as root. Temporary
files go to $TMPDIR (kind 6 writes a 300 MiB file). About 2 minutes a run.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.probing import (  # noqa: E402
    FILE,
    FOUR,
    JSON,
    KIB,
    MIB,
    MULTIPART,
    OCTETS,
    TUS,
    Answer,
    Result,
    attempt,
    both,
    call,
    expect,
    form,
    free_mib,
    get,
    hold_patch,
    new_file,
    nothing_left,
    offset_of,
    part,
    peak_growth,
    post_form,
    raw,
    remount,
    request,
    sql,
    stored,
    tmpfs,
    tus_create,
    tus_patch,
    upload,
    watched,
)
from tests.serverproc import ServerProcess, free_port, running_server, terminate  # noqa: E402

# A kind yields its cases in order: (name, verdict) or (name, work giving the verdict).
Cases = Iterator[tuple[str, Result | Callable[[], Result]]]
# Only settings every version knows: the old servers must start too.
CONFIG = """idle_timeout = 2.0
linger_seconds = 0.5

[[routes]]
path = "/api/audio"
max_body_size = "64MiB"
allowed_mime_types = ["audio/*"]
"""


@dataclass
class Probe:
    root: Path  # the checkout probed
    base: Path  # its temporary directories
    made: int = 0

    def tmp(self) -> Path:
        self.made += 1
        (path := self.base / f"t{self.made}").mkdir()
        return path

    def server(self, tmp: Path | None = None, **kwargs: Any
               ) -> AbstractContextManager[ServerProcess]:
        return running_server(tmp or self.tmp(), root=self.root, **kwargs)

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}


# -- kind 1: a change made of several steps is atomic or recoverable ---------------------------
def concurrent_changes(s: ServerProcess, put: bool) -> Result:
    """50 PATCHes each adding a key; with ``put`` one of them is a PUT of {"put": 1}: every
    PATCH whose answer shows "put" came after it, so its key must survive as well."""
    fid = new_file(s)

    def change(i: int) -> Answer:
        method, data = ("PUT", {"put": 1}) if put and i == 25 else ("PATCH", {f"k{i}": i})
        return call(s, method, f"/api/files/{fid}", json.dumps({"data": data}).encode(), JSON)

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(change, range(50)))
    if bad := [a.status for a in answers if a.status != 200]:
        return False, f"answers {bad[:5]}"
    final = get(s, f"/api/files/{fid}")["data"]
    after = [i for i in range(50) if not put or (i != 25 and "put" in answers[i].json()["data"])]
    lost = [i for i in after if f"k{i}" not in final] + ["put"] * (put and "put" not in final)
    return not lost, f"{len(lost)} of {len(after) + put} acknowledged changes lost"


def lease_taken_over(p: Probe) -> Result:
    with p.server(tmp := p.tmp()) as first:
        url = tus_create(first, 1000).headers["location"]
        with closing(hold_patch(first, url, 1000, b"a" * 100)):
            first.process.kill()  # SIGKILL by PID: the lease holder dies without a word
            first.process.wait(timeout=10)
    with p.server(tmp) as second:
        begun = time.monotonic()
        while time.monotonic() - begun < 15:
            offset = offset_of(second, url)
            if (answer := tus_patch(second, url, offset, b"b" * (1000 - offset))).status == 204:
                took = time.monotonic() - begun
                return offset_of(second, url) == 1000, f"resumed after {took:.1f} s"
            time.sleep(0.5)
        return False, f"still {answer.status} {answer.code} after 15 s"


def sigterm_keeps_bytes(p: Probe) -> Result:
    sent = MIB + 7
    with p.server(tmp := p.tmp()) as first:
        url = tus_create(first, 10 * MIB).headers["location"]
        with closing(hold_patch(first, url, 10 * MIB, os.urandom(sent))):
            time.sleep(0.5)  # the bytes sent reach the store
            terminate(first.process, timeout=20)
    with p.server(tmp) as second:
        offset = offset_of(second, url)
    return offset == sent, f"Upload-Offset {offset} after the restart, {sent} sent"


def blob_tree_missing(p: Probe, upload_meanwhile: bool) -> Result:
    """The blob tree is not there at start-up (its volume not mounted yet), then comes back.
    Records are younger than the least sweep_grace (60 s): what is judged is the start-up sweep
    and two more (both versions' sweepers settle journal entries only, never records)."""
    with p.server(tmp := p.tmp()) as s:
        files = {new_file(s, b"kept %d" % i): b"kept %d" % i for i in range(3)}
    blobs, volume = tmp / "data" / "blobs", tmp / "volume"
    blobs.rename(volume)
    config = "idle_timeout = 5.0\nsweep_interval = 1.0\nsweep_grace = 60.0\n"
    try:
        with p.server(tmp, config=config) as s:
            time.sleep(2.5)
            if upload_meanwhile:
                files[new_file(s, b"meanwhile")] = b"meanwhile"
        started = "started"
    except RuntimeError as exc:
        started = "refused to start: " + str(exc).strip().splitlines()[-1].split(": ")[-1][:60]
    if blobs.exists():  # the volume is mounted over what the server made meanwhile
        blobs.rename(tmp / "hidden")
    volume.rename(blobs)
    with p.server(tmp) as s:
        kept = sum(call(s, "GET", f"/api/files/{i}/content").body == c for i, c in files.items())
    return kept == len(files), f"{kept} of {len(files)} files readable after; {started}"


def kind1(p: Probe) -> Cases:
    with p.server() as s:
        yield "50 concurrent PATCHes of distinct data keys", lambda: concurrent_changes(s, False)
        yield "49 concurrent PATCHes and a PUT", lambda: concurrent_changes(s, True)
    yield "tus lease of a SIGKILLed server taken over within 15 s", lambda: lease_taken_over(p)
    yield "SIGTERM during a tus PATCH keeps the bytes sent", lambda: sigterm_keeps_bytes(p)
    yield "blob tree missing at start-up: no record lost", lambda: blob_tree_missing(p, False)
    yield "blob tree missing: an upload meanwhile is not lost", lambda: blob_tree_missing(p, True)


# -- kind 2: input from a client is never a 500 ------------------------------------------------
def cursor(*value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def listing(query: str) -> Callable[[ServerProcess, dict[str, str]], Answer]:
    return lambda s, ids: call(s, "GET", "/api/files?" + query)


DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000
SURROGATE = b'{"title": "party \\ud83d"}'  # what JavaScript makes of an emoji cut in half
# name, the request (given the server and {"file": id, "tus": url}), the statuses it may get
# (any, if none are named: it must only not be a problem)
K2: list[tuple[str, Callable[[ServerProcess, dict[str, str]], Answer], tuple[int, ...]]] = [
    ("part header filename with a raw Latin-1 byte",
     lambda s, ids: post_form(s, part("file", b"x", b"caf\xe9.txt")), ()),
    ("?limit=\u00b2", listing("limit=" + quote("\u00b2")), (400,)),
    ("?limit=\u0661\u0662 (Arabic-Indic digits)", listing("limit=" + quote("\u0661\u0662")),
     (400,)),
    ("?added_since=9999-12-31T23:59:59Z", listing("added_since=9999-12-31T23:59:59Z"), ()),
    ("?added_since=+10000-01-01", listing("added_since=%2B10000-01-01"), ()),
    ("?size_greater_than=99999999999999999999",
     listing("size_greater_than=99999999999999999999"), ()),
    ("tampered cursor: a size past 2**63", lambda s, ids: call(
        s, "GET", "/api/files?sort=size&cursor=" + cursor("size", 2**70, ids["file"])), ()),
    ("tampered cursor: a lone surrogate id",
     listing("cursor=" + cursor("-added", "2026-01-01T00:00:00Z", "\ud800")), ()),
    ("tampered cursor: nested 10,000 deep",
     listing("cursor=" + base64.urlsafe_b64encode(b"[" * 10000 + b"]" * 10000).decode()), ()),
    ("data JSON nested 1,000 deep (upload)",
     lambda s, ids: post_form(s, FILE, part("data", DEEP)), FOUR),
    ("data JSON nested 1,000 deep (PATCH)", lambda s, ids: call(
        s, "PATCH", f"/api/files/{ids['file']}", b'{"data":' + DEEP + b"}", JSON), FOUR),
    ("two Content-Length: 0 (answered within 5 s)", lambda s, ids: raw(s, request(
        "POST", "/api/files", b"", "X-Filename: z.txt", "Content-Length: 0", "Content-Length: 0",
        length=False), deadline=5), ()),
    ("two differing Content-Length", lambda s, ids: raw(s, request(
        "POST", "/api/files", b"hello!", "Content-Length: 5", "Content-Length: 6",
        length=False)), FOUR),
    ("GET /static/../server.py", lambda s, ids: raw(
        s, request("GET", "/static/../server.py", length=False)), FOUR),
    ("GET /static/%2e%2e/server.py", lambda s, ids: raw(
        s, request("GET", "/static/%2e%2e/server.py", length=False)), FOUR),
    ("lone surrogate in the upload's data",
     lambda s, ids: post_form(s, FILE, part("data", SURROGATE)), FOUR),
    ("lone surrogate in a PATCH's data", lambda s, ids: call(
        s, "PATCH", f"/api/files/{ids['file']}", b'{"data": ' + SURROGATE + b"}", JSON), FOUR),
    ("chunk extension 5;ext=1 (a JSON answer)", lambda s, ids: raw(s, request(
        "POST", "/api/files", b"5;ext=1\r\nhello\r\n0\r\n\r\n", "X-Filename: c.txt",
        "Transfer-Encoding: chunked", length=False)), (201, *FOUR)),
    ("NUL in a header (a JSON answer)", lambda s, ids: raw(s, request(
        "POST", "/api/files", b"hello", b"X-Filename: a\x00b.txt")), FOUR),
    ("Range: bytes=\u00b2-5 (ignored or 416)", lambda s, ids: raw(s, request(
        "GET", f"/api/files/{ids['file']}/content", b"", b"Range: bytes=\xb2-5", length=False)),
     (200, 416)),
    ("tus Upload-Length: \u00b2", lambda s, ids: raw(s, request(
        "POST", "/api/tus/", b"", TUS, b"Upload-Length: \xb2")), (400,)),
    ("tus Upload-Offset: \u00b2", lambda s, ids: raw(s, request(
        "PATCH", ids["tus"], b"hello", TUS, OCTETS, b"Upload-Offset: \xb2")), FOUR),
]


def kind2(p: Probe) -> Cases:
    with p.server(config=CONFIG) as s:
        fid = new_file(s)
        new_file(s)  # two files: a listing of one has a next page
        ids = {"file": fid, "tus": tus_create(s, 5).headers["location"]}
        paths = ("/api/files", f"/api/files/{fid}")  # both still answer 200 after each case
        for name, send, statuses in K2:
            def case(send: Callable[[ServerProcess, dict[str, str]], Answer] = send,
                     statuses: tuple[int, ...] = statuses) -> Result:
                before = stored(s)
                result = expect(answer := send(s, ids), *statuses)
                if answer.status and answer.status >= 400:
                    result = both(result, nothing_left(s, before))
                if b"tornado_files.cli" in answer.body:
                    return False, "sent server.py"
                after = [call(s, "GET", path).status for path in paths]
                return (result[0] and after == [200, 200],
                        result[1] + ("" if after == [200, 200] else f"; then GETs answer {after}"))
            yield name, case


def run_fuzz(p: Probe) -> dict[str, int]:
    out = subprocess.run(  # noqa: S603 (this interpreter, this checkout's script)
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--multipart", "2000", "--raw",
         "500", "--seed", "13", "--server-root", str(p.root)],
        capture_output=True, text=True, timeout=900, check=False).stdout
    report, end = json.JSONDecoder().raw_decode(out)
    for line in out[end:].strip().splitlines()[:5]:
        print(f"     fuzz problem: {line[:240]}")
    print(f"2    fuzz: {report['cases']} cases, {report['problems']} problem(s): "
          f"{report['statuses']}")
    return {"tried": int(report["cases"]), "failed": int(report["problems"])}


# -- kind 3: every request's work and resources are bounded ------------------------------------
def hostile(s: ServerProcess, body: bytes, accept: Callable[[Answer], Result] | None = None,
            memory: bool = False, within: float = 0.0) -> Result:
    """``body`` POSTed as a form while /healthz is asked: each answer < 1 s; a JSON 4xx leaving
    nothing (or a 201 that ``accept`` accepts); with ``memory`` peak RSS < 40 MiB over before;
    an answer ``within`` seconds if given."""
    before = stored(s)
    (answer, growth), slowest = watched(s, lambda: peak_growth(s, lambda: raw(
        s, request("POST", "/api/files", body, MULTIPART), deadline=120)))
    if answer.status == 201 and accept is not None:
        passed, why = accept(answer)
    else:
        passed, why = both(expect(answer, *FOUR), nothing_left(s, before))
    passed = passed and slowest < 1.0 and (not within or answer.seconds < within)
    why += f"; /healthz max {slowest:.2f} s; answered in {answer.seconds:.1f} s"
    if memory:
        passed, why = passed and growth < 40 * MIB, why + f"; peak +{growth / MIB:.0f} MiB"
    return passed, why


def data_bounded(answer: Answer) -> Result:
    data = answer.json()["data"]
    size = len(json.dumps(data, separators=(",", ":")).encode())
    return len(data) < 20_000 and size <= MIB, f"201: {len(data)} keys, {size / MIB:.1f} MiB data"


def data_grown_by_patches(s: ServerProcess) -> Result:
    fid = new_file(s)
    statuses = [call(s, "PATCH", f"/api/files/{fid}", json.dumps(
        {"data": {f"k{i}": "v" * 900 * KIB}}).encode(), JSON).status for i in range(6)]
    size = len(json.dumps(get(s, f"/api/files/{fid}")["data"], separators=(",", ":")))
    return size <= MIB and 500 not in statuses, f"{statuses}; data {size / MIB:.1f} MiB"


def tus_overflow(s: ServerProcess) -> Result:
    before, rows = stored(s), sql(s, "SELECT COUNT(*) FROM uploads")[0]
    result = both(expect(tus_create(s, 10, b"x" * 100), *FOUR), nothing_left(s, before))
    left = sql(s, "SELECT COUNT(*) FROM uploads")[0] - rows
    return result[0] and not left, f"{result[1]}; {left} upload row(s) left"


def many_parts(p: Probe) -> Result:
    parts = [part("files", os.urandom(2000), f"{i}.bin") for i in range(1500)]
    with p.server(config=CONFIG, nofile=1024) as s:
        return hostile(s, form(*parts))


def kind3(p: Probe) -> Cases:
    with p.server(config=CONFIG) as s:
        yield "one 8 MiB part header", lambda: hostile(s, form(part(
            "file", b"x", "a.txt", b"X-Pad: " + b"a" * 8 * MIB + b"\r\n")), memory=True)
        yield "32 MiB of plain fields (600 x 56 KiB values)", lambda: hostile(s, form(
            FILE, *(part(f"f{i}", b"v" * 56 * KIB) for i in range(600))), memory=True)
        yield "32 MiB of field names (600 x 56 KiB)", lambda: hostile(s, form(
            FILE, *(part(f"{i}" + "n" * 56 * KIB, b"v") for i in range(600))), data_bounded,
            memory=True)
        yield "15 MiB of field names under the part-header cap (990 x 15 KiB)", lambda: hostile(
            s, form(FILE, *(part(f"{i}" + "n" * 15 * KIB) for i in range(990))), data_bounded,
            memory=True)
        yield "20,000 empty fields (1.4 MB)", lambda: hostile(
            s, form(FILE, *(part(f"f{i}") for i in range(20_000))), data_bounded)
        yield "a 512 KiB filename (answered within 2 s)", lambda: hostile(
            s, form(part("file", b"hello", "n" * 512 * KIB + ".txt")), expect, within=2.0)
        yield "PATCHes growing data past 1 MiB", lambda: data_grown_by_patches(s)
        yield "tus creation-with-upload past Upload-Length", lambda: tus_overflow(s)
    yield "1,500 file parts under a 1,024 open-file limit", lambda: many_parts(p)


# -- kind 4: a failure path releases what it took ----------------------------------------------
def read_only_start(p: Probe, used: bool) -> Result:
    """Start on a read-only mount: a fresh one, or (``used``) a data directory a server wrote."""
    with tmpfs(p.tmp() / "ro", "300m", readonly=not used) as mount:  # above the default floor
        if used:
            with p.server(mount) as s:
                new_file(s)
            remount(mount, "ro")
        run = subprocess.run(  # noqa: S603 (this interpreter, the probed checkout's server.py)
            [sys.executable, str(p.root / "server.py"), "--port", str(free_port()),
             "--data-dir", str(mount / "data")], capture_output=True, text=True, timeout=30,
            env=p.env(), check=False)
    lines = run.stderr.strip().splitlines()
    passed = run.returncode == 2 and len(lines) == 1 and "Traceback" not in run.stderr
    return passed, f"exit {run.returncode}, {len(lines)} line(s) on stderr"


def kind4(p: Probe) -> Cases:
    if os.geteuid() != 0:
        print("4    (skipped: mounting a tmpfs needs root)")
        return
    yield "start on a fresh read-only mount: exit 2, one line", lambda: read_only_start(p, False)
    yield "start on a used data directory remounted read-only", lambda: read_only_start(p, True)
    mount = Path(tempfile.mkdtemp(prefix="probe-mnt-", dir="/tmp"))
    with tmpfs(mount, "64m"), ExitStack() as stack:
        try:
            s, floor = stack.enter_context(
                p.server(mount, config='min_free_space = "16MiB"\n')), True
        except RuntimeError as exc:  # a server without the setting: judge what can be judged
            if "min_free_space" not in str(exc):
                raise
            s, floor = stack.enter_context(p.server(mount)), False
        fid, room = new_file(s, os.urandom(MIB)), free_mib(mount)
        url = tus_create(s, 80 * MIB).headers["location"]
        yield "tus upload over the free space: 507", expect(
            tus_patch(s, url, 0, os.urandom(80 * MIB)), 507)
        time.sleep(1.0)
        free = free_mib(mount)
        yield "... the file system is not left full", (free >= 1, f"{free:.1f} MiB free")
        yield "... the space of the refused chunk is released", (
            free >= room - 1, f"{free:.1f} MiB free, {room:.1f} before the PATCH; "
            f"Upload-Offset {offset_of(s, url)}")
        yield "... then PATCH of a file's metadata: 200", lambda: expect(call(
            s, "PATCH", f"/api/files/{fid}", b'{"data": {"a": "b"}}', JSON), 200)
        yield "... then DELETE of a file: 204", lambda: expect(
            call(s, "DELETE", f"/api/files/{fid}"), 204)
        names = ("/healthz below min_free_space is not 200 ok",
                 "POST below min_free_space: 507, nothing left",
                 "tus PATCH refused below min_free_space keeps no lease")
        if not floor:
            yield from ((name, (False, "not supported")) for name in names)
            return
        call(s, "DELETE", url, headers={"Tus-Resumable": "1.0.0"})  # its space back
        small = tus_create(s, 10).headers["location"]
        with (mount / "filler").open("wb") as filler:
            while free_mib(mount) > 8:
                filler.write(bytes(MIB))
                filler.flush()
        health = call(s, "GET", "/healthz")
        yield names[0], (health.status != 200, f"{health.status} {health.body[:90]!r}")
        before = stored(s)
        yield names[1], lambda: both(expect(upload(s, os.urandom(MIB)), 507),
                                     nothing_left(s, before))
        refused = tus_patch(s, small, 0, b"abc")
        (mount / "filler").unlink()  # room again: the upload goes on at once
        yield names[2], both(expect(refused, 507), expect(tus_patch(s, small, 0, b"abc"), 204))


# -- kind 5: accept what real clients send -----------------------------------------------------
def id3_mp3() -> bytes:
    """An MP3 behind 200 KiB of cover art: ID3v2.3 with one APIC frame, 200 MPEG-1 L3 frames."""
    frame = b"\x00image/jpeg\x00\x03\x00" + bytes(i % 255 for i in range(200 * KIB))  # no 0xFF
    tag = b"APIC" + len(frame).to_bytes(4, "big") + b"\x00\x00" + frame
    size = bytes((len(tag) >> shift) & 0x7F for shift in (21, 14, 7, 0))  # synchsafe
    return b"ID3\x03\x00\x00" + size + tag + (b"\xff\xfb\x90\x00" + bytes(413)) * 200


def field(name: str, value: Any) -> Callable[[ServerProcess, Answer], Result]:
    def check(s: ServerProcess, answer: Answer) -> Result:
        got = answer.json().get(name) if answer.status == 201 else None
        return got == value, f"{answer.status} {answer.code} {name}={got!r}".replace("  ", " ")
    return check


def status(*statuses: int, code: str = "") -> Callable[[ServerProcess, Answer], Result]:
    return lambda s, answer: expect(answer, *statuses, code=code)


def decoded_or_refused(s: ServerProcess, answer: Answer) -> Result:
    if answer.status != 201:
        return expect(answer, *FOUR)
    body = call(s, "GET", answer.json()["url"] + "/content").body
    return body == b"hello base64 world", f"201, stored {body[:30]!r}"


def charset_inline(s: ServerProcess) -> Result:
    fid = new_file(s, "h\u00e9llo w\u00f6rld\n".encode(), "t.txt")
    ctype = call(s, "GET", f"/api/files/{fid}/content?disposition=inline").headers.get(
        "content-type", "")
    return "charset=utf-8" in ctype.lower(), ctype


def tus_file(s: ServerProcess, length: int, delete: bool) -> Result:
    """An upload of ``length`` bytes (sent in one PATCH), terminated after if ``delete``: is
    GET /api/files/{id} there (200) or gone (404) as it should be?"""
    url = tus_create(s, length).headers["location"]
    if length:
        tus_patch(s, url, 0, b"x" * length)
    deleted = call(s, "DELETE", url, headers={"Tus-Resumable": "1.0.0"}) if delete else None
    got = call(s, "GET", "/api/files/" + url.rsplit("/", 1)[1]).status
    return got == (404 if delete else 200), (f"DELETE {deleted.status}, " if deleted else "") + \
        f"then GET /api/files/{{id}} {got}"


def empty_range(s: ServerProcess, spec: str, want: int) -> Result:
    """docs/api.md: on an empty file only a non-zero suffix range is satisfiable (the whole,
    empty file, sent as 200); every other range is 416 with Content-Range bytes */0."""
    fid = str(upload(s, b"", "empty.bin").json()["id"])
    answer = call(s, "GET", f"/api/files/{fid}/content", headers={"Range": spec})
    got = answer.headers.get("content-range", "")
    return answer.status == want and (want != 416 or got == "bytes */0"), f"{answer.status} {got}"


def bad_header(line: bytes) -> Callable[[ServerProcess], Answer]:
    """Two file parts, the second with a malformed header ``line``."""
    return lambda s: post_form(s, part("files", b"a", "a.txt"), part("files", b"b", "b.txt", line))


CAFE = "caf\u00e9.txt"
K5: list[tuple[str, Callable[[ServerProcess], Answer], Callable[[ServerProcess, Answer], Result]]]
K5 = [
    ("preamble before the first boundary", lambda s: post_form(s, FILE, pre=b"preamble\r\n"),
     status(201)),
    ("epilogue after the closing boundary", lambda s: post_form(s, FILE, post=b"epilogue\r\n"),
     status(201)),
    ("empty form --b--", post_form, status(400, code="file_field_missing")),
    ("filename C:\\Users\\alex\\report.txt", lambda s: post_form(
        s, part("file", b"r", "C:\\Users\\alex\\report.txt")), field("filename", "report.txt")),
    ("part headers in reverse order", lambda s: post_form(
        s, b'Content-Type: text/plain\r\nContent-Disposition: form-data; name="file"; '
        b'filename="r.txt"\r\n\r\nreversed'), status(201)),
    ("a part header line without a colon", bad_header(b"No colon here\r\n"),
     status(400, code="malformed_multipart")),
    ("a part header with an empty name", bad_header(b": value\r\n"),
     status(400, code="malformed_multipart")),
    ("a control character in a part header", bad_header(b"X-Note: a\x01b\r\n"),
     status(400, code="malformed_multipart")),
    ("part with Content-Transfer-Encoding: base64", lambda s: post_form(s, part(
        "file", base64.b64encode(b"hello base64 world"), "b.txt",
        b"Content-Transfer-Encoding: base64\r\n")), decoded_or_refused),
    ("raw UTF-8 X-Filename: caf\u00e9.txt", lambda s: raw(s, request(
        "POST", "/api/files", b"x", f"X-Filename: {CAFE}")), field("filename", CAFE)),
    ("raw UTF-8 Content-Disposition filename", lambda s: raw(s, request(
        "POST", "/api/files", b"x", f'Content-Disposition: attachment; filename="{CAFE}"')),
     field("filename", CAFE)),
    ("MP3 behind a 200 KiB ID3v2 tag on an audio/* route", lambda s: upload(
        s, id3_mp3(), "song.mp3", "audio/mpeg", "/api/audio"), field("mime_type", "audio/mpeg")),
]


def kind5(p: Probe) -> Cases:
    with p.server(config=CONFIG) as s:
        for name, send, check in K5:
            def case(send: Callable[[ServerProcess], Answer] = send,
                     check: Callable[[ServerProcess, Answer], Result] = check) -> Result:
                before = stored(s)
                result = check(s, answer := send(s))
                return result if answer.status == 201 else both(result, nothing_left(s, before))
            yield name, case
        yield "UTF-8 text ?disposition=inline has charset=utf-8", lambda: charset_inline(s)
        yield "tus Upload-Length: 0 is a file at creation", lambda: tus_file(s, 0, False)
        yield "tus DELETE of a completed upload removes the file", lambda: tus_file(s, 5, True)
        yield "Range bytes=0- on an empty file: 416", lambda: empty_range(s, "bytes=0-", 416)
        yield "Range bytes=-5 on an empty file: 200", lambda: empty_range(s, "bytes=-5", 200)


# -- kind 6: clients ride out a restart and never damage the user's files ----------------------
def cli(p: Probe, url: str, *args: str, cwd: Path | None = None, wait: bool = True) -> Any:
    """The probed checkout's own command-line client (its tornado_files first on the path)."""
    env = {**p.env(), "PYTHONPATH": str(p.root), "TORNADO_FILES_URL": url}
    argv = [sys.executable, "-m", "tornado_files", *args]
    if not wait:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # noqa: S603
                                text=True, env=env, cwd=cwd or p.tmp())
    return subprocess.run(argv, capture_output=True, text=True, env=env,  # noqa: S603
                          cwd=cwd or p.tmp(), timeout=120, check=False)


def described(p: Probe, s: ServerProcess) -> Result:
    lines = [line.split() for line in cli(p, s.url, "--help").stdout.splitlines()]
    bare = [c for c in ("upload", "download", "ls", "rm", "fsck")
            if not any(words[:1] == [c] and len(words) > 1 for words in lines)]
    return not bare, f"without a description: {bare}" if bare else "every command described"


def download_beside(p: Probe, s: ServerProcess, local: bytes) -> Result:
    fid = new_file(s, os.urandom(300 * KIB), "notes.bin")
    (mine := (where := p.tmp()) / "notes.bin").write_bytes(local)
    run = cli(p, s.url, "download", fid, cwd=where)
    same = mine.read_bytes() == local
    return same, f"exit {run.returncode}; the local file {'unchanged' if same else 'CHANGED'}"


def upload_rides_out_restart(p: Probe) -> Result:
    tmp, port, digest = p.tmp(), free_port(), hashlib.sha256()
    with (big := tmp / "big.bin").open("wb") as out:
        for _ in range(75):
            digest.update(chunk := os.urandom(4 * MIB))
            out.write(chunk)
    with p.server(tmp, port=port) as first:
        client = cli(p, first.url, "upload", str(big), "--state", str(tmp / "state.json"),
                     wait=False)
        offset, leased, deadline = 0, None, time.monotonic() + 60
        # Stopped during a PATCH (one holds the lease), past the first 16 MiB.
        while (offset < 16 * MIB or not leased) and client.poll() is None \
                and time.monotonic() < deadline:
            with suppress(sqlite3.Error, TypeError):
                offset, leased = sql(first, "SELECT offset, lease_token FROM uploads")
            time.sleep(0.01)
        terminate(first.process)
    try:
        if client.poll() is not None:
            return False, f"the client ended before the restart (exit {client.returncode})"
        time.sleep(2)
        with p.server(tmp, port=port) as second:
            out, err = client.communicate(timeout=300)
            if client.returncode != 0:
                return False, f"client exit {client.returncode}: {err.strip()[-100:]!r}"
            same = get(second, "/api/files/" + out.split("\t")[0])["sha256"] == digest.hexdigest()
        return same, f"stopped during a PATCH at {offset / MIB:.0f} MiB; sha256 " + (
            "right" if same else "WRONG")
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()


def kind6(p: Probe) -> Cases:
    name = "server starts with the client's TORNADO_FILES_URL/TOKEN set"
    try:
        with p.server(env={"TORNADO_FILES_URL": "http://127.0.0.1:9",
                           "TORNADO_FILES_TOKEN": "secret"}):
            yield name, (True, "started")
    except RuntimeError as exc:
        yield name, (False, str(exc).strip().splitlines()[-1][:100])
    with p.server() as s:
        yield "CLI --help describes each command", lambda: described(p, s)
        yield "CLI ls --sort -size exits 0", lambda: (
            (run := cli(p, s.url, "ls", "--sort", "-size")).returncode == 0,
            f"exit {run.returncode} {run.stderr.strip()[-80:]}")
        notes = b"the user's own notes\n"
        yield "download beside a smaller unrelated file of that name", lambda: download_beside(
            p, s, notes * 50)
        yield "download beside a larger unrelated file of that name", lambda: download_beside(
            p, s, notes * 50_000)
    yield "CLI upload of 300 MiB rides out a server restart", lambda: upload_rides_out_restart(p)
    license_file = (p.root / "LICENSE").is_file()
    yield "LICENSE at the root", (license_file, "present" if license_file else "missing")
    readme = (p.root / "README.md").read_text()
    example = "--data-binary" in readme and "-H 'Content-Type:" in readme
    yield "README: a raw upload example with -H 'Content-Type:", (
        example, "there" if example else "missing")


KINDS = {1: kind1, 2: kind2, 3: kind3, 4: kind4, 5: kind5, 6: kind6}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-root", type=Path, default=ROOT,
                        help="the checkout whose server.py and client are probed (default: this)")
    parser.add_argument("--kinds", default="1,2,3,4,5,6", help="comma-separated kinds to run")
    args = parser.parse_args(argv)
    summary: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="tornado-files-probe-") as base:
        probe = Probe(args.server_root.resolve(), Path(base))
        print(f"probing {probe.root}")
        for kind in (int(k) for k in args.kinds.split(",")):
            tried = failed = 0
            try:
                for name, work in KINDS[kind](probe):
                    passed, why = attempt(work) if callable(work) else work
                    print(f"{kind}    {name:<66} {'PASS' if passed else 'FAIL'}  {why}",
                          flush=True)
                    tried, failed = tried + 1, failed + (not passed)
            except Exception as exc:  # a server that would not start cuts the kind short
                print(f"{kind}    (aborted) FAIL  {type(exc).__name__}: {str(exc)[:300]}")
                tried, failed = tried + 1, failed + 1
            summary[str(kind)] = {"tried": tried, "failed": failed}
            if kind == 2:
                summary["fuzz"] = run_fuzz(probe)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
