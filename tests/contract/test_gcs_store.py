"""What only the GCS store has to show, checked on the emulator with google-cloud-storage and
on the wire (a recording transport adapter on the store's own HTTP session — the requests
still reach the emulator): chunks of ``part_size`` sent strictly one after another with at
most two queued, an abort that cancels the session once, tus segments composed in a tree of
32, signed redirect URLs, the credential checks, and a store that cannot be reached refusing a
writer. What every object store shows (GCS included) is in test_object_store.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import urllib.parse
import urllib.request
from typing import Any
from uuid import uuid4

import pytest
from requests.adapters import HTTPAdapter

from tests.contract.gcs_probe import PART
from tests.contract.stores import write_blob
from tests.gcs_support import service_account_file
from tornado_files.blocking import Offload
from tornado_files.config import ConfigError
from tornado_files.errors import BackendUnavailable
from tornado_files.storage.gcs import GcsBlobStore
from tornado_files.storage.gcs_partial import COMPOSE_MAX
from tornado_files.storage.gcs_settings import GcsSettings


class Recorder(HTTPAdapter):
    """Sends every request on (to the emulator) and notes it; chunk PUTs of a session wait
    for ``gate`` and are counted while they are on the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, dict[str, str], bytes]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.active = 0
        self.most = 0
        self._lock = threading.Lock()

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        chunk = request.method == "PUT" and "upload_id=" in request.url
        with self._lock:
            self.active += chunk
            self.most = max(self.most, self.active)
        try:
            if chunk:
                self.gate.wait(30)
            body = request.body if isinstance(request.body, bytes) else \
                (request.body or "").encode()
            self.sent.append((request.method, request.url, dict(request.headers), body))
            return super().send(request, *args, **kwargs)
        finally:
            with self._lock:
                self.active -= chunk

    def ranges(self) -> list[str]:
        return [h["Content-Range"] for m, u, h, _ in self.sent
                if m == "PUT" and "upload_id=" in u]


def record(store: GcsBlobStore) -> Recorder:
    recorder = Recorder()
    store.calls.session.mount("http://", recorder)
    return recorder


@pytest.mark.gen_test(timeout=60)
async def test_chunks_of_part_size_go_one_after_another_with_two_queued_at_most(gcs):
    store, probe = gcs
    recorder = record(store)
    content = os.urandom(4 * PART + 7)
    writer = await store.open_writer(key := uuid4().hex)
    recorder.gate.clear()
    writing = asyncio.ensure_future(writer.write(content[:4 * PART]))
    await asyncio.sleep(0.3)
    assert not writing.done()  # back-pressure: two chunks queued, the client waits
    assert writer._parts.in_flight == 2
    assert recorder.active == 1  # a session takes its chunks one at a time
    recorder.gate.set()
    await writing
    await writer.write(content[4 * PART:])
    await writer.end()
    assert probe.stored_bytes(key) == 4 * PART  # the last 7 bytes finalize: kept for commit
    await writer.commit()
    assert recorder.most == 1
    assert recorder.ranges() == [f"bytes {n * PART}-{(n + 1) * PART - 1}/*" for n in range(4)] \
        + [f"bytes {4 * PART}-{4 * PART + 6}/{4 * PART + 7}"]
    assert probe.read(key) == content


@pytest.mark.gen_test(timeout=60)
async def test_a_multiple_of_the_chunk_size_is_finalized_by_its_total_alone(gcs):
    store, probe = gcs
    recorder = record(store)
    key = await write_blob(store, [content := os.urandom(2 * PART)])
    assert recorder.ranges()[-1] == f"bytes */{2 * PART}"
    assert probe.bucket.blob(f"up/{key}").download_as_bytes() == content


@pytest.mark.gen_test(timeout=60)
async def test_abort_with_chunks_stored_and_queued_cancels_the_session(gcs):
    store, probe = gcs
    recorder = record(store)
    writer = await store.open_writer(key := uuid4().hex)
    await writer.write(os.urandom(3 * PART + 100))  # one landed, two queued, a tail buffered
    assert probe.in_progress() == [key]
    await writer.abort()
    cancels = [(m, u) for m, u, _, _ in recorder.sent if m == "DELETE"]
    assert len(cancels) == 1
    assert "upload_id=" in cancels[0][1]
    await writer.abort()  # idempotent: no second cancel
    assert len([m for m, *_ in recorder.sent if m == "DELETE"]) == 1


@pytest.mark.gen_test(timeout=120)
async def test_more_than_32_segments_are_composed_in_a_tree(gcs):
    store, probe = gcs
    recorder = record(store)
    key = uuid4().hex
    data = os.urandom((COMPOSE_MAX + 3) * PART + 5)
    await store.create_partial(key)
    writer = await store.resume(key, 0)
    for offset in range(0, len(data), 700_000):
        await writer.write(data[offset:offset + 700_000])
    assert await writer.settle() == len(data)
    await writer.close()
    assert len(probe.segments(key)) == COMPOSE_MAX + 4
    await store.finalize(key, len(data))
    composes = [json.loads(body) for m, u, _, body in recorder.sent
                if m == "POST" and urllib.parse.urlsplit(u).path.endswith("/compose")]
    # 36 segments: 32 and 4 into two intermediates (sent side by side), then those two.
    assert sorted(len(c["sourceObjects"]) for c in composes) == [2, 4, COMPOSE_MAX]
    assert composes[-1]["sourceObjects"][0]["name"].endswith("/c1-000000")
    stored = probe.bucket.blob(f"up/{key}").download_as_bytes()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    assert probe.traces(key) == [f"object {key}"]  # segments and intermediates gone


