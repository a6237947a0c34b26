"""A seeded fuzzer of what clients send: mutated multipart bodies and mutated raw requests, sent
over real sockets; every answer must be 2xx or a JSON:API 4xx — never a 5xx, never silence.

Used by tests/http/test_fuzz.py (bounded, in the suite) and scripts/fuzz.py (long runs against
a ``python server.py`` subprocess). Each case is built from ``random.Random(f"{seed}:{index}")``,
so a failure is reproduced from its seed and index alone.

- Multipart cases: a valid form (a ``file`` or ``files`` parts, ``data``, plain fields, random
  names and contents), then 1-3 mutations of the body (bit flips, truncation, duplicated or
  removed CRLFs, boundary tweaks, part-header mutations, oversized lines, random bytes in
  names); sent whole with its true ``Content-Length`` (or chunked), so the server always has a
  complete request to answer.
- Raw cases: a whole valid request (raw upload, multipart upload, listing, metadata PATCH,
  ranged download), then 1-3 mutations of any of its bytes — request line, headers, framing
  and body alike. Such a request may be incomplete: a body shorter than declared must be
  answered when ``idle_timeout`` runs out (408); a request whose header block never ends is
  not a request yet, so the client closes its side and the server must close too.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Tornado reads the header block up to 64 KiB (max_header_size) and ends it at \r?\n\r?\n.
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MAX_HEADER = 64 * 1024


@dataclass
class Case:
    kind: str  # "multipart" or "raw"
    index: int
    request: bytes
    mutations: list[str]

    @property
    def header_complete(self) -> bool:
        return _HEADER_END.search(self.request[:_MAX_HEADER + 4]) is not None


@dataclass
class Outcome:
    case: Case
    status: int | None  # None: the server closed without answering
    problem: str | None  # why this answer is not acceptable; None if it is
    elapsed: float
    head: bytes = b""
    body: bytes = field(default=b"", repr=False)


# -- building valid requests --------------------------------------------------------------
def _name(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.6:
        return rng.choice([b"report.pdf", b"a.txt", "résumé.txt".encode(), b"x y.png",
                           "日本.bin".encode(), b"..\\..\\etc\\passwd", b"", b"a" * 300])
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))  # random bytes


def _content(rng: random.Random) -> bytes:
    size = rng.choice([0, 1, 17, 300, 4096, rng.randrange(1, 9000)])
    prefix = rng.choice([b"", b"%PDF-1.4\n", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"--"])
    return (prefix + rng.randbytes(size))[:max(size, len(prefix))]


def _form(rng: random.Random, boundary: bytes) -> bytes:
    parts: list[bytes] = []
    for _ in range(rng.randrange(0, 3)):
        name = rng.choice([b"note", b"title", b"data", b"x"])
        value = (json.dumps({"k": rng.randrange(100), "s": "v"}).encode() if name == b"data"
                 else rng.randbytes(rng.randrange(0, 50)))
        parts.append(b'Content-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value)
    field_name = rng.choice([b"file", b"files", b"files[]", b"file"])
    for _ in range(1 if field_name == b"file" else rng.randrange(1, 4)):
        ctype = rng.choice([b"application/octet-stream", b"text/plain", b"image/png", b""])
        header = (b'Content-Disposition: form-data; name="' + field_name + b'"; filename="'
                  + _name(rng) + b'"')
        if ctype:
            header += b"\r\nContent-Type: " + ctype
        parts.insert(rng.randrange(len(parts) + 1), header + b"\r\n\r\n" + _content(rng))
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + boundary + b"--\r\n"


def _boundary(rng: random.Random) -> bytes:
    return rng.choice([b"B", b"----WebKitFormBoundary" + rng.randbytes(8).hex().encode(),
                       rng.randbytes(12).hex().encode(), b"a'()+_,-./:=?"])


def _post(path: bytes, headers: list[bytes], body: bytes, chunked: bool = False) -> bytes:
    if chunked:
        framing = [b"Transfer-Encoding: chunked"]
        pieces = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        body = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
    else:
        framing = [b"Content-Length: " + str(len(body)).encode()]
    head = [b"POST " + path + b" HTTP/1.1", b"Host: 127.0.0.1", *headers, *framing]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _valid_request(rng: random.Random, file_id: str) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return _post(b"/api/files", [b"X-Filename: " + _name(rng).replace(b"\r", b"")
                                     .replace(b"\n", b"")], _content(rng), rng.random() < 0.3)
    if kind == 1:
        boundary = _boundary(rng)
        return _post(b"/api/files",
                     [b'Content-Type: multipart/form-data; boundary="' + boundary + b'"'],
                     _form(rng, boundary), rng.random() < 0.3)
    if kind == 2:
        query = rng.choice([b"limit=2&sort=size", b"added_since=2026-01-01T00:00:00Z",
                            b"filename=a&data.k=1", b"size_greater_than=10"])
        return b"GET /api/files?" + query + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    if kind == 3:
        body = json.dumps({"filename": "n.txt", "data": {"k": rng.randrange(9)}}).encode()
        return (b"PATCH /api/files/" + file_id.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)
    return (b"GET /api/files/" + file_id.encode() + b"/content HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Range: bytes=" + rng.choice([b"0-3", b"2-", b"-5", b"9-1"]) + b"\r\n\r\n")


# -- mutations ----------------------------------------------------------------------------
def _bit_flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[:rng.randrange(len(data) + 1)]


def _crlf(rng: random.Random, data: bytes) -> bytes:
    spots = [m.start() for m in re.finditer(rb"\r\n", data)]
    if not spots:
        return data
    at = rng.choice(spots)
    if rng.random() < 0.5:
        return data[:at] + b"\r\n" + data[at:]  # duplicated
    return data[:at] + data[at + 2:]  # removed


def _boundary_tweak(rng: random.Random, data: bytes) -> bytes:
    spots = [m.start() for m in re.finditer(rb"--", data)]
    if not spots:
        return data
    at = rng.choice(spots)
    tweak = rng.choice([b"-", b"", b"--", b" ", b"x", b"\r\n--"])
    return data[:at] + tweak + data[at + rng.randrange(0, 4):]


def _header_mutation(rng: random.Random, data: bytes) -> bytes:
    replacements = [
        (rb'name="', rng.choice([b'name=', b'name="\xff', b'NAME="', b'name*="', b'name=""'])),
        (rb"Content-Disposition", rng.choice([
            b"Content-Disposition\x00", b"content-disposition", b"X",
            b"Content-Disposition: a\r\nContent-Disposition"])),
        (rb"filename=\"", rng.choice([b"filename*=UTF-8''", b'filename="\r\n', b"filename="])),
        (rb"Content-Type: ", rng.choice([b"Content-Type: multipart/mixed; boundary=Z",
                                         b"Content-Type:", b"Content-Type: \xff\xfe"])),
        (rb"Content-Length: ", rng.choice([b"Content-Length: 0\r\nContent-Length: ",
                                           b"Content-Length: \xb2", b"Content-Length: +",
                                           b"Transfer-Encoding: chunked\r\nContent-Length: "])),
        (rb"boundary=", rng.choice([b"boundary=\"\"", b"boundary=", b"BOUNDARY=x;boundary=",
                                    b"charset=utf-8; boundary=" + b"b" * 100])),
    ]
    rng.shuffle(replacements)
    for needle, replacement in replacements:
        spots = [m.start() for m in re.finditer(needle, data)]
        if spots:
            at = rng.choice(spots)
            return data[:at] + replacement + data[at + len(needle.replace(b"\\", b"")):]
    return data


def _oversized_line(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    line = rng.choice([b"a", b"-", b"\xff", b" "]) * rng.choice([1000, 70_000, 200_000])
    return data[:at] + line + data[at:]


def _random_name(rng: random.Random, data: bytes) -> bytes:
    spots = [m.end() for m in re.finditer(rb'(?:file)?name="', data)]
    if not spots:
        return data
    at = rng.choice(spots)
    end = data.find(b'"', at)
    end = end if end != -1 else at
    return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30))) + data[end:]


MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "bit_flip": _bit_flip, "truncate": _truncate, "crlf": _crlf,
    "boundary": _boundary_tweak, "header": _header_mutation, "oversized_line": _oversized_line,
    "random_name": _random_name,
}


def _mutate(rng: random.Random, data: bytes, mutations: list[str]) -> bytes:
    for _ in range(rng.randrange(1, 4)):
        name = rng.choice(list(MUTATIONS))
        mutations.append(name)
        data = MUTATIONS[name](rng, data)
    return data


def multipart_case(seed: int, index: int) -> Case:
    rng = random.Random(f"{seed}:multipart:{index}")
    boundary = _boundary(rng)
    mutations: list[str] = []
    body = _mutate(rng, _form(rng, boundary), mutations)
    header = b"Content-Type: multipart/form-data; boundary=" + boundary
    if rng.random() < 0.2:
        mutations.append("header")
        header = _header_mutation(rng, header)
    return Case("multipart", index, _post(b"/api/files", [header, b"Connection: close"], body,
                                          chunked=rng.random() < 0.2), mutations)


def raw_case(seed: int, index: int, file_id: str) -> Case:
    rng = random.Random(f"{seed}:raw:{index}")
    mutations: list[str] = []
    request = _mutate(rng, _valid_request(rng, file_id), mutations)
    return Case("raw", index, request, mutations)


def cases(seed: int, multipart_count: int, raw_count: int, file_id: str) -> Iterator[Case]:
    """Multipart and raw cases interleaved, all from ``seed``."""
    for index in range(max(multipart_count, raw_count)):
        if index < multipart_count:
            yield multipart_case(seed, index)
        if index < raw_count:
            yield raw_case(seed, index, file_id)


# -- sending and judging ------------------------------------------------------------------
def _response(data: bytes) -> tuple[int, bytes, bytes] | None:
    """(status, head, body) of the first complete final response in ``data``, if any."""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return None
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
        if match is None:
            return 0, head, rest  # not HTTP: judged as a problem
        status = int(match.group(1))
        if status == 100:
            data = rest
            continue
        length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
        size = int(length.group(1)) if length else 0
        if len(rest) < size:
            return None
        return status, head, rest[:size]


def judge(status: int, head: bytes, body: bytes) -> str | None:
    """None if the answer is acceptable: 2xx/3xx, or a 4xx JSON:API error document."""
    if status >= 500 or status < 200:
        return f"status {status}"
    if status < 400:
        return None
    if b"application/json" not in head.lower():
        return f"{status} without a JSON body"
    try:
        error = json.loads(body)["errors"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"{status} whose body is not a JSON:API error document"
    if error.get("status") != str(status) or not isinstance(error.get("code"), str):
        return f"{status} with error {error!r}"
    return None


def send(port: int, case: Case, deadline: float = 20.0) -> Outcome:
    """Send the case on a new connection and read until an answer or a close."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=deadline)
    sock.setblocking(False)
    received = bytearray()
    closed = False
    try:
        view = memoryview(case.request)
        while view and not closed:
            _, writable, _ = select.select([], [sock], [], 0.05)
            try:
                if writable:
                    view = view[sock.send(view[:256 * 1024]):]
                closed = _read(sock, received)
            except (BrokenPipeError, ConnectionResetError):
                closed = True  # the server answered (or gave up) before taking it all
            if _response(bytes(received)) is not None or time.monotonic() - started > deadline:
                break
        if not case.header_complete:
            # Not a request yet: say so by closing our side; the server must close too.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        while not closed and _response(bytes(received)) is None:
            if time.monotonic() - started > deadline:
                return Outcome(case, None, "neither an answer nor a close", deadline)
            select.select([sock], [], [], 0.05)
            closed = _read(sock, received)
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    parsed = _response(bytes(received))
    if parsed is None:
        # Silence is acceptable only for what is not a request yet (no end of headers).
        problem = None if not case.header_complete else \
            f"closed without an answer (got {bytes(received[:100])!r})"
        return Outcome(case, None, problem, elapsed)
    status, head, body = parsed
    return Outcome(case, status, judge(status, head, body), elapsed, head, body)


def _read(sock: socket.socket, received: bytearray) -> bool:
    """Read what is there; True once the peer closed."""
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True
        if not chunk:
            return True
        received += chunk


def describe(outcome: Outcome, seed: int) -> str:
    case = outcome.case
    return (f"{case.kind} case {case.index} (seed {seed}, mutations {case.mutations}): "
            f"{outcome.problem}; request {case.request[:200]!r}; answer {outcome.head[:200]!r} "
            f"{outcome.body[:200]!r}")


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        key = f"{outcome.case.kind} {outcome.status if outcome.status is not None else 'closed'}"
        statuses[key] = statuses.get(key, 0) + 1
    return {"cases": len(outcomes), "statuses": dict(sorted(statuses.items())),
            "problems": sum(1 for o in outcomes if o.problem is not None),
            "slowest_s": round(max((o.elapsed for o in outcomes), default=0.0), 2)}
