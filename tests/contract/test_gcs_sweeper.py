"""The sweeper with a GCS store (the emulator), SQLite records: journaled keys settled, the
bucket read back through google-cloud-storage. GCS dates objects itself, so nothing can be
aged in place: the test sweeps once with the real clock (everything is young: nothing goes)
and once with a clock two hours ahead (the grace has passed). An unfinished resumable session
is no object and GCS lists none: the sweeper cannot see one (Google drops it after a week)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from tests.contract.gcs_probe import GcsProbe
from tests.contract.test_sweeper import record
from tornado_files.app import build_sweeper
from tornado_files.models import utcnow
from tornado_files.services import Services
from tornado_files.sweeper import SweepReport

HOUR = timedelta(hours=1)


@pytest.fixture
def config_overrides(gcs_emulator: Any) -> dict[str, Any]:
    bucket = gcs_emulator.new_bucket()
    return {"sweep_grace": 3600, "gcs": {"bucket": bucket, "prefix": "sw/",
                                         "endpoint": gcs_emulator.endpoint,
                                         "part_size": "256KiB"}}


@pytest.fixture
def probe(gcs_emulator: Any, config_overrides: dict[str, Any]) -> GcsProbe:
    return GcsProbe(gcs_emulator, config_overrides["gcs"]["bucket"], "sw/")


async def committed(services: Services) -> str:
    writer = await services.blob_store("gcs").open_writer(key := uuid4().hex)
    await writer.write(b"x")
    await writer.commit()
    return key


@pytest.mark.gen_test(timeout=60)
async def test_journaled_orphans_and_dead_partials_go_once_the_grace_has_passed(services,
                                                                               probe):
    store = services.blob_store("gcs")
    intents = services.intents
    orphan = await committed(services)  # its record never went in
    recorded = await committed(services)
    await services.metadata.insert_many([record(recorded, "gcs")])
    dead = uuid4().hex  # a tus upload whose client never came back: two segments stored
    probe.bucket.blob(f"sw/.partial/{dead}/000001").upload_from_string(os.urandom(1000))
    probe.bucket.blob(f"sw/.partial/{dead}/000002").upload_from_string(os.urandom(10))
    live = await store.open_writer(uuid4().hex)
    await live.write(os.urandom(600 * 1024))  # chunks sent, still writing
    for key in (orphan, recorded, dead, live.key):
        await intents.add_intent(key, "gcs", utcnow() - 2 * HOUR)
    assert all(probe.traces(k) for k in (orphan, recorded, dead, live.key))

    first = await build_sweeper(services).sweep_once()  # all of it changed just now
    # The orphan and the dead partial are young: still writing, for all the sweeper can
    # tell. The live writer's session is invisible (GCS lists none): nothing found under its
    # key is "nothing to remove", its journal entry goes — and its session stays untouched.
    assert first == SweepReport(expired=0, removed=1, recorded=1, writing=2, failed=0)
    assert all(probe.traces(k) for k in (orphan, recorded, dead, live.key))

    await live.commit()
    await services.metadata.insert_many([record(live.key, "gcs")])
    later = await build_sweeper(services, clock=lambda: utcnow() + 2 * HOUR).sweep_once()
    # The orphan and the dead partial; the recorded key and the live one left the journal in
    # the first pass.
    assert (later.removed, later.recorded, later.writing) == (2, 0, 0)
    assert probe.traces(orphan) == probe.traces(dead) == []
    assert probe.traces(recorded) != []
    assert probe.traces(live.key) != []
    assert probe.in_progress() == []
