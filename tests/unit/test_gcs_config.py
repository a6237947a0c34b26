"""``[gcs]`` and ``storage = "gcs"`` as the configuration reads them: one clear line for each
mistake (docs/configuration.md), and where the store finds its emulator."""

from __future__ import annotations

import pytest

from tornado_files.config import ConfigError, build_config
from tornado_files.storage.gcs_settings import GcsSettings, emulator_endpoint

KIB = 1024
MIB = 1024 * KIB


def test_gcs_table_and_route():
    config = build_config({"gcs": {"bucket": "media", "prefix": "uploads/",
                                   "endpoint": "http://127.0.0.1:9023/", "part_size": "16MiB",
                                   "download": "redirect"},
                           "routes": [{"path": "/api/big", "max_body_size": "1GiB",
                                       "storage": "gcs"}]}, {}, {})
    assert config.gcs == GcsSettings(bucket="media", prefix="uploads/",
                                     endpoint="http://127.0.0.1:9023", part_size=16 * MIB,
                                     download="redirect")
    assert config.routes[0].storage == "gcs"
    assert build_config({"gcs": {"bucket": "media"}}, {}, {}).gcs == GcsSettings("media")
    assert GcsSettings("media").part_size == 8 * MIB
    assert build_config({"gcs": {"bucket": "my_bucket.v2"}, "storage": "gcs"}, {},
                        {}).storage == "gcs"


@pytest.mark.parametrize(("settings", "message"), [
    ({"storage": "gcs"}, r'storage "gcs" needs a \[gcs\] table'),
    ({"routes": [{"path": "/x", "max_body_size": 1, "storage": "gcs"}]}, r"needs a \[gcs\]"),
    ({"gcs": {}}, r"gcs.bucket: expected a bucket name"),
    ({"gcs": {"bucket": "Media!"}}, r"gcs.bucket"),
    ({"gcs": {"bucket": "a..b"}}, r"gcs.bucket"),
    ({"gcs": {"bucket": "media", "part_size": "100KiB"}}, r"gcs.part_size: a multiple of 256KiB"),
    ({"gcs": {"bucket": "media", "part_size": "1000KiB"}}, r"gcs.part_size: a multiple"),
    ({"gcs": {"bucket": "media", "part_size": "2GiB"}}, r"gcs.part_size"),
    ({"gcs": {"bucket": "media", "prefix": "/abs"}}, r"gcs.prefix"),
    ({"gcs": {"bucket": "media", "endpoint": "127.0.0.1:9023"}}, r"gcs.endpoint"),
    ({"gcs": {"bucket": "media", "download": "stream"}}, r'gcs.download: expected "proxy" or'),
    ({"gcs": {"bucket": "media", "credentials": "x"}}, r"gcs: unknown key 'credentials'"),
    ({"gcs": "media"}, r"gcs: expected a table"),
])
def test_gcs_mistakes_are_one_line(settings, message):
    with pytest.raises(ConfigError, match=message):
        build_config(settings, {}, {})


@pytest.mark.parametrize(("endpoint", "environ", "expected"), [
    (None, {}, None),
    ("http://emu:9023", {"STORAGE_EMULATOR_HOST": "other:1"}, "http://emu:9023"),
    (None, {"STORAGE_EMULATOR_HOST": "localhost:9023"}, "http://localhost:9023"),
    (None, {"STORAGE_EMULATOR_HOST": "https://gcs.test/"}, "https://gcs.test"),
])
def test_the_emulator_is_the_endpoint_else_storage_emulator_host(endpoint, environ, expected):
    assert emulator_endpoint(GcsSettings("media", endpoint=endpoint), environ) == expected