@pytest.mark.gen_test(timeout=60)
async def test_short_segments_are_kept_as_they_are(gcs):
    """No minimum size for compose sources: a PATCH's short end is never rewritten."""
    store, probe = gcs
    key = uuid4().hex
    await store.create_partial(key)
    for offset, piece in ((0, b"a" * 1000), (1000, b"b" * (PART + 10)), (PART + 1010, b"c")):
        writer = await store.resume(key, offset)
        await writer.write(piece)
        await writer.settle()
        await writer.close()
    assert [int(b.size) for b in probe.segments(key)] == [1000, PART, 10, 1]
    await store.finalize(key, PART + 1011)
    assert probe.bucket.blob(f"up/{key}").download_as_bytes() == \
        b"a" * 1000 + b"b" * (PART + 10) + b"c"


@pytest.mark.gen_test(timeout=60)
async def test_a_signed_redirect_serves_the_object_with_its_name(gcs_emulator, tmp_path):
    bucket = gcs_emulator.new_bucket()
    offload = Offload(2)
    settings = GcsSettings(bucket=bucket, prefix="up/", endpoint=gcs_emulator.endpoint,
                           download="redirect")
    environ = {"GOOGLE_APPLICATION_CREDENTIALS": str(service_account_file(tmp_path))}
    store = GcsBlobStore(settings, offload, environ=environ)
    try:
        await store.startup()
        key = await write_blob(store, [b"%PDF-1.7 hello"])
        url = await store.download_url(key, "application/pdf", 'attachment; filename="a.pdf"')
        assert url is not None
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        assert parts.path == f"/{bucket}/up/{key}"
        assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
        assert query["X-Goog-Expires"] == "300"
        assert query["X-Goog-Credential"].startswith("uploads@tornado-files-test")
        assert len(query["X-Goog-Signature"]) == 512  # hex of a 2048-bit RSA signature
        assert query["response-content-type"] == "application/pdf"
        assert query["response-content-disposition"] == 'attachment; filename="a.pdf"'
        # The emulator checks no signature and ignores response-content-type (real GCS
        # honours both); it does serve the bytes and the name.
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 — loopback
            assert answer.read() == b"%PDF-1.7 hello"
            assert answer.headers["Content-Disposition"] == 'attachment; filename="a.pdf"'
    finally:
        await store.close()
        offload.shutdown()


@pytest.mark.parametrize("kind", ["none", "authorized_user"])
def test_redirect_without_a_key_to_sign_with_is_refused_in_one_line(kind, tmp_path):
    environ: dict[str, str] = {}
    if kind == "authorized_user":  # what `gcloud auth application-default login` leaves
        path = tmp_path / "adc.json"
        path.write_text(json.dumps({"type": "authorized_user", "client_id": "x",
                                    "client_secret": "y", "refresh_token": "z"}))
        environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
    offload = Offload(1)
    try:
        with pytest.raises(ConfigError, match=r'gcs.download = "redirect" needs a '
                                              r"service-account key"):
            GcsBlobStore(GcsSettings(bucket="media", endpoint="http://127.0.0.1:1",
                                     download="redirect"), offload, environ=environ)
    finally:
        offload.shutdown()


def test_an_unreadable_credentials_file_is_one_clear_line(tmp_path):
    offload = Offload(1)
    missing = tmp_path / "nope.json"
    try:
        with pytest.raises(ConfigError, match=r"no usable Google credentials in "
                                              r"GOOGLE_APPLICATION_CREDENTIALS"):
            GcsBlobStore(GcsSettings(bucket="media"), offload,
                         environ={"GOOGLE_APPLICATION_CREDENTIALS": str(missing)})
    finally:
        offload.shutdown()


@pytest.mark.gen_test(timeout=60)
async def test_an_unreachable_store_refuses_a_writer(gcs, caplog):
    _, probe = gcs
    offload = Offload(2)
    store, logger, _ = probe.unreachable(offload)
    caplog.set_level("CRITICAL", logger=logger)
    try:  # GCS starts its resumable session when the writer opens
        with pytest.raises(BackendUnavailable):
            await store.open_writer(uuid4().hex)
    finally:
        await store.close()
        offload.shutdown()


@pytest.mark.gen_test(timeout=60)
async def test_storage_emulator_host_is_honoured(gcs_emulator):
    bucket = gcs_emulator.new_bucket()
    offload = Offload(2)
    host = gcs_emulator.endpoint.removeprefix("http://")
    store = GcsBlobStore(GcsSettings(bucket=bucket), offload,
                         environ={"STORAGE_EMULATOR_HOST": host})
    try:
        await store.startup()
        key = await write_blob(store, [b"via STORAGE_EMULATOR_HOST"])
        assert await store.exists(key)
        assert store.where() == f"gs://{bucket}/ at {gcs_emulator.endpoint}"
    finally:
        await store.close()
        offload.shutdown()
