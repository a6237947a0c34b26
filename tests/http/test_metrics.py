"""GET /metrics (docs/deploying.md, Metrics), in-process: each counter moves by the right amount
for multipart, raw and tus uploads, an early 413, a download and a media job; who may scrape;
and two applications in one process count apart (no global registry)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.support import Part, multipart
from tests.tokens import bearer, tokens_setting
from tornado_files.app import build_services
from tornado_files.config import ConfigError, build_config, env_settings
from tornado_files.metrics import CONTENT_TYPE

Key = tuple[str, frozenset[tuple[str, str]]]
SIGNING_KEY = "a-signing-key-of-at-least-32-characters"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"routes": [{"path": "/api/small", "max_body_size": "1KiB"}],
            "derivatives": {"retry_delay": 0.05, "workers": 1}}


def parse(text: str) -> dict[Key, float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


class Scraper:
    def __init__(self, client: AsyncHTTPClient, base: str) -> None:
        self.client, self.base = client, base
        self.before: dict[Key, float] = {}

    async def fetch(self, method: str, path: str, body: bytes | None = None,
                    **headers: str) -> HTTPResponse:
        return await self.client.fetch(self.base + path, method=method, body=body,
                                       headers=headers, raise_error=False,
                                       allow_nonstandard_methods=True)

    async def scrape(self) -> dict[Key, float]:
        response = await self.fetch("GET", "/metrics")
        assert response.code == 200, response.body
        return parse(response.body.decode())

    async def mark(self) -> None:
        self.before = await self.scrape()

    async def moved(self, name: str, amount: float, within: float = 5.0,
                    **labels: str) -> None:
        """Wait until sample ``name{labels}`` moved by ``amount`` since ``mark`` (an access
        line is counted once the answer has finished, a moment after the client reads it)."""
        key = (name, frozenset(labels.items()))
        deadline = asyncio.get_running_loop().time() + within
        while True:
            now = (await self.scrape()).get(key, 0.0)
            if now - self.before.get(key, 0.0) == amount:
                return
            assert asyncio.get_running_loop().time() < deadline, (key, now, self.before.get(key))
            await asyncio.sleep(0.05)


@pytest.fixture
def scraper(http_client: AsyncHTTPClient, base_url: str) -> Scraper:
    return Scraper(http_client, base_url)


def value(samples: dict[Key, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.gen_test(timeout=30)
async def test_the_exposition_names_every_metric(scraper):
    response = await scraper.fetch("GET", "/metrics")
    assert response.headers["Content-Type"] == CONTENT_TYPE
    families = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    assert {"tornado_files_requests", "tornado_files_request_duration_seconds",
            "tornado_files_upload_bytes", "tornado_files_uploads", "tornado_files_active_uploads",
            "tornado_files_download_bytes", "tornado_files_rejections",
            "tornado_files_jobs"} <= set(families)
    assert families["tornado_files_request_duration_seconds"].type == "histogram"
    assert families["tornado_files_active_uploads"].type == "gauge"
    head = await scraper.fetch("HEAD", "/metrics")
    assert head.code == 200
    assert head.body == b""


@pytest.mark.gen_test(timeout=30)
async def test_multipart_and_raw_uploads_and_a_download(scraper):
    content = b"0123456789" * 1000 + b"tail"
    await scraper.mark()
    body, ctype = multipart([Part("file", content, "a.bin")])
    created = await scraper.fetch("POST", "/api/files", body, **{"Content-Type": ctype})
    assert created.code == 201
    await scraper.moved("tornado_files_upload_bytes_total", len(content), protocol="multipart")
    await scraper.moved("tornado_files_uploads_total", 1, protocol="multipart",
                        outcome="created")
    raw = await scraper.fetch("POST", "/api/files", content[:777],
                              **{"Content-Type": "application/octet-stream"})
    assert raw.code == 201
    await scraper.moved("tornado_files_upload_bytes_total", 777, protocol="raw")
    await scraper.moved("tornado_files_uploads_total", 1, protocol="raw", outcome="created")
    await scraper.moved("tornado_files_requests_total", 2, method="POST", code="201")
    await scraper.moved("tornado_files_request_duration_seconds_count", 2, method="POST")
    location = created.headers["Location"]
    download = await scraper.fetch("GET", f"{location}/content")
    assert download.body == content
    await scraper.moved("tornado_files_download_bytes_total", len(content))
    samples = await scraper.scrape()
    assert value(samples, "tornado_files_active_uploads") == 0


@pytest.mark.gen_test(timeout=30)
async def test_a_tus_upload(scraper):
    await scraper.mark()
    created = await scraper.fetch("POST", "/api/tus/", b"", **TUS, **{"Upload-Length": "10"})
    assert created.code == 201
    url = created.headers["Location"]
    for offset, chunk in ((0, b"01234"), (5, b"56789")):
        patched = await scraper.fetch("PATCH", url, chunk, **TUS, **{
            "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})
        assert patched.code == 204, patched.body
    await scraper.moved("tornado_files_upload_bytes_total", 10, protocol="tus")
    await scraper.moved("tornado_files_uploads_total", 1, protocol="tus", outcome="created")
    await scraper.moved("tornado_files_requests_total", 2, method="PATCH", code="204")
    assert value(await scraper.scrape(), "tornado_files_active_uploads") == 0


@pytest.mark.gen_test(timeout=30)
async def test_tus_uploads_refused_and_terminated(scraper):
    await scraper.mark()
    refused = await scraper.fetch("POST", "/api/tus/", b"", **TUS,
                                  **{"Upload-Length": "10", "Upload-Metadata": "route L3g="})
    assert refused.code == 400, refused.body
    await scraper.moved("tornado_files_uploads_total", 1, protocol="tus", outcome="rejected")
    created = await scraper.fetch("POST", "/api/tus/", b"", **TUS, **{"Upload-Length": "10"})
    ended = await scraper.fetch("DELETE", created.headers["Location"], **TUS)
    assert ended.code == 204
    await scraper.moved("tornado_files_uploads_total", 1, protocol="tus", outcome="aborted")
    await scraper.moved("tornado_files_uploads_total", 0, protocol="tus", outcome="created")


@pytest.mark.gen_test(timeout=30)
async def test_a_413_before_the_body_is_counted(scraper):
    await scraper.mark()
    refused = await scraper.fetch("POST", "/api/small", b"x" * 8192,
                                  **{"Content-Type": "application/octet-stream"})
    assert refused.code == 413
    await scraper.moved("tornado_files_rejections_total", 1, code="request_too_large")
    await scraper.moved("tornado_files_requests_total", 1, method="POST", code="413")
    await scraper.moved("tornado_files_uploads_total", 1, protocol="raw", outcome="rejected")
    await scraper.moved("tornado_files_upload_bytes_total", 0, protocol="raw")
    odd = await scraper.fetch("PROPFIND", "/api/files")
    assert odd.code == 405
    await scraper.moved("tornado_files_requests_total", 1, method="other", code="405")
    assert value(await scraper.scrape(), "tornado_files_active_uploads") == 0


@pytest.mark.gen_test(timeout=90)
async def test_a_media_job_is_counted(scraper, runner):
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(picture, "PNG")
    await scraper.mark()
    body, ctype = multipart([Part("file", picture.getvalue(), "p.png")])
    created = await scraper.fetch("POST", "/api/files", body,
                                  **{"Content-Type": ctype, "Prefer": "wait=30"})
    assert created.code == 201
    await scraper.moved("tornado_files_jobs_total", 1, within=30, kind="image", outcome="done")


class TestAccessUnderTokens:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"tokens": tokens_setting(), "signing_key": SIGNING_KEY}

    @pytest.mark.gen_test(timeout=30)
    async def test_admin_only(self, scraper):
        assert (await scraper.fetch("GET", "/metrics")).code == 401
        assert (await scraper.fetch("GET", "/metrics", **bearer("rw"))).code == 403
        assert (await scraper.fetch("HEAD", "/metrics", **bearer("alice"))).code == 403
        allowed = await scraper.fetch("GET", "/metrics", **bearer("admin"))
        assert allowed.code == 200
        families = parse(allowed.body.decode())
        assert value(families, "tornado_files_rejections_total", code="unauthorized") == 1
        assert value(families, "tornado_files_rejections_total", code="forbidden") == 2


class TestPublicUnderTokens:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"tokens": tokens_setting(), "signing_key": SIGNING_KEY,
                "metrics_public": True}

    @pytest.mark.gen_test(timeout=30)
    async def test_anyone_may_scrape(self, scraper):
        assert (await scraper.fetch("GET", "/metrics")).code == 200
        assert (await scraper.fetch("GET", "/api/files")).code == 401  # nothing else opens


def test_metrics_public_from_toml_and_environment():
    assert build_config({}, {}, {}).auth.metrics_public is False
    assert build_config({"metrics_public": True}, {}, {}).auth.metrics_public is True
    env = env_settings({"TORNADO_FILES_METRICS_PUBLIC": "true"})
    assert build_config({}, env, {}).auth.metrics_public is True
    with pytest.raises(ConfigError, match="metrics_public: expected true or false"):
        build_config({"metrics_public": "sometimes"}, {}, {})
    with pytest.raises(ConfigError, match="would shadow the built-in /metrics"):
        build_config({"routes": [{"path": "/metrics", "max_body_size": "1MiB"}]}, {}, {})


def test_two_apps_in_one_process_count_apart(tmp_path: Path):
    first, second = (build_services(replace(build_config({}, {}, {}),
                                            data_dir=tmp_path / name)) for name in "ab")
    try:
        assert first.metrics.registry is not second.metrics.registry
        first.metrics.request("GET", 200, 0.01)
        first.metrics.stored("raw")(5)
        one, two = parse(first.metrics.exposition().decode()), \
            parse(second.metrics.exposition().decode())
        assert value(one, "tornado_files_requests_total", method="GET", code="200") == 1
        assert value(two, "tornado_files_requests_total", method="GET", code="200") == 0
        assert value(one, "tornado_files_upload_bytes_total", protocol="raw") == 5
        assert value(two, "tornado_files_upload_bytes_total", protocol="raw") == 0
        assert REGISTRY.get_sample_value("tornado_files_requests_total",
                                         {"method": "GET", "code": "200"}) is None
    finally:
        for services in (first, second):
            services.offload.shutdown()
