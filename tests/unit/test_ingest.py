"""FileIngest, the per-file path of every protocol: nothing reaches the store before the type is
known, the caps count every byte, and the hashes cover exactly what was fed. Real libmagic and
the real thread pool; the sink is a list (the store is not what these tests are about)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator

import pytest

from tests.support import PDF_HEAD, PNG_1PX, id3v2_tag
from tornado_files.blocking import Offload
from tornado_files.errors import FileTooLarge, UnsupportedMediaType
from tornado_files.ingest import FileIngest
from tornado_files.policy import UploadPolicy
from tornado_files.sniff import Sniffer
from tornado_files.sniff_window import SniffWindow

KIB = 1024
WINDOW = 64 * KIB


class ListSink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(bytes(chunk))

    def data(self) -> bytes:
        return b"".join(self.chunks)


@pytest.fixture(scope="module")
def pool() -> Iterator[Offload]:
    offload = Offload(2)
    yield offload
    offload.shutdown()


@pytest.fixture(scope="module")
def sniffer(pool: Offload) -> Sniffer:
    return Sniffer(pool)


def ingest(pool: Offload, sniffer: Sniffer, sink: ListSink, *, allowed: tuple[str, ...] = (),
           limit: int = 1 << 30, **kwargs: object) -> FileIngest:
    policy = UploadPolicy("/x", limit, limit, allowed_mime_types=allowed)
    return FileIngest(sink=sink, sniffer=sniffer, lane=pool.lane(), sniff_bytes=WINDOW,
                      check_type=policy.check_mime, limit=limit,
                      over_limit=lambda fed: FileTooLarge(meta={"fed": fed}),
                      **kwargs)  # type: ignore[arg-type]


def stored(before: bytes) -> SniffWindow:
    """The window a resumed upload rebuilds from its stored bytes (they hold no ID3 tag)."""
    window = SniffWindow(WINDOW)
    window.take(0, before[:WINDOW])
    return window


def test_nothing_is_written_before_the_type_is_known(pool, sniffer):
    async def scenario() -> None:
        sink = ListSink()
        file = ingest(pool, sniffer, sink, hasher=hashlib.sha256())
        content = PNG_1PX + os.urandom(WINDOW + 30 * KIB)
        pieces = [content[:20 * KIB], content[20 * KIB:40 * KIB], content[40 * KIB:60 * KIB]]
        for piece in pieces:
            await file.feed(piece)
        assert sink.chunks == [], "bytes reached the store before libmagic saw them"
        assert file.sniffed is None
        await file.feed(content[60 * KIB:])
        assert file.sniffed is not None
        assert file.sniffed.mime_type == "image/png"
        assert sink.data() == content  # every held chunk, in order, then the rest
        await file.finish(whole=True)
        assert file.sha256() == hashlib.sha256(content).hexdigest()
    asyncio.run(scenario())


def test_a_disallowed_type_is_refused_with_nothing_written(pool, sniffer):
    async def scenario() -> None:
        sink = ListSink()
        file = ingest(pool, sniffer, sink, allowed=("image/png",))
        content = PDF_HEAD + b"\0" * (2 * WINDOW)
        await file.feed(content[:WINDOW // 2])
        with pytest.raises(UnsupportedMediaType) as refused:
            await file.feed(content[WINDOW // 2:])
        assert refused.value.meta["instance_mime_type"] == "application/pdf"
        assert sink.chunks == []
        await file.abort()
    asyncio.run(scenario())


def test_a_short_whole_file_is_sniffed_at_its_end(pool, sniffer):
    async def scenario() -> None:
        sink = ListSink()
        file = ingest(pool, sniffer, sink, hasher=hashlib.sha256())
        await file.feed(PNG_1PX)
        assert sink.chunks == []
        sniffed = await file.finish(whole=True)
        assert sniffed is not None
        assert sniffed.mime_type == "image/png"
        assert sink.data() == PNG_1PX
        empty = ingest(pool, sniffer, ListSink(), hasher=hashlib.sha256())
        nothing = await empty.finish(whole=True)
        assert nothing is not None
        assert (nothing.mime_type, nothing.type_os) == ("application/x-empty", "empty")
        assert empty.sha256() == hashlib.sha256(b"").hexdigest()
    asyncio.run(scenario())


def test_a_part_of_a_file_ending_inside_the_window_is_written_unsniffed(pool, sniffer):
    # A tus PATCH of 10 bytes: they must be stored (the client moves on), the type comes later.
    async def scenario() -> None:
        sink = ListSink()
        file = ingest(pool, sniffer, sink, allowed=("image/png",))
        await file.feed(PDF_HEAD[:10])
        assert await file.finish(whole=False) is None
        assert sink.data() == PDF_HEAD[:10]
        # The next request starts from what is stored: its head is sniffed with the new bytes,
        # and the refusal comes before any of them is written.
        later = ListSink()
        resumed = ingest(pool, sniffer, later, allowed=("image/png",), start=10,
                         window=stored(PDF_HEAD[:10]))
        with pytest.raises(UnsupportedMediaType):
            await resumed.feed(PDF_HEAD[10:] + b"\0" * WINDOW)
        assert later.chunks == []
        await resumed.abort()
    asyncio.run(scenario())


def test_the_limit_counts_what_was_stored_before(pool, sniffer):
    async def scenario() -> None:
        file = ingest(pool, sniffer, ListSink(), limit=100, start=90)
        await file.feed(b"x" * 10)
        with pytest.raises(FileTooLarge) as over:
            await file.feed(b"x")
        assert over.value.meta == {"fed": 11}
        await file.abort()
    asyncio.run(scenario())


@pytest.mark.parametrize("size", [1, 5 * KIB, 300 * KIB])  # inline and on the lane
def test_the_hashes_cover_exactly_what_was_fed(pool, sniffer, size):
    async def scenario() -> None:
        before = os.urandom(1000)
        running = hashlib.sha256(before)
        digest = hashlib.md5()  # noqa: S324 — tus offers md5 checksums
        file = ingest(pool, sniffer, ListSink(), start=len(before), window=stored(before),
                      hasher=running, digest=digest)
        content = os.urandom(4 * WINDOW)
        for at in range(0, len(content), size):
            await file.feed(content[at:at + size])
        await file.finish(whole=True)
        assert file.sha256() == hashlib.sha256(before + content).hexdigest()
        assert file.digest() == hashlib.md5(content).digest()  # noqa: S324
    asyncio.run(scenario())


def test_an_mp3_behind_large_cover_art_is_audio_and_the_tag_is_not_held(pool, sniffer):
    """The cover art (200 KiB) is larger than the window: the window follows the tag, whose
    bytes go on to the store as they come, and only the window after it waits."""
    content = id3v2_tag(200 * KIB)
    tag_end = content.index(b"\xff\xfb")
    async def scenario() -> None:
        sink = ListSink()
        file = ingest(pool, sniffer, sink, allowed=("audio/*",), hasher=hashlib.sha256())
        step = 7 * KIB
        cut = (tag_end // step + 1) * step
        for at in range(0, cut, step):
            await file.feed(content[at:at + step])
        assert file.sniffed is None
        assert len(sink.data()) >= tag_end - step  # the tag was not held back
        for at in range(cut, len(content), step):
            await file.feed(content[at:at + step])
        sniffed = await file.finish(whole=True)
        assert sniffed is not None
        assert sniffed.mime_type == "audio/mpeg"
        assert sniffed.type_os.startswith("Audio file with ID3")
        assert "MPEG" in sniffed.type_os
        assert sink.data() == content
        assert file.sha256() == hashlib.sha256(content).hexdigest()
    asyncio.run(scenario())


def test_a_disallowed_type_behind_a_tag_is_refused_before_its_bytes_are_written(pool, sniffer):
    content = id3v2_tag(100 * KIB, PDF_HEAD + bytes(WINDOW))
    tag_end = content.index(PDF_HEAD)
    async def scenario() -> None:
        sink = ListSink()
        file = ingest(pool, sniffer, sink, allowed=("audio/*",))
        refused = None
        for at in range(0, len(content), 10 * KIB):
            try:
                await file.feed(content[at:at + 10 * KIB])
            except UnsupportedMediaType as error:
                refused = error
                break
        assert refused is not None
        await file.abort()
        assert len(sink.data()) <= tag_end  # the tag went on (the caller aborts the blob)
    asyncio.run(scenario())
