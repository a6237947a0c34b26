"""What only the S3 store has to show, checked in the bucket through boto3 (what every object
store shows is in test_object_store.py): an upload aborted under the writer, sweeping of
crashed writers' uploads at start-up, an unreachable store at ``open_writer``, and partials
(tus) as segment objects."""

from __future__ import annotations

import hashlib
import os
from uuid import uuid4

import pytest

from tests.contract.stores import MIB
from tornado_files.blocking import Offload
from tornado_files.errors import BackendUnavailable
from tornado_files.models import StoredBlob
from tornado_files.storage.s3_settings import MIN_PART_SIZE

PART = MIN_PART_SIZE


@pytest.mark.gen_test(timeout=60)
async def test_an_upload_aborted_under_the_writer_is_unavailable_not_missing(s3):
    store, probe = s3
    writer = await store.open_writer(key := uuid4().hex)
    for upload in probe.uploads(key):
        probe.client.abort_multipart_upload(Bucket=probe.bucket, Key=upload["Key"],
                                            UploadId=upload["UploadId"])
    await writer.write(os.urandom(PART))  # the part is sent, not yet awaited
    with pytest.raises(BackendUnavailable):
        await writer.commit()
    await writer.abort()
    assert probe.in_progress() == []
    assert probe.committed() == set()


@pytest.mark.gen_test(timeout=60)
async def test_startup_aborts_only_uploads_quiet_for_longer_than_stale_after(s3):
    store, probe = s3
    crashed = uuid4().hex
    upload = probe.client.create_multipart_upload(Bucket=probe.bucket, Key=f"up/{crashed}")
    # With a part: moto dates every upload's initiation 2010-11-10 (its limitation), so only
    # a part's time tells a young upload from a stale one there.
    probe.client.upload_part(Bucket=probe.bucket, Key=f"up/{crashed}", PartNumber=1,
                             UploadId=upload["UploadId"], Body=b"x")
    foreign = probe.client.create_multipart_upload(Bucket=probe.bucket, Key="up/theirs")
    store.stale_after = 3600.0
    await store.startup()
    assert probe.in_progress() == [crashed]  # young: may be another process's upload
    store.stale_after = 0.0
    await store.startup()
    assert probe.in_progress() == []
    assert [u["Key"] for u in probe.uploads()] == ["up/theirs"]  # not ours: left alone
    probe.client.abort_multipart_upload(Bucket=probe.bucket, Key="up/theirs",
                                        UploadId=foreign["UploadId"])


@pytest.mark.gen_test(timeout=60)
async def test_an_unreachable_store_refuses_a_writer(s3, caplog):
    _, probe = s3
    offload = Offload(2)
    store, logger, _ = probe.unreachable(offload)
    caplog.set_level("CRITICAL", logger=logger)
    try:  # S3 starts its multipart upload when the writer opens
        with pytest.raises(BackendUnavailable):
            await store.open_writer(uuid4().hex)
    finally:
        await store.close()
        offload.shutdown()


@pytest.mark.gen_test(timeout=60)
async def test_a_partial_is_segments_of_part_size_finalized_by_copies_in_the_bucket(s3):
    store, probe = s3
    data = os.urandom(2 * PART + 3 * MIB)
    await store.create_partial(key := uuid4().hex)
    offset = 0
    for start in range(0, len(data), 3 * MIB):  # PATCHes that never end on a segment edge
        writer = await store.resume(key, offset)
        await writer.write(data[start:start + 3 * MIB])
        offset = await writer.settle()
        await writer.close()
        sizes = [item["Size"] for item in probe.segments(key)]
        assert sizes[:-1] == [PART] * (len(sizes) - 1)  # only the last one short
        assert sum(sizes) == offset
    assert [item["Size"] for item in probe.segments(key)] == [PART, PART, 3 * MIB]
    writer = await store.resume(key, PART - 10)  # a PATCH died: cut inside the first segment
    assert [item["Size"] for item in probe.segments(key)] == [PART - 10]
    await writer.write(data[PART - 10:])
    assert await writer.settle() == len(data)
    await writer.close()
    assert await store.finalize(key, len(data)) == StoredBlob(key, len(data))
    got = probe.client.get_object(Bucket=probe.bucket, Key=f"up/{key}")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert probe.segments(key) == []
    assert probe.in_progress() == []
    assert await store.list_keys(None, 10) == [key]
