"""Webhooks against receivers that misbehave or hold secrets (docs/deploying.md, Webhooks): a
huge answer body costs the server no memory, credentials in a hook's URL are sent but never
logged, a rejecting hook's detail forges no line, and a removed hook's backlog is given up in
one summary line."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import pytest

from tests.e2e.test_webhooks import call, metric, upload
from tests.hook_receiver import Script, receiving
from tests.serverproc import free_port, running_server, terminate

MIB = 1024 * 1024
PASSWORD = "SuperSecretPw"
TOKEN = "TopSecretToken"


def hook(event: str, url: str, timeout: float = 5.0) -> str:
    return f'[[hooks]]\nevent = "{event}"\nurl = "{url}"\ntimeout = {timeout}\n'


def test_a_huge_answer_body_is_dropped_and_the_delivery_retried(tmp_path: Path) -> None:
    with receiving() as receiver:
        receiver.scripts["/big"] = Script(statuses=[500, 500], answer_size=64 * MIB)
        config = hook("file.created", receiver.url("/big"))
        with running_server(tmp_path, config=config) as server:
            baseline = server.status("VmHWM")
            assert upload(server, b"one")[0] == 201
            assert upload(server, b"two")[0] == 201
            attempts = receiver.wait_for("/big", 4, timeout=20)
            time.sleep(0.3)  # the last answers are read
            growth = server.status("VmHWM") - baseline
            assert metric(server, "file.created", "failed") == 2
    # Two 64 MiB answers were sent: read whole, each would have cost 64 MiB or more.
    assert growth < 24 * MIB, f"peak RSS grew {growth / MIB:.0f} MiB"
    assert sorted(a.headers["X-Hook-Attempt"] for a in attempts) == ["1", "1", "2", "2"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_credentials_in_hook_urls_are_sent_but_never_logged(tmp_path: Path, log_format: str
                                                           ) -> None:
    closed = free_port()  # nobody listens: refused
    with receiving() as receiver:
        secret = f"user:{PASSWORD}@127.0.0.1:{receiver.port}"
        gate, auth = f"/gate?token={TOKEN}", f"/auth?token={TOKEN}"  # the receiver's paths
        config = (hook("upload.pre_create", f"http://{secret}{gate}", 0.5)
                  + hook("file.created", f"http://{secret}{auth}")
                  + hook("file.created", f"http://user:{PASSWORD}@127.0.0.1:{closed}/x?"
                                         f"token={TOKEN}"))
        # A detail with line breaks, NUL and ESC: passed on with spaces instead.
        receiver.scripts[gate] = Script(statuses=[403], answer=json.dumps(
            {"detail": "Quota exceeded\r\nINFO forged line\x00\x1b[31m"}).encode())
        receiver.scripts[auth] = Script(statuses=[500])
        with running_server(tmp_path, ["--log-format", log_format], config=config) as server:
            rejected = call("POST", server.url + "/api/files", b"x",
                            {"Content-Type": "text/plain"})
            receiver.scripts[gate] = Script(delay=1.5)
            unavailable = call("POST", server.url + "/api/files", b"x",
                               {"Content-Type": "text/plain"})
            receiver.scripts[gate] = Script()
            assert upload(server)[0] == 201
            delivered = receiver.wait_for(auth, 2, timeout=20)
            log = server.log()
    assert unavailable[0] == 503
    basic = "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    assert {r.headers.get("Authorization") for r in receiver.on(gate)} == {basic}
    assert delivered[1].headers["Authorization"] == basic
    assert PASSWORD not in log
    assert TOKEN not in log
    assert not re.search(r"^INFO forged", log, re.MULTILINE)
    [error] = json.loads(rejected[2])["errors"]
    assert (rejected[0], error["detail"]) == (403, "Quota exceeded  INFO forged line  [31m")
    # The three URLs are logged (a retry, a refused connection, a pre_create timeout), redacted.
    for shown in (f"http://REDACTED@127.0.0.1:{receiver.port}/auth?REDACTED",
                  f"http://REDACTED@127.0.0.1:{closed}/x?REDACTED",
                  f"http://REDACTED@127.0.0.1:{receiver.port}/gate?REDACTED"):
        assert shown in log, shown
    if log_format == "json":
        for line in log.splitlines():
            json.loads(line)


def test_a_removed_hooks_backlog_is_given_up_in_one_line(tmp_path: Path) -> None:
    closed = free_port()
    old = hook("file.created", f"http://127.0.0.1:{closed}/old?token={TOKEN}")
    with running_server(tmp_path, config="hook_retry_max = 1\n" + old) as server:
        for n in range(6):
            assert upload(server, b"file %d\n" % n)[0] == 201
        port = server.port
    terminate(server.process)
    time.sleep(1.2)  # every retry is due (hook_retry_max = 1 s)
    with receiving() as receiver:
        renamed = hook("file.created", receiver.url("/new"))
        with running_server(tmp_path, config=renamed, port=port) as server:
            deadline = time.monotonic() + 10
            while metric(server, "file.created", "given_up") < 6 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.5)  # the delivery loop's next pass writes the summary
            log = server.log()
        assert receiver.requests == []
    lines = [line for line in log.splitlines() if "gave up" in line]
    assert lines == [line for line in lines if
                     f"gave up 6 delivery(ies) of file.created to http://127.0.0.1:{closed}/old"
                     f"?REDACTED (no such hook is configured)" in line]
    assert len(lines) == 1
