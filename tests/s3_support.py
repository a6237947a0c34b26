"""S3 for the tests: moto in server mode (``moto_server``, a wire-compatible S3 over HTTP) as
a subprocess on a free loopback port, or a real service.

``TORNADO_FILES_TEST_S3_URI`` (e.g. ``http://127.0.0.1:9000`` for a MinIO, credentials in the
usual ``AWS_*`` variables) makes the tests use that service instead. When moto cannot start,
the tests that need it fail — they are never skipped. Objects are checked with boto3, the
provider's own SDK, never through the store under test.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import boto3
from botocore.config import Config as BotoConfig

from tests.serverproc import StandIn, answers_http, launch_standin

ROOT = Path(__file__).resolve().parents[1]
MOTO_SERVER = ROOT / ".venv" / "bin" / "moto_server"
# moto takes any credentials; a real service's come from the environment as they are.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Service:
    standin: StandIn | None  # None: a real service, not ours to stop
    endpoint: str

    def client(self) -> Any:
        """A boto3 client of our own, to look at the bucket independently of the store."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            config=BotoConfig(s3={"addressing_style": "path"},
                                              retries={"max_attempts": 1}))

    def new_bucket(self) -> str:
        name = f"tf-{uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        """End the moto process we started (by its PID); a real service is left alone."""
        if self.standin is not None:
            self.standin.stop()


def start_s3(timeout: float = 30.0, external: bool = True) -> S3Service:
    """A running S3: the real one named by ``TORNADO_FILES_TEST_S3_URI`` (unless
    ``external`` is False, for tests that stop their service), else a new moto server.
    Raises ``RuntimeError`` (with moto's output) if moto does not answer in ``timeout`` s."""
    uri = os.environ.get("TORNADO_FILES_TEST_S3_URI")
    if external and uri:
        return S3Service(None, uri)
    for name, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    standin = launch_standin(
        "moto_server", lambda port: [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        answers_http("/"), timeout)
    return S3Service(standin, f"http://127.0.0.1:{standin.port}")


def unfinished_uploads(client: Any, bucket: str) -> list[str]:
    """Keys of the bucket's unfinished multipart uploads, through boto3."""
    answer = client.list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in answer.get("Uploads", [])]


def objects(client: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    """The blobs under ``prefix`` (objects named ``prefix`` + 32 hex; not the store's marker
    or ping object): key → size. One page is plenty in tests."""
    answer = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["Size"] for o in answer.get("Contents", [])
            if re.fullmatch(r"[0-9a-f]{32}", o["Key"][len(prefix):])}


def objects_under(client: Any, bucket: str, prefix: str) -> dict[str, int]:
    """Every object under ``prefix`` whatever its name: key → size (one page)."""
    answer = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["Size"] for o in answer.get("Contents", [])}
