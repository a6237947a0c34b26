"""``python server.py`` on an object store that stalls: its stand-in (one of its own per
provider) stopped with SIGSTOP, so that it takes connections and never answers — unlike a
store that is down, which refuses them at once.

/readyz answers 503 within its deadline and many probes hold one pool thread between them,
then 200 once the store answers again (SIGCONT); start-up gives its one line and exits 2
within its deadline; an upload gets 503 ``backend_unavailable`` within the SDK's bound, and
what the store began meanwhile keeps its intent for the sweeper. Every stall ends in a ``finally``:
nothing is left stopped.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.object_adapters import PROVIDERS, S3Objects
from tests.object_support import PREFIX, ObjectStore
from tests.serverproc import ROOT, ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
HEALTH_DEADLINE = 5.0  # tornado_files/health.py
STARTUP_DEADLINE = 30.0  # tornado_files/health.py
SDK_BOUND = 35.0  # one call on a stalled store: two attempts of a 15 s read timeout, back-off
CLEANUP_WAIT = 5.0  # tornado_files/web/base.py: an error answer waits that long for its abort


@pytest.fixture(scope="module", params=PROVIDERS, ids=lambda provider: provider.kind)
def own_store(request: pytest.FixtureRequest) -> Iterator[ObjectStore]:
    """A bucket on a stand-in of its own, which the tests stop and continue."""
    store = request.param.own()
    try:
        yield store
    finally:
        os.kill(store.standin_pid(), signal.SIGCONT)  # never leave it stopped
        store.stop_service()


@contextmanager
def stalled(store: ObjectStore) -> Iterator[None]:
    """The store's stand-in stopped (SIGSTOP by PID) for the block, continued after."""
    pid = store.standin_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def get(server: ServerProcess, path: str, timeout: float = 15.0) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def threads(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/task"))


def ready_again(server: ServerProcess, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if get(server, "/readyz")[0] == 200:
            return True
        time.sleep(0.5)
    return False


def test_readyz_answers_503_within_its_deadline_and_probes_share_one_check(
        tmp_path: Path, own_store: ObjectStore) -> None:
    store = own_store
    with running_server(tmp_path, config=store.config(), env=store.env()) as server:
        assert get(server, "/readyz")[0] == 200
        before = threads(server)
        with stalled(store):
            began = time.monotonic()
            status, body = get(server, "/readyz")
            first = time.monotonic() - began
            assert status == 503
            assert body["checks"] == {"metadata": "ok", "storage:disk": "ok",
                                      f"storage:{store.kind}": "unavailable"}
            assert first < HEALTH_DEADLINE + 2
            # Ten rapid probes join the one check still running: they answer at once and no
            # more pool threads get stuck (without single-flight: one more thread each).
            began = time.monotonic()
            for _ in range(10):
                assert get(server, "/readyz", timeout=5)[0] == 503
            assert time.monotonic() - began < 3
            assert threads(server) <= before + 2
        assert ready_again(server, within=SDK_BOUND)


def test_start_up_against_a_stalled_store_ends_in_one_line(tmp_path: Path) -> None:
    # On S3 only: the 30 s deadline is the same code for every store (services.py, unit-tested
    # in test_health_checks.py); S3 reaches it, Azure's would take as long, and GCS's SDK gives
    # up before it — about 50 s of the suite spared.
    store = S3Objects.own()
    try:
        (tmp_path / "c.toml").write_text(store.config())
        env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}
        with stalled(store):
            began = time.monotonic()
            result = subprocess.run(
                [sys.executable, str(ROOT / "server.py"), "--data-dir", str(tmp_path / "d"),
                 "--config", str(tmp_path / "c.toml"), "--port", str(free_port())],
                capture_output=True, text=True, timeout=90, cwd=tmp_path,
                env=env | store.env(), check=False)
            took = time.monotonic() - began
    finally:
        store.stop_service()
    assert result.returncode == 2
    assert result.stderr.startswith("server.py: error: cannot write to ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert took < STARTUP_DEADLINE + 10


def test_an_upload_to_a_stalled_store_is_a_quick_503_and_leaves_nothing_unswept(
        tmp_path: Path, own_store: ObjectStore) -> None:
    store = own_store
    with running_server(tmp_path, config=store.config(), env=store.env()) as server:
        with stalled(store):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=90)
            began = time.monotonic()
            connection.request("POST", store.route, body=os.urandom(64 * 1024),
                               headers={"Content-Type": "application/octet-stream"})
            answer = connection.getresponse()
            took = time.monotonic() - began
            document = json.loads(answer.read())
            connection.close()
        assert answer.status == 503
        assert document["errors"][0]["code"] == "backend_unavailable"
        assert took < SDK_BOUND + CLEANUP_WAIT + 3
        assert ready_again(server, within=SDK_BOUND)  # the calls that stalled have ended
        assert store.objects() == {}
        # What the store began while nobody heard its answer (a multipart upload, a resumable
        # session) keeps its intent: the sweeper removes it after its grace period.
        with closing(sqlite3.connect(server.data_dir / "metadata.sqlite3")) as db:
            journal = {key for (key,) in db.execute("SELECT key FROM intents WHERE store = ?",
                                                    (store.kind,))}
        assert len(journal) == 1
        assert {name.removeprefix(PREFIX) for name in store.in_progress()} <= journal
