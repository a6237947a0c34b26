"""Headless Chromium for the page's browser tests: Debian's build, never a downloaded one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

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
