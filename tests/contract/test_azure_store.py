"""What only the Azure store has to show, checked in the container through azure-storage-blob
(what every object store shows is in test_object_store.py): the committed block list, SAS
redirects that Azurite serves with the file's name and type, and no credentials."""

from __future__ import annotations

import os
import urllib.request
from uuid import uuid4

import pytest

from tests.contract.azure_probe import BLOCK
from tests.contract.stores import write_blob
from tornado_files.blocking import Offload
from tornado_files.config import ConfigError
from tornado_files.storage.azure import AzureBlobStore
from tornado_files.storage.azure_settings import AzureSettings


@pytest.mark.gen_test(timeout=60)
async def test_the_committed_block_list_is_the_blocks_in_order(azure):
    store, probe = azure
    content = os.urandom(3 * BLOCK + 7)
    writer = await store.open_writer(key := uuid4().hex)
    for offset in range(0, len(content), 300_000):
        await writer.write(content[offset:offset + 300_000])
    await writer.commit()
    assert probe.blocks(key) == ([BLOCK, BLOCK, BLOCK, 7], [])
    assert probe.read(key) == content


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


