"""Fixtures shared by the contract suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tornado_files.blocking import Offload


@pytest.fixture
def offload() -> Iterator[Offload]:
    pool = Offload(4)
    yield pool
    pool.shutdown()
