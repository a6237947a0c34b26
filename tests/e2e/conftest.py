"""Fixtures of the e2e tests: headless Chromium for the page's browser tests (Debian's build,
never a downloaded one), and each object store with a server storing there (the suites
test_object_server.py and test_object_server_more.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.object_adapters import PROVIDERS
from tests.object_support import ObjectStore
from tests.serverproc import ServerProcess, running_server
from tests.tokens import tokens_toml

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # Loopback only: any other host name fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is part of the test set-up (scripts/test.sh)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that requires tokens (tests/tokens.py)."""
    with running_server(tmp_path, config=tokens_toml()) as running:
        yield running


@pytest.fixture(params=PROVIDERS, ids=lambda provider: provider.kind)
def provider(request: pytest.FixtureRequest) -> type[ObjectStore]:
    """Each object store's adapter class (tests/object_adapters.py)."""
    return request.param


@pytest.fixture
def store(request: pytest.FixtureRequest, provider: type[ObjectStore]) -> ObjectStore:
    """A bucket (container) of its own on the session's stand-in."""
    return provider(request.getfixturevalue(provider.service_fixture))


@pytest.fixture
def object_server(tmp_path: Path, store: ObjectStore) -> Iterator[ServerProcess]:
    """A server with one route, ``store.route``, storing in ``store``."""
    with running_server(tmp_path, config=store.config(), env=store.env()) as server:
        yield server
