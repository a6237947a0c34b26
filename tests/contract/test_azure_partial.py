"""Partial blobs (tus) on Azure (Azurite), what only a block blob shows: the partial is one
blob ``<prefix>.partial/<key>`` of full blocks and a short last one, read back through
azure-storage-blob; completion is a server-side copy; the sweeper removes quiet partials."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from tests.azure_support import Azurite
from tests.contract.azure_probe import BLOCK, AzureProbe
from tests.contract.test_partial_blobs import append
from tornado_files.app import build_sweeper
from tornado_files.models import StoredBlob, utcnow
from tornado_files.resumable import Resumable
from tornado_files.services import Services
from tornado_files.sweeper import SweepReport

MIB = 1024 * 1024
HOUR = timedelta(hours=1)


def committed_sizes(probe: AzureProbe, key: str) -> list[int]:
    found = probe.partial_blocks(key)
    assert found is not None
    return found[0]


@pytest.mark.gen_test(timeout=60)
async def test_a_partial_is_one_blob_of_full_blocks_published_by_a_copy(azure):
    store, probe = azure
    data = os.urandom(2 * BLOCK + 300_000)
    await store.create_partial(key := uuid4().hex)
    assert probe.partial(key) == b""  # the empty partial is a blob at once
    offset = 0
    for start in range(0, len(data), 700_000):  # PATCHes that never end on a block edge
        offset = await append(store, key, offset, data[start:start + 700_000])
        sizes = committed_sizes(probe, key)
        assert sizes[:-1] == [BLOCK] * (len(sizes) - 1)  # only the last block short
        assert sum(sizes) == offset
        assert probe.partial_blocks(key) == (sizes, [])  # nothing left staged
    assert committed_sizes(probe, key) == [BLOCK, BLOCK, 300_000]
    writer = await store.resume(key, BLOCK - 10)  # a PATCH died: cut inside the first block
    assert committed_sizes(probe, key) == [BLOCK - 10]
    await writer.write(data[BLOCK - 10:])
    assert await writer.settle() == len(data)
    await writer.close()
    assert await store.finalize(key, len(data)) == StoredBlob(key, len(data))
    final = probe.client.get_blob_client(f"up/{key}")
    got = final.download_blob().readall()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    copy = final.get_blob_properties().copy  # made by Azure from the partial, not re-sent
    assert (copy.status, copy.source.split("?")[0].endswith(f"up/.partial/{key}")) == (
        "success", True)
    assert probe.partial(key) is None
    assert await store.list_keys(None, 10) == [key]


@pytest.mark.gen_test(timeout=60)
async def test_many_tiny_patches_keep_the_block_count_of_one_big_one(azure):
    """Azure keeps at most 50,000 committed blocks per blob: a block per PATCH would let 50,000
    small PATCHes end an upload, so the short last block is staged again as it grows."""
    store, probe = azure
    data = os.urandom(60 * 50_000)
    await store.create_partial(key := uuid4().hex)
    offset = 0
    for start in range(0, len(data), 50_000):
        offset = await append(store, key, offset, data[start:start + 50_000])
    assert committed_sizes(probe, key) == [BLOCK, BLOCK, len(data) - 2 * BLOCK]
    assert probe.partial(key) == data


@pytest.mark.gen_test(timeout=60)
async def test_a_dead_patchs_staged_blocks_go_with_the_next_commit(azure):
    store, probe = azure
    data = os.urandom(100_000)
    await store.create_partial(key := uuid4().hex)
    assert await append(store, key, 0, data) == len(data)
    dead = await store.resume(key, len(data))
    await dead.write(os.urandom(2 * BLOCK + 5))  # two blocks staged, never committed
    await dead.close()
    assert probe.partial_blocks(key) == ([len(data)], [BLOCK, BLOCK])
    assert probe.partial(key) == data  # the offset did not move
    assert await append(store, key, len(data), b"tail") == len(data) + 4
    assert probe.partial_blocks(key) == ([len(data) + 4], [])
    assert probe.partial(key) == data + b"tail"


@pytest.mark.gen_test(timeout=60)
async def test_a_checkpointed_patch_commits_one_growing_tail(azure):
    """Settles within one PATCH (tus checkpoints) replace the short block, never add one."""
    store, probe = azure
    await store.create_partial(key := uuid4().hex)
    writer = await store.resume(key, 0)
    data = os.urandom(BLOCK + 400_000)
    for start in range(0, len(data), 200_000):
        await writer.write(data[start:start + 200_000])
        durable = await writer.settle()
        assert sum(committed_sizes(probe, key)) == durable
    assert await writer.settle() == len(data)  # nothing new: no commit needed, same answer
    await writer.close()
    assert committed_sizes(probe, key) == [BLOCK, 400_000]
    assert probe.partial(key) == data


# -- the sweeper, with an Azure store built from configuration ----------------------------


@pytest.fixture
def config_overrides(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    container = azurite.new_container()
    return {"sweep_grace": 3600, "tus_expiry": 1, "storage": "azure",
            "azure": {"container": container, "prefix": "sw/", "endpoint": azurite.endpoint}}


@pytest.fixture
def sweep_probe(azurite: Azurite, config_overrides: dict[str, Any]) -> AzureProbe:
    return AzureProbe(azurite, config_overrides["azure"]["container"], "sw/")


@pytest.mark.gen_test(timeout=60)
async def test_the_sweeper_removes_a_journaled_partial_once_the_grace_has_passed(
        services: Services, sweep_probe: AzureProbe) -> None:
    store: Any = services.blob_store("azure")
    await store.create_partial(stale := uuid4().hex)  # its process died mid-upload
    assert await append(store, stale, 0, os.urandom(300_000)) == 300_000
    await services.intents.add_intent(stale, "azure", utcnow() - 2 * HOUR)
    first = await build_sweeper(services).sweep_once()  # it changed just now: kept
    assert first == SweepReport(expired=0, removed=0, recorded=0, writing=1, failed=0)
    assert sweep_probe.partial(stale) is not None
    later = await build_sweeper(services, clock=lambda: utcnow() + 2 * HOUR).sweep_once()
    assert (later.removed, later.writing) == (1, 0)
    assert sweep_probe.traces(stale) == []


@pytest.mark.gen_test(timeout=60)
async def test_an_expired_tus_upload_loses_its_partial_blob(services: Services,
                                                           sweep_probe: AzureProbe) -> None:
    tus = Resumable(services)
    state = await tus.create(1000, {"route": "/api/files"}, owner=None)
    assert state.storage == "azure"
    assert sweep_probe.partial(state.id) == b""
    await asyncio.sleep(1.2)  # tus_expiry = 1 s
    report = await build_sweeper(services).sweep_once()
    assert report.expired == 1
    assert sweep_probe.partial(state.id) is None
    assert sweep_probe.traces(state.id) == []
