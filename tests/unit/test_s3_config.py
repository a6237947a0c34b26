"""``[s3]`` and ``storage = "s3"`` as the configuration reads them: one clear line for each
mistake (docs/configuration.md)."""

from __future__ import annotations

import pytest

from tornado_files.config import ConfigError, build_config
from tornado_files.storage.s3_settings import S3Settings

MIB = 1024 * 1024


def test_s3_table_and_route():
    config = build_config({"s3": {"bucket": "media", "prefix": "uploads/",
                                  "endpoint": "http://minio:9000", "region": "eu-west-1",
                                  "part_size": "16MiB"},
                           "routes": [{"path": "/api/big", "max_body_size": "1GiB",
                                       "storage": "s3"}]}, {}, {})
    assert config.s3 == S3Settings(bucket="media", prefix="uploads/",
                                   endpoint="http://minio:9000", region="eu-west-1",
                                   part_size=16 * MIB)
    assert config.routes[0].storage == "s3"
    assert build_config({"s3": {"bucket": "media"}}, {}, {}).s3 == S3Settings("media")


@pytest.mark.parametrize(("settings", "message"), [
    ({"storage": "s3"}, r'storage "s3" needs an \[s3\] table'),
    ({"routes": [{"path": "/x", "max_body_size": 1, "storage": "s3"}]}, r"needs an \[s3\]"),
    ({"s3": {}}, r"s3.bucket: expected a bucket name"),
    ({"s3": {"bucket": "Media!"}}, r"s3.bucket"),
    ({"s3": {"bucket": "media", "part_size": "4MiB"}}, r"s3.part_size: S3 takes parts from"),
    ({"s3": {"bucket": "media", "part_size": "6GiB"}}, r"s3.part_size"),
    ({"s3": {"bucket": "media", "prefix": "/abs"}}, r"s3.prefix"),
    ({"s3": {"bucket": "media", "endpoint": "minio:9000"}}, r"s3.endpoint"),
    ({"s3": {"bucket": "media", "download": "stream"}}, r's3.download: expected "proxy" or'),
    ({"s3": {"bucket": "media", "access_key": "x"}}, r"s3: unknown key 'access_key'"),
])
def test_s3_mistakes_are_one_line(settings, message):
    with pytest.raises(ConfigError, match=message):
        build_config(settings, {}, {})
