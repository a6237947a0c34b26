"""What only the Azure store has to show, checked in the container through azure-storage-blob:
blocks of ``part_size`` with at most two in flight, no uncommitted block left after an abort,
sweeping of a crashed writer's blocks, paged listing, the marker, SAS redirects that Azurite
serves with the file's name and type, and a store that cannot be reached."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from datetime import timedelta
from uuid import uuid4

import pytest

from tests.contract.azure_probe import BLOCK
from tests.contract.stores import write_blob
from tests.serverproc import free_port
from tornado_files.blocking import Offload
from tornado_files.config import ConfigError
from tornado_files.errors import BackendUnavailable
from tornado_files.models import utcnow
from tornado_files.storage.azure import AzureBlobStore
from tornado_files.storage.azure_settings import AzureSettings

HOUR = timedelta(hours=1)


@pytest.mark.gen_test(timeout=60)
async def test_blocks_of_part_size_and_the_blob_is_exact(azure):
    store, probe = azure
    content = os.urandom(3 * BLOCK + 7)
    writer = await store.open_writer(key := uuid4().hex)
    for offset in range(0, len(content), 300_000):
        await writer.write(content[offset:offset + 300_000])
    await writer.end()
    committed, staged = probe.blocks(key)
    assert (committed, sorted(staged)) == ([], [7, BLOCK, BLOCK, BLOCK])  # nothing visible
    await writer.commit()
    assert probe.blocks(key) == ([BLOCK, BLOCK, BLOCK, 7], [])
    stored = probe.client.get_blob_client(f"up/{key}").download_blob().readall()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(content).digest()


@pytest.mark.gen_test(timeout=60)
async def test_abort_with_blocks_stored_and_in_flight_leaves_nothing(azure):
    store, probe = azure
    writer = await store.open_writer(key := uuid4().hex)
    await writer.write(os.urandom(3 * BLOCK))  # one landed, two staging
    await writer.abort()
    assert probe.traces(key) == []
    assert [b.name for b in probe.client.list_blobs(include=["uncommittedblobs"])
            if b.name.endswith(key)] == []


@pytest.mark.gen_test(timeout=60)
async def test_remove_traces_spares_what_changed_since_and_discards_the_rest(azure):
    store, probe = azure
    crashed, done = uuid4().hex, await write_blob(store, [b"kept"])
    probe.plant_uncommitted(crashed, b"left by a dead writer")
    assert probe.in_progress() == [crashed]
    assert not await store.remove_traces(crashed, utcnow() - HOUR)  # young: maybe writing
    assert not await store.remove_traces(done, utcnow() - HOUR)
    assert probe.traces(crashed)
    assert probe.traces(done)
    assert await store.remove_traces(crashed, utcnow() + HOUR)
    assert await store.remove_traces(done, utcnow() + HOUR)
    assert probe.traces(crashed) == probe.traces(done) == []
    assert await store.remove_traces(crashed, utcnow() + HOUR)  # idempotent


@pytest.mark.gen_test(timeout=60)
async def test_list_keys_pages_over_ours_only(azure):
    store, probe = azure
    keys = sorted([await write_blob(store, [b"x"]) for _ in range(5)])
    probe.add_foreign()
    probe.plant_uncommitted(uuid4().hex, b"x")  # not committed: not listed
    assert await store.list_keys(None, 2) == keys[:2]
    assert await store.list_keys(keys[1], 10) == keys[2:]
    assert await store.list_keys(keys[-1], 10) == []
    assert await store.has_blobs()


@pytest.mark.gen_test(timeout=60)
async def test_the_marker_is_written_once(azure):
    store, probe = azure
    assert await store.read_marker() is None
    assert not await store.has_blobs()
    assert await store.write_marker("a" * 32) == "a" * 32
    assert await store.write_marker("b" * 32) == "a" * 32
    assert await store.read_marker() == "a" * 32
    assert probe.committed() == set()  # the marker is no blob


@pytest.mark.gen_test(timeout=60)
async def test_a_sas_redirect_serves_the_blob_with_its_name_and_type(azure):
    store, _ = azure
    key = await write_blob(store, [b"%PDF-1.7 hello"])
    assert await store.download_url(key, "application/pdf", "inline") is None  # proxy
    object.__setattr__(store.settings, "download", "redirect")
    url = await store.download_url(key, "application/pdf", 'attachment; filename="a.pdf"')
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 — loopback Azurite
        assert answer.read() == b"%PDF-1.7 hello"
        assert answer.headers["Content-Type"] == "application/pdf"
        assert answer.headers["Content-Disposition"] == 'attachment; filename="a.pdf"'


def test_no_credentials_in_the_environment_is_one_clear_line():
    offload = Offload(1)
    try:
        with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING or "
                                              "AZURE_STORAGE_ACCOUNT"):
            AzureBlobStore(AzureSettings(container="media"), offload, environ={})
    finally:
        offload.shutdown()


@pytest.mark.gen_test(timeout=60)
async def test_an_unreachable_store_is_unavailable_and_refuses_to_start(caplog, azurite):
    caplog.set_level("CRITICAL", logger="tornado_files.storage.azure_client")
    offload = Offload(2)
    endpoint = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    store = AzureBlobStore(AzureSettings(container="media", endpoint=endpoint), offload,
                           environ={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    try:
        with pytest.raises(BackendUnavailable):
            await store.ping()
        with pytest.raises(ConfigError, match=r"cannot write to azure container http://127"):
            await store.startup()
        with pytest.raises(ConfigError, match=r"cannot write to azure container http://127"):
            await store.read_marker()
    finally:
        await store.close()
        offload.shutdown()
