"""A download link's lifetime when the client names none: the default (an hour) shortened to
``max_link_lifetime`` when that is shorter, so a client that knows nothing of the server's
configuration (the page, ``tornado-files link`` without ``--expires``) still gets a link."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from tests.support import PNG_1PX, Part, multipart

TOKEN = "alice-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "tokens": [{"token": TOKEN, "principal": "alice", "scopes": ["read", "write"]}],
        "signing_key": "a-signing-key-of-at-least-32-characters",
        "max_link_lifetime": 600,
    }


async def _file(http_client, base_url) -> str:
    body, ctype = multipart([Part("file", PNG_1PX, "p.png")])
    response = await http_client.fetch(base_url + "/api/files", method="POST", body=body,
                                       headers={**AUTH, "Content-Type": ctype})
    return str(json.loads(response.body)["id"])


async def _link(http_client, base_url, body: bytes):
    """POST a link request for a fresh file; the answer, whatever it is."""
    file_id = await _file(http_client, base_url)
    return await http_client.fetch(
        f"{base_url}/api/files/{file_id}/links", method="POST", body=body,
        headers={**AUTH, "Content-Type": "application/json"}, raise_error=False)


@pytest.mark.gen_test
async def test_the_default_lifetime_is_capped_by_max_link_lifetime(http_client, base_url):
    response = await _link(http_client, base_url, b"{}")
    assert response.code == 201, response.body
    expires = datetime.fromisoformat(json.loads(response.body)["expires"].replace("Z", "+00:00"))
    assert 590 <= expires.timestamp() - time.time() <= 601


@pytest.mark.gen_test
async def test_an_explicit_lifetime_over_the_maximum_is_still_refused(http_client, base_url):
    response = await _link(http_client, base_url, b'{"expires_in": 601}')
    assert response.code == 400
    error = json.loads(response.body)["errors"][0]
    assert error["meta"] == {"parameter": "expires_in", "max_link_lifetime": 600}
