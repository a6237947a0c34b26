"""The multipart edge (issue 13): preamble, epilogue, empty forms, part headers as HTML-form
clients write them, malformed header blocks, Content-Transfer-Encoding, and the parser's own
limits (parts, part header size). Every body is also fed split at every point."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_multipart_bridge import _POOL, _SNIFFER, Journal
from tornado_files.errors import (
    FileFieldMissing,
    MalformedMultipart,
    RequestTooLarge,
    TornadoFilesError,
)
from tornado_files.multipart import MultipartBridge
from tornado_files.policy import UploadPolicy
from tornado_files.session import UploadSession
from tornado_files.storage.disk import DiskBlobStore

B = "xYzZY"
CTYPE = f"multipart/form-data; boundary={B}"
FILE_PART = (f"--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
             "Content-Type: text/plain\r\n\r\nhello\r\n")
CLOSE = f"--{B}--\r\n"


async def _run(root: Path, pieces: list[bytes], **limits: Any) -> tuple[list[tuple], dict]:
    store = DiskBlobStore(root, _POOL)
    await store.startup()
    policy = UploadPolicy("/api/files", 1 << 20, 1 << 20)
    session = UploadSession(policy=policy, store=store, intents=Journal(), sniffer=_SNIFFER,
                            offload=_POOL, sniff_bytes=64 * 1024, declared_length=None,
                            received=lambda: 0)
    bridge = MultipartBridge({"Content-Type": CTYPE}, session, 64 * 1024, 1 << 20, **limits)
    try:
        for piece in pieces:
            await bridge.feed(piece)
        _single, data = bridge.finish()
        files = await session.commit()
        return [(f.original_filename, f.facts.size, f.declared_type)
                for f in files if f.facts is not None], data
    except TornadoFilesError:
        await session.abort()
        raise


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def parse(tmp_path: Path, body: str | bytes, **limits: Any) -> tuple[list[tuple], dict]:
    """The result of ``body`` whole, checked equal at every split point."""
    raw = body.encode() if isinstance(body, str) else body
    whole = asyncio.run(_run(tmp_path / "whole", [raw], **limits))
    for cut in range(len(raw) + 1):
        got = asyncio.run(_run(tmp_path / f"s{cut}", [raw[:cut], raw[cut:]], **limits))
        assert got == whole, f"split at {cut}"
    return whole


def refused(tmp_path: Path, body: str | bytes, error: type[Exception], **limits: Any) -> Any:
    """``body`` fails with ``error`` whole and at every split point, leaving no file."""
    raw = body.encode() if isinstance(body, str) else body
    for cut in range(len(raw) + 1):
        root = tmp_path / f"refused{cut}"
        with pytest.raises(error) as info:
            asyncio.run(_run(root, [raw[:cut], raw[cut:]], **limits))
        assert _files(root) == [], f"split at {cut}"
    return info.value


TXT = [("a.txt", 5, "text/plain")]


@pytest.mark.parametrize("preamble", ["This is a preamble.\r\n", "\r\n", "x\r\n", "--xYz\r\n"])
def test_preamble_is_ignored(tmp_path, preamble):
    assert parse(tmp_path, preamble + FILE_PART + CLOSE) == (TXT, {})


@pytest.mark.parametrize("epilogue", ["", "\r\n", "trailing text\r\n", f"--{B}\r\nmore"])
def test_epilogue_is_ignored(tmp_path, epilogue):
    assert parse(tmp_path, FILE_PART + f"--{B}--" + epilogue) == (TXT, {})


def test_closing_boundary_without_crlf_ends_the_body(tmp_path):
    assert parse(tmp_path, FILE_PART + f"--{B}--") == (TXT, {})


@pytest.mark.parametrize("body", [
    f"--{B}--\r\n", f"--{B}--", f"preamble\r\n--{B}--\r\n", f"x{FILE_PART}{CLOSE}",
])
def test_empty_form_is_file_field_missing(tmp_path, body):
    # A delimiter only opens a line: "x--xYzZY" is preamble, so this too is an empty form.
    refused(tmp_path, body, FileFieldMissing)


@pytest.mark.parametrize("body", [
    "", "no boundary at all", FILE_PART, FILE_PART + f"--{B}", FILE_PART + f"--{B}-",
    FILE_PART + f"--{B}\r\n", FILE_PART[:-8],
])
def test_body_that_ends_before_its_close_is_malformed(tmp_path, body):
    refused(tmp_path, body, MalformedMultipart)


def test_backslashes_in_filename_are_kept_as_sent(tmp_path):
    part = (f"--{B}\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"C:\\Users\\alex\\report.txt\"\r\n\r\nhello\r\n")
    files, _ = parse(tmp_path, part + CLOSE)
    assert files[0][0] == "C:\\Users\\alex\\report.txt"


@pytest.mark.parametrize(("sent", "stored"), [
    ("say %22hi%22.txt", 'say "hi".txt'),
    ("a%0D%0Ab.txt", "a\r\nb.txt"),
    ("a%0d%0ab.txt", "a\r\nb.txt"),
    ("100%25 %41.txt", "100%25 %41.txt"),  # nothing else is decoded (WHATWG)
    ('old \\"quoted\\".txt', 'old "quoted".txt'),  # backslash-escaping MIME clients
    ("semi;colon.txt", "semi;colon.txt"),
    ("dir\\%22q%22.txt", 'dir\\"q".txt'),  # a browser's backslash before an escaped quote
    ("café.txt", "café.txt"),
])
def test_filename_escapes_as_browsers_write_them(tmp_path, sent, stored):
    part = (f"--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{sent}\"\r\n"
            "\r\nhello\r\n")
    files, _ = parse(tmp_path, part + CLOSE)
    assert files[0][0] == stored


@pytest.mark.parametrize(("boundary", "ok"), [("b" * 256, True), ("b" * 257, False)])
def test_boundaries_up_to_256_characters_are_taken(tmp_path, boundary, ok):
    body = (FILE_PART + CLOSE).replace(B, boundary).encode()
    store = tmp_path
    async def go() -> None:
        s = DiskBlobStore(store, _POOL)
        await s.startup()
        session = UploadSession(policy=UploadPolicy("/api/files", 1 << 20, 1 << 20), store=s,
                                intents=Journal(), sniffer=_SNIFFER, offload=_POOL,
                                sniff_bytes=65536, declared_length=None, received=lambda: 0)
        ctype = f"multipart/form-data; boundary={boundary}"
        bridge = MultipartBridge({"Content-Type": ctype}, session, 65536, 1 << 20)
        await bridge.feed(body)
        bridge.finish()
        await session.abort()
    if ok:
        asyncio.run(go())
    else:
        with pytest.raises(MalformedMultipart):
            asyncio.run(go())


def test_extended_filename_wins(tmp_path):
    part = (f"--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"; "
            "filename*=UTF-8''%E2%82%AC.txt\r\n\r\nhello\r\n")
    assert parse(tmp_path, part + CLOSE)[0][0][0] == "€.txt"


def test_field_names_are_decoded_too(tmp_path):
    body = (f"--{B}\r\nContent-Disposition: form-data; name=\"a%22b\"\r\n\r\nv\r\n"
            + FILE_PART + CLOSE)
    assert parse(tmp_path, body) == (TXT, {'a"b': "v"})


def test_header_order_inside_a_part_does_not_matter(tmp_path):
    body = (f"--{B}\r\nContent-Type: text/plain\r\ncontent-disposition: form-data; "
            "filename=\"a.txt\"; name=\"file\"\r\nX-Other: 1\r\n\r\nhello\r\n" + CLOSE)
    assert parse(tmp_path, body) == (TXT, {})


def test_non_utf8_part_header_is_malformed(tmp_path):
    body = (f"--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".encode()
            + b"\xff\xfe.txt\"\r\n\r\nhello\r\n" + CLOSE.encode())
    refused(tmp_path, body, MalformedMultipart)


@pytest.mark.parametrize("header", [
    "No colon here",
    ": empty name",
    "Bad Name: x",
    "X-Ctl: a\x01b",
    "X-Del: a\x7fb",
    "Content-Disposition: form-data; name=\"file\"; filename=\"b.txt\"",  # twice
    "Content-Disposition: attachment; name=\"x\"",
])
def test_malformed_part_header_fails_the_whole_request(tmp_path, header):
    body = (FILE_PART + f"--{B}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"b.txt\"\r\n{header}\r\n\r\nbee\r\n" + CLOSE)
    body = body.replace('name="file";', 'name="files";', 1)
    refused(tmp_path, body, MalformedMultipart)


@pytest.mark.parametrize("block", [
    "",  # no headers at all
    "Content-Type: text/plain\r\n",  # no Content-Disposition
    "Content-Disposition: form-data\r\n",  # no name
    "Content-Disposition: form-data; name=\"\"\r\n",
    "Content-Disposition: form-data; name=\"a\"; name=\"b\"\r\n",
    "Content-Disposition: form-data; name=\"unterminated\r\n",
])
def test_part_without_a_usable_name_fails_the_whole_request(tmp_path, block):
    body = FILE_PART + f"--{B}\r\n{block}\r\nvalue\r\n" + CLOSE
    refused(tmp_path, body, MalformedMultipart)


@pytest.mark.parametrize("encoding", ["binary", "8bit", "7BIT"])
def test_identity_transfer_encodings_are_accepted(tmp_path, encoding):
    body = FILE_PART.replace("\r\n\r\n", f"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n")
    assert parse(tmp_path, body + CLOSE) == (TXT, {})


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable", "x-gzip"])
def test_other_transfer_encodings_are_refused(tmp_path, encoding):
    body = FILE_PART.replace("\r\n\r\n", f"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n")
    refused(tmp_path, body + CLOSE, MalformedMultipart)


def test_folded_header_line_is_joined(tmp_path):
    body = (f"--{B}\r\nContent-Disposition: form-data; name=\"file\";\r\n\t"
            "filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n" + CLOSE)
    assert parse(tmp_path, body) == (TXT, {})


def test_parts_over_max_parts_are_refused(tmp_path):
    fields = "".join(f"--{B}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\n\r\n"
                     for i in range(3))
    assert parse(tmp_path, fields + FILE_PART + CLOSE, max_parts=4)[0] == TXT
    error = refused(tmp_path, fields + FILE_PART + CLOSE, RequestTooLarge, max_parts=3)
    assert error.meta == {"maximum_parts_allowed": 3}


def test_part_header_block_over_its_cap_is_refused(tmp_path):
    block = f"Content-Disposition: form-data; name=\"file\"; filename=\"{'n' * 100}\"\r\n"
    body = f"--{B}\r\n{block}\r\nhello\r\n" + CLOSE
    assert parse(tmp_path, body, max_part_header_size=len(block) + 2)[0][0][0] == "n" * 100
    error = refused(tmp_path, body, RequestTooLarge, max_part_header_size=len(block) + 1)
    assert error.meta == {"maximum_part_header_size_allowed": len(block) + 1}


def test_huge_header_line_is_refused_early_without_buffering(tmp_path):
    # 8 MiB of one header line, fed in 64 KiB reads: refused by the first read over the cap.
    store_root = tmp_path / "big"
    head = f"--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".encode()
    fed = []

    async def go() -> None:
        async def pieces():
            yield head
            for _ in range(128):
                yield b"a" * 65536
        store = DiskBlobStore(store_root, _POOL)
        await store.startup()
        session = UploadSession(policy=UploadPolicy("/api/files", 1 << 30, 1 << 30),
                                store=store, intents=Journal(), sniffer=_SNIFFER,
                                offload=_POOL, sniff_bytes=64 * 1024, declared_length=None,
                                received=lambda: 0)
        bridge = MultipartBridge({"Content-Type": CTYPE}, session, 64 * 1024, 1 << 20)
        async for piece in pieces():
            fed.append(len(piece))
            await bridge.feed(piece)

    with pytest.raises(RequestTooLarge):
        asyncio.run(go())
    assert len(fed) == 2  # 16 KiB default cap: the first 64 KiB read passes it
