"""``/livez``, ``/readyz`` and ``/healthz`` (docs/api.md, Health): liveness never touches a
store; readiness is withdrawn once a shutdown began; none needs a credential."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.tokens import tokens_setting


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # Probes stay public when everything else needs a token.
    return {"tokens": tokens_setting(), "signing_key": "a-signing-key-of-at-least-32-characters"}


async def probe(http_client, base_url, path: str, method: str = "GET") -> tuple[int, Any]:
    response = await http_client.fetch(base_url + path, method=method, raise_error=False)
    return response.code, json.loads(response.body) if response.body else None


@pytest.mark.gen_test
async def test_serving(http_client, base_url):
    assert await probe(http_client, base_url, "/livez") == (200, {"status": "ok"})
    code, body = await probe(http_client, base_url, "/readyz")
    assert (code, body["status"]) == (200, "ok")
    assert body["checks"] == {"metadata": "ok", "storage:disk": "ok"}
    assert await probe(http_client, base_url, "/healthz") == (code, body)
    assert await probe(http_client, base_url, "/readyz", "HEAD") == (200, None)
    assert (await probe(http_client, base_url, "/api/files"))[0] == 401


@pytest.mark.gen_test
async def test_draining_withdraws_readiness_only(http_client, base_url, services):
    services.lifecycle.drain()
    for path in ("/readyz", "/healthz"):
        code, body = await probe(http_client, base_url, path)
        assert (code, body["status"]) == (503, "draining")
        assert body["checks"]["metadata"] == "ok"
    assert await probe(http_client, base_url, "/livez") == (200, {"status": "ok"})


@pytest.mark.allow_error_logs  # the unavailable store is a fault, logged as one
@pytest.mark.gen_test
async def test_liveness_does_not_need_the_stores(http_client, base_url, services):
    await services.metadata.close()  # the records store is gone
    assert await probe(http_client, base_url, "/livez") == (200, {"status": "ok"})
    code, body = await probe(http_client, base_url, "/readyz")
    assert (code, body["checks"]["metadata"]) == (503, "unavailable")
