"""``tornado-files fsck`` run as operators run it (a subprocess, as from cron) against a data
directory — and a MongoDB database — that ``python server.py`` filled, then damaged in place:
an orphan blob, a record whose blob is missing, an old intent, and a clean file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from bson import ObjectId
from pymongo import MongoClient

from tests.mongo_support import fresh_database
from tests.serverproc import ROOT, free_port, running_server
from tests.support import Part, multipart
from tornado_files.models import iso, to_micros, utcnow

pytestmark = pytest.mark.slow
LONG_AGO = utcnow() - timedelta(days=2)  # older than the default sweep_grace (24 h)


def fsck(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout, whatever the environment has installed
    return subprocess.run([sys.executable, "-m", "tornado_files", "fsck", *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
                          check=False)


def upload(url: str, content: bytes) -> str:
    body, ctype = multipart([Part("file", content, "f.bin")])
    # http://127.0.0.1 only: the URL is built by tests/serverproc.py, never taken from outside.
    request = urllib.request.Request(url + "/api/files", data=body, method="POST",  # noqa: S310
                                     headers={"Content-Type": ctype})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return str(json.load(response)["id"])


class DiskData:
    """Disk blobs and SQLite records, damaged in place."""

    store = "disk"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir)]

    def blob(self, key: str) -> Path:
        return self.data_dir / "blobs" / key[:2] / key[2:4] / key

    def remove_blob(self, key: str) -> None:
        self.blob(key).unlink()

    def plant_orphan(self, key: str) -> None:
        path = self.blob(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"nobody points at me")
        os.utime(path, (LONG_AGO.timestamp(), LONG_AGO.timestamp()))

    def has_blob(self, key: str) -> bool:
        return self.blob(key).exists()

    def sql(self, statement: str, *params: Any) -> None:
        with closing(sqlite3.connect(self.data_dir / "metadata.sqlite3")) as db, db:
            db.execute(statement, params)

    def plant_intent(self, key: str) -> None:
        self.sql("INSERT INTO intents (store, key, created_us) VALUES (?, ?, ?)",
                 self.store, key, to_micros(LONG_AGO))

    def intents(self) -> int:
        with closing(sqlite3.connect(self.data_dir / "metadata.sqlite3")) as db:
            return int(db.execute("SELECT COUNT(*) FROM intents").fetchone()[0])

    def delete_record(self, file_id: str) -> None:
        self.sql("DELETE FROM files WHERE id = ?", file_id)

    def close(self) -> None:
        return None


class GridFSData(DiskData):
    """GridFS blobs and MongoDB records, damaged in place."""

    store = "gridfs"

    def __init__(self, data_dir: Path, uri: str) -> None:
        super().__init__(data_dir)
        self.uri = uri
        self.client: MongoClient[dict[str, Any]] = MongoClient(uri)
        self.db = self.client.get_default_database()

    def args(self) -> list[str]:
        return [*super().args(), "--mongodb-uri", self.uri]

    def remove_blob(self, key: str) -> None:
        assert self.db["fs.files"].delete_one({"_id": key}).deleted_count == 1
        self.db["fs.chunks"].delete_many({"files_id": key})

    def plant_orphan(self, key: str) -> None:
        self.db["fs.files"].insert_one({"_id": key, "length": 3, "chunkSize": 261120,
                                        "uploadDate": LONG_AGO, "filename": key})
        self.db["fs.chunks"].insert_one({"_id": ObjectId.from_datetime(LONG_AGO),
                                         "files_id": key, "n": 0, "data": b"abc"})

    def has_blob(self, key: str) -> bool:
        found = self.db["fs.files"].count_documents({"_id": key})
        return bool(found + self.db["fs.chunks"].count_documents({"files_id": key}))

    def plant_intent(self, key: str) -> None:
        self.db["intents"].insert_one({"_id": f"{self.store}/{key}", "store": self.store,
                                       "key": key, "created_us": to_micros(LONG_AGO),
                                       "created": LONG_AGO})

    def intents(self) -> int:
        return int(self.db["intents"].count_documents({}))

    def delete_record(self, file_id: str) -> None:
        assert self.db["files"].delete_one({"_id": file_id}).deleted_count == 1

    def close(self) -> None:
        self.client.drop_database(self.db)
        self.client.close()


@pytest.fixture(params=["embedded", "mongo"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path
           ) -> Iterator[tuple[DiskData, dict[str, str]]]:
    """A data set the real server wrote, then: one blob removed under its record, one blob
    planted without a record, one old intent of an upload that never wrote a byte."""
    args: list[str] = []
    data: DiskData
    if request.param == "mongo":
        uri = request.getfixturevalue("standin").uri(fresh_database())
        args = ["--mongodb-uri", uri, "--storage", "gridfs"]
        data = GridFSData(tmp_path / "data", uri)
    else:
        data = DiskData(tmp_path / "data")
    with running_server(tmp_path, args) as server:
        clean, missing = upload(server.url, b"clean"), upload(server.url, b"soon missing")
    keys = {"clean": clean, "missing": missing, "orphan": uuid4().hex, "intent": uuid4().hex}
    data.remove_blob(missing)
    data.plant_orphan(keys["orphan"])
    data.plant_intent(keys["intent"])
    yield data, keys
    data.close()


def test_fsck_reports_then_repairs_what_it_may(seeded, tmp_path):
    data, keys = seeded
    store = data.store
    orphan = f"orphan blob {store}/{keys['orphan']}: no record points at it"
    missing = (f"missing blob {store}/{keys['missing']} of file {keys['missing']}: the record "
               "stays (is the store mounted?); not repaired")
    intent = f"old intent {store}/{keys['intent']} (since {iso(LONG_AGO)}): "

    found = fsck(tmp_path, *data.args())
    assert found.returncode == 1, found.stderr
    assert found.stderr == ""
    assert found.stdout.splitlines() == [
        intent + "not settled by the sweeper yet", orphan, missing,
        "fsck: 2 blob(s), 2 record(s) checked: 1 orphan blob(s), 1 record(s) without a blob, "
        "1 old intent(s); 0 repaired, 3 left"]
    assert data.has_blob(keys["orphan"])  # a check alone changes nothing
    assert data.intents() == 1

    repaired = fsck(tmp_path, *data.args(), "--repair", "--page-size", "1")
    assert repaired.returncode == 1, repaired.stderr  # the missing blob is still there
    assert repaired.stdout.splitlines() == [
        intent + "no record; every trace removed", orphan + "; removed", missing,
        "fsck: 2 blob(s), 2 record(s) checked: 1 orphan blob(s), 1 record(s) without a blob, "
        "1 old intent(s); 2 repaired, 1 left"]
    assert not data.has_blob(keys["orphan"])
    assert data.has_blob(keys["clean"])
    assert data.intents() == 0

    again = fsck(tmp_path, *data.args())
    assert again.returncode == 1
    assert again.stdout.splitlines() == [
        missing, "fsck: 1 blob(s), 2 record(s) checked: 0 orphan blob(s), 1 record(s) "
        "without a blob, 0 old intent(s); 0 repaired, 1 left"]

    data.delete_record(keys["missing"])  # the operator decides the record is gone for good
    clean = fsck(tmp_path, *data.args())
    assert clean.returncode == 0, clean.stdout
    assert clean.stdout.splitlines() == ["fsck: 1 blob(s), 1 record(s) checked: clean"]


def test_fsck_without_data_or_database_is_one_line_and_status_2(tmp_path):
    nothing = fsck(tmp_path, "--data-dir", str(tmp_path / "nowhere"))
    assert nothing.returncode == 2
    assert nothing.stdout == ""
    assert nothing.stderr.splitlines() == [
        f"tornado-files fsck: error: no tornado-files data in {tmp_path / 'nowhere'} "
        "(metadata.sqlite3 not found)"]
    port = free_port()  # nothing listens there
    unreachable = fsck(tmp_path, "--mongodb-uri",
                       f"mongodb://127.0.0.1:{port}/x?serverSelectionTimeoutMS=500")
    assert unreachable.returncode == 2
    assert unreachable.stderr.splitlines() == [
        f"tornado-files fsck: error: cannot reach MongoDB at 127.0.0.1:{port}/x"]
    bad = fsck(tmp_path, "--page-size", "0")
    assert bad.returncode == 2
    assert "--page-size" in bad.stderr
