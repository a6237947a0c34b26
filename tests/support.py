"""Test helpers: multipart bodies, JSON:API assertions, a raw-socket HTTP client."""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tornado.httpclient import HTTPResponse

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
PDF_HEAD = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
# One MPEG-1 Layer III frame: 128 kbit/s at 44.1 kHz is 417 bytes, header included.
MP3_FRAME = b"\xff\xfb\x90\x00" + bytes(413)


def id3v2_tag(cover_size: int, content: bytes = MP3_FRAME * 200) -> bytes:
    """``content`` behind an ID3v2.3 tag holding one APIC (cover art) frame of
    ``cover_size`` bytes (no 0xFF in them: a frame sync is where the MP3 starts)."""
    picture = b"\x00image/jpeg\x00\x03\x00" + (b"cover art " * cover_size)[:cover_size]
    frame = b"APIC" + len(picture).to_bytes(4, "big") + b"\x00\x00" + picture
    size = len(frame)
    synchsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + synchsafe + frame + content


@dataclass
class Part:
    name: str
    content: bytes
    filename: str | None = None
    content_type: str | None = None


def multipart(parts: list[Part], boundary: str | None = None) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request."""
    boundary = boundary or uuid.uuid4().hex
    out = bytearray()
    for part in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if part.content_type or part.filename is not None:
            out += f"Content-Type: {part.content_type or 'application/octet-stream'}\r\n".encode()
        out += b"\r\n" + part.content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def error_of(response: HTTPResponse, status: int, code: str) -> dict[str, Any]:
    """Assert a JSON:API error document with that status and code; return the error."""
    assert response.code == status, (response.code, response.body[:500])
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    document = json.loads(response.body)
    error = document["errors"][0]
    assert error["status"] == str(status)
    assert error["code"] == code
    assert uuid.UUID(error["id"]).version == 4
    return error


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int
    raw: bytes = field(repr=False, default=b"")

    def json(self) -> Any:
        return json.loads(self.body)


def _parse_response(data: bytes) -> tuple[int, dict[str, str], bytes] | None:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if status == 100:
        return _parse_response(rest)
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None
    return status, headers, rest[:length]


def raw_request(
    port: int,
    head: bytes,
    chunks: Any = (),
    *,
    timeout: float = 10.0,
    pause_after_head: float = 0.0,
) -> RawResponse:
    """Send ``head`` then the body ``chunks`` (an iterable of bytes) on a real socket, reading
    the response while sending — as curl does — and stop sending once it has arrived.
    ``sent`` is how many body bytes the server let us send."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setblocking(False)
    deadline = time.monotonic() + timeout
    received = bytearray()
    sent = 0
    try:
        _send_all(sock, head, deadline, received)
        if pause_after_head:
            time.sleep(pause_after_head)
            _drain(sock, received)
        for chunk in chunks:
            _drain(sock, received)
            if _parse_response(bytes(received)) is not None:
                break
            try:
                sent += _send_all(sock, chunk, deadline, received)
            except (BrokenPipeError, ConnectionResetError):
                break
        while _parse_response(bytes(received)) is None and time.monotonic() < deadline:
            if not _drain(sock, received, wait=0.05):
                break
    finally:
        sock.close()
    parsed = _parse_response(bytes(received))
    if parsed is None:
        raise AssertionError(f"no complete response; got {bytes(received[:300])!r}")
    status, headers, body = parsed
    return RawResponse(status, headers, body, sent, bytes(received))


def _send_all(sock: socket.socket, data: bytes, deadline: float, received: bytearray) -> int:
    """Send ``data`` unless a response arrives first; returns the bytes sent."""
    view = memoryview(data)
    total = 0
    while view:
        if time.monotonic() > deadline:
            raise TimeoutError("send timed out")
        try:
            n = sock.send(view)
            view = view[n:]
            total += n
        except BlockingIOError:
            _drain(sock, received, wait=0.01)
            if _parse_response(bytes(received)) is not None:
                break
    return total


def _drain(sock: socket.socket, received: bytearray, wait: float = 0.0) -> bool:
    """Read what is there; False once the peer closed."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return True
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    if not data:
        return False
    received += data
    return True


def read_until_closed(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a new connection and read everything until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received
