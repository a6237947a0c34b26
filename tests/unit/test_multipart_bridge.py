"""The parser bridge fed the same body split at every point gives the same files and data
(a habit taken from streaming-form-data, the parser used before), with the real disk store and
libmagic underneath."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from tests.support import PNG_1PX, Part, multipart
from tornado_files.blocking import Offload
from tornado_files.errors import MalformedMultipart, TornadoFilesError
from tornado_files.multipart import MultipartBridge
from tornado_files.policy import UploadPolicy
from tornado_files.session import UploadSession
from tornado_files.sniff import Sniffer
from tornado_files.storage.disk import DiskBlobStore

BOUNDARY = "----boundary7MA4YWxkTrZu0gW"
BODY, CONTENT_TYPE = multipart([
    Part("data", b'{"k": "v"}'),
    Part("title", b"hello\r\nworld"),
    Part("files", PNG_1PX, "a.png", "image/png"),
    Part("files", b"\r\n--" + BOUNDARY[:-3].encode() + b"\r\n tricky", "b.bin"),
    Part("files", b"", "empty.txt", "text/plain"),
], boundary=BOUNDARY)


class Journal:
    """Intents kept in a set: the journal is not what these tests are about."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def add_intent(self, key: str, store: str, created: object) -> None:
        self.keys.add(key)

    async def clear_intents(self, store: str, keys: list[str]) -> None:
        self.keys.difference_update(keys)


_POOL = Offload(2)
_SNIFFER = Sniffer(_POOL)  # one libmagic handle for the hundreds of runs below


async def _run(root: Path, pieces: list[bytes]) -> tuple[list[tuple[str, int, str, str]], dict]:
    offload = _POOL
    store = DiskBlobStore(root, offload)
    await store.startup()
    policy = UploadPolicy("/api/files", 1 << 20, 1 << 20)
    session = UploadSession(policy=policy, store=store, intents=Journal(), sniffer=_SNIFFER,
                            offload=offload, sniff_bytes=64 * 1024, declared_length=None,
                            received=lambda: 0)
    bridge = MultipartBridge({"Content-Type": CONTENT_TYPE}, session, 64 * 1024, 1 << 20)
    try:
        for piece in pieces:
            await bridge.feed(piece)
        single, data = bridge.finish()
        files = await session.commit()
        assert not single
        return [(f.original_filename, f.facts.size, f.facts.sha256, f.declared_type)
                for f in files if f.facts is not None], data
    except TornadoFilesError:
        await session.abort()
        raise


def test_every_split_point_gives_the_same_result(tmp_path):
    expected = asyncio.run(_run(tmp_path / "whole", [BODY]))
    files, data = expected
    assert data == {"k": "v", "title": "hello\r\nworld"}
    assert files[0] == ("a.png", len(PNG_1PX), hashlib.sha256(PNG_1PX).hexdigest(), "image/png")
    assert [f[0] for f in files] == ["a.png", "b.bin", "empty.txt"]
    assert files[2][1:] == (0, hashlib.sha256(b"").hexdigest(), "text/plain")
    for cut in range(len(BODY) + 1):  # every one of them, headers and payloads alike
        got = asyncio.run(_run(tmp_path / f"s{cut}", [BODY[:cut], BODY[cut:]]))
        assert got == expected, f"split at {cut}"


def test_byte_by_byte(tmp_path):
    expected = asyncio.run(_run(tmp_path / "whole", [BODY]))
    assert asyncio.run(_run(tmp_path / "bytes", [bytes([b]) for b in BODY])) == expected


@pytest.mark.parametrize("cut", [10, 150, len(BODY) // 2, len(BODY) - 3])
def test_truncated_body_is_malformed_and_leaves_nothing(tmp_path, cut):
    with pytest.raises(MalformedMultipart):
        asyncio.run(_run(tmp_path, [BODY[:cut]]))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
