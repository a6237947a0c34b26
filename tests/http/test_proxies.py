"""``trusted_proxies`` in-process (docs/deploying.md, Behind a proxy): the test client connects
from 127.0.0.1; when that peer is trusted its X-Forwarded-* headers decide the address in the
access log and the request's scheme and host, and otherwise they change nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from tornado.web import Application, RequestHandler

FORWARDED = {"X-Forwarded-For": "198.51.100.9, 203.0.113.5",
             "X-Forwarded-Proto": "https", "X-Forwarded-Host": "files.example"}


class EchoHandler(RequestHandler):
    """Test only: what the application believes about the request."""

    def get(self) -> None:
        self.write({"remote_ip": self.request.remote_ip, "protocol": self.request.protocol,
                    "host": self.request.host, "host_name": self.request.host_name,
                    "url": self.request.full_url()})


@pytest.fixture
def app(app: Application) -> Application:
    app.add_handlers(r".*", [(r"/test-echo", EchoHandler)])
    return app


async def fetch(http_client: Any, base_url: str, path: str, **headers: str) -> Any:
    return await http_client.fetch(base_url + path, headers=headers, raise_error=False)


async def echo(http_client: Any, base_url: str, **headers: str) -> dict[str, str]:
    response = await fetch(http_client, base_url, "/test-echo", **headers)
    seen: dict[str, str] = json.loads(response.body)
    return seen


def access_addresses(caplog: pytest.LogCaptureFixture, path: str) -> list[str]:
    """The address in each access line for ``path`` ("status METHOD uri (address) time")."""
    return [record.getMessage().split(" (")[1].split(")")[0] for record in caplog.records
            if record.name == "tornado.access" and f" {path} " in record.getMessage()]


@pytest.mark.parametrize("config_overrides", [{"trusted_proxies": ["127.0.0.1"]},
                                              {"trusted_proxies": ["10.0.0.0/8", "::1"]}])
@pytest.mark.gen_test
async def test_a_trusted_peer_forwards_the_client(http_client, base_url, caplog, config):
    trusted = any(str(n) == "127.0.0.1/32" for n in config.trusted_proxies)
    caplog.set_level(logging.INFO, logger="tornado.access")
    seen = await echo(http_client, base_url, **FORWARDED)
    host = base_url.removeprefix("http://")
    if trusted:
        assert seen == {"remote_ip": "203.0.113.5", "protocol": "https",
                        "host": "files.example", "host_name": "files.example",
                        "url": "https://files.example/test-echo"}
    else:  # 127.0.0.1 is not among them: the headers change nothing
        assert seen == {"remote_ip": "127.0.0.1", "protocol": "http", "host": host,
                        "host_name": "127.0.0.1", "url": f"{base_url}/test-echo"}
    # The access line of an API answer, a 404 and the upload page show the believed client.
    for path in ("/api/files", "/no-such-path", "/"):
        await fetch(http_client, base_url, path, **FORWARDED)
        assert access_addresses(caplog, path) == ["203.0.113.5" if trusted else "127.0.0.1"]


@pytest.mark.parametrize("config_overrides", [{}])
@pytest.mark.gen_test
async def test_without_trusted_proxies_the_headers_change_nothing(http_client, base_url,
                                                                  caplog):
    caplog.set_level(logging.INFO, logger="tornado.access")
    seen = await echo(http_client, base_url, **FORWARDED)
    assert seen["url"] == f"{base_url}/test-echo"
    assert seen["remote_ip"] == "127.0.0.1"
    await fetch(http_client, base_url, "/api/files", **FORWARDED)
    assert access_addresses(caplog, "/api/files") == ["127.0.0.1"]


@pytest.mark.parametrize("config_overrides", [{"trusted_proxies": ["127.0.0.1"]}])
@pytest.mark.gen_test
async def test_malformed_or_spoofed_forwarding(http_client, base_url, caplog):
    caplog.set_level(logging.INFO, logger="tornado.access")
    # A malformed entry where the walk reaches it: the peer stays.
    await fetch(http_client, base_url, "/api/files", **{"X-Forwarded-For": "unknown"})
    # What the client wrote left of its own address is ignored.
    await fetch(http_client, base_url, "/missing",
                **{"X-Forwarded-For": "garbage, 10.0.0.1, 203.0.113.7"})
    assert access_addresses(caplog, "/api/files") == ["127.0.0.1"]
    assert access_addresses(caplog, "/missing") == ["203.0.113.7"]
    # A scheme or host that is not one is ignored.
    seen = await echo(http_client, base_url,
                      **{"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "a b"})
    assert seen["url"] == f"{base_url}/test-echo"
