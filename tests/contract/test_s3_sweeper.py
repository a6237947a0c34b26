"""The sweeper with an S3 store (moto), SQLite records: journaled keys settled, the bucket read
back through boto3. S3 sets an object's or part's time itself, so nothing can be aged in place:
the test sweeps once with the real clock (everything is young: nothing goes) and once with a
clock two hours ahead (the grace has passed)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from tests.contract.s3_probe import S3Probe
from tests.contract.test_sweeper import record
from tornado_files.app import build_sweeper
from tornado_files.models import utcnow
from tornado_files.services import Services
from tornado_files.sweeper import SweepReport

HOUR = timedelta(hours=1)


@pytest.fixture
def config_overrides(s3_service: Any) -> dict[str, Any]:
    bucket = s3_service.new_bucket()
    return {"sweep_grace": 3600, "s3": {"bucket": bucket, "prefix": "sw/",
                                        "endpoint": s3_service.endpoint}}


@pytest.fixture
def probe(s3_service: Any, config_overrides: dict[str, Any]) -> S3Probe:
    return S3Probe(s3_service, config_overrides["s3"]["bucket"], "sw/")


async def committed(services: Services) -> str:
    writer = await services.blob_store("s3").open_writer(key := uuid4().hex)
    await writer.write(b"x")
    await writer.commit()
    return key


@pytest.mark.gen_test(timeout=60)
async def test_journaled_orphans_and_dead_uploads_go_once_the_grace_has_passed(services, probe):
    intents = services.intents
    orphan = await committed(services)  # its record never went in
    recorded = await committed(services)
    await services.metadata.insert_many([record(recorded, "s3")])
    dead = uuid4().hex  # a writer whose process died after storing a part
    upload = probe.client.create_multipart_upload(Bucket=probe.bucket, Key=f"sw/{dead}")
    probe.client.upload_part(Bucket=probe.bucket, Key=f"sw/{dead}", PartNumber=1,
                             UploadId=upload["UploadId"], Body=os.urandom(1000))
    live = await services.blob_store("s3").open_writer(uuid4().hex)
    await live.write(os.urandom(9 * 1024 * 1024))  # a part stored, still writing
    for key in (orphan, recorded, dead, live.key):
        await intents.add_intent(key, "s3", utcnow() - 2 * HOUR)
    assert all(probe.traces(k) for k in (orphan, recorded, dead, live.key))

    first = await build_sweeper(services).sweep_once()  # all of it changed just now
    assert first == SweepReport(expired=0, removed=0, recorded=1, writing=3, failed=0)
    assert all(probe.traces(k) for k in (orphan, recorded, dead, live.key))

    await live.commit()
    await services.metadata.insert_many([record(live.key, "s3")])
    later = await build_sweeper(services, clock=lambda: utcnow() + 2 * HOUR).sweep_once()
    assert (later.removed, later.recorded, later.writing) == (2, 1, 0)
    assert probe.traces(orphan) == probe.traces(dead) == []
    assert probe.traces(recorded) != []
    assert probe.traces(live.key) != []
    assert probe.in_progress() == []
