"""BodyStream (web/server.py): Tornado's stream with large reads handed over uncopied. Every
byte must arrive once and in order whatever the shape of the reads; real sockets, no mocks."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading

import pytest
from tornado.iostream import StreamClosedError

from tornado_files.web.edge import HANDOVER, READ_CHUNK, BodyStream


def queue_until_full(sock: socket.socket, source: bytes) -> int:
    """Send without blocking until the socket's queue is full; return how much was queued."""
    sock.setblocking(False)
    sent = 0
    try:
        while sent < len(source):
            sent += sock.send(source[sent:sent + 65536])
    except BlockingIOError:
        pass
    return sent


def pair() -> tuple[BodyStream, socket.socket]:
    reader, writer = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    return BodyStream(reader, read_chunk_size=READ_CHUNK), writer


def test_a_large_read_is_handed_over_and_later_reads_do_not_touch_it() -> None:
    source = random.Random(1).randbytes(8 * READ_CHUNK)

    async def scenario() -> None:
        stream, writer = pair()
        queued = queue_until_full(writer, source)
        assert queued >= HANDOVER, "the socket queue must hold more than one hand-over"
        first = await stream.read_bytes(READ_CHUNK, partial=True)
        assert isinstance(first, bytearray)
        assert len(first) >= HANDOVER
        assert first == source[:len(first)]
        kept = bytes(first)
        writer.setblocking(True)
        rest = threading.Thread(target=writer.sendall, args=(source[queued:],))
        rest.start()
        chunks = [first]
        total = len(first)
        while total < len(source):
            chunk = await stream.read_bytes(READ_CHUNK, partial=True)
            chunks.append(chunk)
            total += len(chunk)
        rest.join()
        # The handed-over buffer was not reused for later reads.
        assert first == kept
        assert b"".join(chunks) == source
        stream.close()
        writer.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("seed", range(6))
def test_reads_of_random_shapes_get_every_byte_in_order(seed: int) -> None:
    """Two requests on one connection, as Tornado reads them: headers by delimiter, framing by
    exact counts and bodies by partial reads, from a sender that splits at random points."""
    rng = random.Random(seed)
    requests: list[tuple[bytes, bytearray, list[bytearray]]] = []
    for n in range(2):
        body = bytearray(rng.randbytes(2 * READ_CHUNK + rng.randrange(READ_CHUNK)))
        for at in range(0, len(body) - 4, 50_000):  # what a header search must not find
            body[at:at + 4] = b"\r\n\r\n"
        head = f"POST /{n} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
        requests.append((head, body, [body[at:at + size] for at, size in _spans(rng, len(body))]))
    wire = b"".join(head + b"".join(struct.pack(">I", len(f)) + f for f in frames)
                    for head, _, frames in requests)
    steps = []
    while sum(steps) < len(wire):
        steps.append(rng.choice((1, 7, 4096, 65536, 300_000, READ_CHUNK)))

    def send(sock: socket.socket) -> None:
        at = 0
        for step in steps:
            sock.sendall(wire[at:at + step])
            at += step
        sock.close()

    async def scenario() -> None:
        stream, writer = pair()
        writer.setblocking(True)
        sender = threading.Thread(target=send, args=(writer,))
        sender.start()
        for head, body, frames in requests:
            got_head = await stream.read_until(b"\r\n\r\n", max_bytes=65536)
            assert got_head == head
            assert type(got_head) is bytes
            received = bytearray()
            for frame in frames:
                (declared,) = struct.unpack(">I", await stream.read_bytes(4))
                assert declared == len(frame)
                left = len(frame)
                while left:
                    chunk = await stream.read_bytes(min(left, READ_CHUNK), partial=True)
                    received += chunk
                    left -= len(chunk)
            assert received == body
        with pytest.raises(StreamClosedError):
            await stream.read_bytes(1)
        sender.join()

    asyncio.run(scenario())


def _spans(rng: random.Random, length: int) -> list[tuple[int, int]]:
    spans, at = [], 0
    while at < length:
        size = min(length - at, rng.choice((1, 100, 70_000, HANDOVER, 2 * READ_CHUNK)))
        spans.append((at, size))
        at += size
    return spans


def test_the_next_request_is_read_from_new_bytes_after_a_hand_over() -> None:
    """Keep-alive: a body read whole, then the next request's headers. The header search must
    not look into the body that was handed over (it contains the delimiter)."""
    body = (b"\r\n\r\n" + bytes(1000)) * (HANDOVER // 1000 + 50)
    head = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"

    async def scenario() -> None:
        stream, writer = pair()
        try:
            writer.sendall(body)
            got = await stream.read_bytes(READ_CHUNK, partial=True)
            assert isinstance(got, bytearray), "one read, handed over"
            assert got == body
            writer.sendall(head)
            assert await stream.read_until(b"\r\n\r\n", max_bytes=65536) == head
        finally:
            stream.close()
            writer.close()

    asyncio.run(scenario())


def test_with_the_hand_over_off_a_large_read_arrives_as_bytes() -> None:
    """What a multipart request asks for (its parser takes bytes): the same bytes, as bytes,
    and the switch holds per request on a kept-alive connection."""
    body = random.Random(4).randbytes(HANDOVER + 4096)

    async def scenario() -> None:
        stream, writer = pair()
        try:
            for hand_over in (False, True, False):
                stream.hand_over = hand_over
                writer.sendall(body)
                got = await stream.read_bytes(READ_CHUNK, partial=True)
                assert type(got) is (bytearray if hand_over else bytes)
                assert got == body
        finally:
            stream.close()
            writer.close()

    asyncio.run(scenario())


def test_read_into_still_reads_into_the_callers_buffer() -> None:
    source = random.Random(2).randbytes(2 * READ_CHUNK)

    async def scenario() -> None:
        stream, writer = pair()
        queued = queue_until_full(writer, source)
        first = await stream.read_bytes(READ_CHUNK, partial=True)
        assert isinstance(first, bytearray), "a hand-over, then a read into a caller's buffer"
        writer.setblocking(True)
        sender = threading.Thread(target=writer.sendall, args=(source[queued:],))
        sender.start()
        target = bytearray(len(source) - len(first))
        assert await stream.read_into(target) == len(target)
        sender.join()
        assert bytes(first) + target == source
        stream.close()
        writer.close()

    asyncio.run(scenario())


def test_a_peer_that_closes_ends_the_read_after_what_it_sent() -> None:
    source = random.Random(3).randbytes(HANDOVER + 10)

    async def scenario() -> None:
        stream, writer = pair()
        writer.setblocking(True)
        writer.sendall(source)
        writer.close()
        got = bytearray()
        while len(got) < len(source):
            got += await stream.read_bytes(READ_CHUNK, partial=True)
        assert got == source
        with pytest.raises(StreamClosedError):
            await stream.read_bytes(READ_CHUNK, partial=True)

    asyncio.run(scenario())


def test_a_reset_connection_closes_the_stream() -> None:
    async def scenario() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        listener.close()
        stream = BodyStream(accepted, read_chunk_size=READ_CHUNK)
        # A zero linger makes close() send a reset.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        with pytest.raises(StreamClosedError):
            await stream.read_bytes(READ_CHUNK, partial=True)
        assert stream.closed()
        assert isinstance(stream.error, ConnectionResetError)

    asyncio.run(scenario())
