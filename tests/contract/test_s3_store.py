"""What only the S3 store has to show, checked in the bucket through boto3: parts of
``part_size`` with at most two in flight, nothing left after an abort or a failure (no
unfinished multipart upload to be billed for), sweeping of crashed writers' uploads, paged
listing, the marker, and a store that cannot be reached."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from uuid import uuid4

import pytest

from tests.contract.stores import MIB, write_blob
from tests.serverproc import free_port
from tornado_files.blocking import Offload
from tornado_files.config import ConfigError
from tornado_files.errors import BackendUnavailable
from tornado_files.models import StoredBlob, utcnow
from tornado_files.storage.base import SweepableStore
from tornado_files.storage.s3 import S3BlobStore
from tornado_files.storage.s3_settings import MIN_PART_SIZE, S3Settings

PART = MIN_PART_SIZE
HOUR = timedelta(hours=1)


@pytest.mark.gen_test(timeout=60)
async def test_parts_of_part_size_and_the_object_is_exact(s3):
    store, probe = s3
    content = os.urandom(2 * PART + 3 * MIB + 17)
    writer = await store.open_writer(key := uuid4().hex)
    for start in range(0, len(content), 999_983):  # pieces that never align with parts
        await writer.write(content[start:start + 999_983])
        # Never more than a part buffered plus two parts in flight (the memory bound).
        assert writer._parts.buffered < PART
        assert writer._parts.in_flight <= 2
    await writer.end()
    assert probe.parts(key) == [PART, PART, 3 * MIB + 17]
    assert probe.committed() == set()  # nothing visible before commit
    assert await writer.commit() == StoredBlob(key, len(content))
    got = probe.client.get_object(Bucket=probe.bucket, Key=f"up/{key}")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(content).digest()
    assert probe.in_progress() == []


@pytest.mark.gen_test(timeout=60)
async def test_abort_with_parts_stored_and_in_flight_leaves_no_upload(s3):
    store, probe = s3
    writer = await store.open_writer(key := uuid4().hex)
    await writer.write(os.urandom(2 * PART + 1))
    assert probe.in_progress() == [key]
    await writer.abort()
    await writer.abort()  # idempotent
    assert probe.in_progress() == []
    assert probe.committed() == set()


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
async def test_remove_traces_spares_what_changed_since_and_aborts_the_rest(s3):
    store, probe = s3
    assert isinstance(store, SweepableStore)
    done = await write_blob(store, [b"kept until old"])
    streaming = await store.open_writer(busy := uuid4().hex)
    await streaming.write(os.urandom(PART))
    await streaming.end()
    past, future = utcnow() - HOUR, utcnow() + HOUR
    assert not await store.remove_traces(done, past)
    assert not await store.remove_traces(busy, past)
    assert probe.traces(done)
    assert probe.traces(busy)
    assert await store.remove_traces(done, future)
    assert await store.remove_traces(busy, future)
    assert probe.traces(done) == probe.traces(busy) == []
    assert await store.remove_traces(done, future)  # idempotent
    assert await store.remove_traces("../etc", future)


@pytest.mark.gen_test(timeout=60)
async def test_list_keys_pages_over_ours_only(s3):
    store, probe = s3
    keys = sorted([await write_blob(store, [b"x"]) for _ in range(5)])
    probe.add_foreign()
    assert await store.list_keys(None, 2) == keys[:2]
    assert await store.list_keys(keys[1], 10) == keys[2:]
    assert await store.list_keys(keys[-1], 10) == []
    assert await store.list_keys(None, 0) == []
    assert await store.has_blobs()


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
async def test_the_marker_is_written_once(s3):
    store, probe = s3
    assert await store.read_marker() is None
    assert not await store.has_blobs()
    assert await store.write_marker("a" * 32) == "a" * 32
    assert await store.write_marker("b" * 32) == "a" * 32
    assert await store.read_marker() == "a" * 32
    assert probe.committed() == set()  # the marker is no blob


@pytest.mark.gen_test(timeout=60)
async def test_an_unreachable_store_is_unavailable_and_refuses_to_start(caplog):
    caplog.set_level("CRITICAL", logger="tornado_files.storage.s3_client")
    offload = Offload(2)
    settings = S3Settings(bucket="media", endpoint=f"http://127.0.0.1:{free_port()}")
    store = S3BlobStore(settings, offload)
    try:
        with pytest.raises(BackendUnavailable):
            await store.ping()
        with pytest.raises(BackendUnavailable):
            await store.open_writer(uuid4().hex)
        with pytest.raises(ConfigError, match=r"cannot write to s3://media/ at http://127"):
            await store.startup()
        with pytest.raises(ConfigError, match=r"cannot write to s3://media/ at http://127"):
            await store.read_marker()  # the first call of start-up (store_identity)
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
