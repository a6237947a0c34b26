"""Webhooks on the real server (docs/deploying.md, Webhooks), against a real receiver in the
test process: events signed and carrying the resource, retries after 500s with the same
delivery id, delivery after a restart, and the synchronous upload.pre_create hook rejecting
(403) or timing out (503) multipart, raw and tus uploads before anything is stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.hook_receiver import Receiver, Script, receiving
from tests.mongo_support import fresh_database
from tests.serverproc import ServerProcess, free_port, running_server, terminate
from tests.support import Part, multipart

SECRET = "s3cr3t-for-tests"


def call(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method,  # noqa: S310 (loopback)
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def hooks_toml(receiver: Receiver, hooks: list[tuple[str, str]], extra: str = "",
               **options: str) -> str:
    lines = [extra]
    for event, path in hooks:
        lines += ["[[hooks]]", f'event = "{event}"', f'url = "{receiver.url(path)}"',
                  f'secret = "{SECRET}"']
        lines += [f"{key} = {value}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def upload(server: ServerProcess, content: bytes = b"hello hooks\n",
           data: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    parts = [Part("data", json.dumps(data or {}).encode()),
             Part("file", content, filename="a.txt", content_type="text/plain")]
    body, content_type = multipart(parts)
    status, _, answer = call("POST", server.url + "/api/files", body,
                             {"Content-Type": content_type})
    return status, json.loads(answer)


def metric(server: ServerProcess, event: str, outcome: str) -> float:
    _, _, text = call("GET", server.url + "/metrics")
    pattern = (rf'^tornado_files_hook_deliveries_total\{{event="{re.escape(event)}",'
               rf'outcome="{outcome}"\}} (\S+)$')
    found = re.search(pattern, text.decode(), re.MULTILINE)
    assert found is not None, f"no {event}/{outcome} counter"
    return float(found.group(1))


def verified(received: Any) -> dict[str, Any]:
    """The body, after checking its signature as a receiver would."""
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["X-Signature-256"], expected)
    document: dict[str, Any] = received.json()
    assert received.headers["X-Hook-Event"] == document["event"]
    assert re.fullmatch(r"[0-9a-f]{32}", received.headers["X-Hook-Delivery"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["time"])
    return document


def stored_files(data_dir: Path) -> list[str]:
    """Blobs, temp files and partials anywhere in the data directory's stores (not the
    store's identity marker)."""
    return [str(p.relative_to(data_dir)) for name in ("blobs", "tmp", "partial")
            for p in (data_dir / name).rglob("*")
            if p.is_file() and p.name != ".tornado-files-store"]


def test_events_arrive_signed_with_the_resource(tmp_path: Path) -> None:
    with receiving() as receiver:
        config = hooks_toml(receiver, [("file.created", "/created"),
                                       ("file.updated", "/updated"),
                                       ("file.deleted", "/deleted"),
                                       ("upload.expired", "/expired")],
                            extra="tus_expiry = 1.0\nsweep_interval = 0.5")
        with running_server(tmp_path, config=config) as server:
            status, resource = upload(server, data={"album": "x"})
            assert status == 201
            created = verified(receiver.wait_for("/created")[0])
            _, _, shown = call("GET", server.url + f"/api/files/{resource['id']}")
            assert created["event"] == "file.created"
            assert created["file"] == json.loads(shown)
            status, _, _ = call("PATCH", server.url + f"/api/files/{resource['id']}",
                                b'{"data": {"album": "y"}}',
                                {"Content-Type": "application/json"})
            assert status == 200
            updated = verified(receiver.wait_for("/updated")[0])
            assert updated["file"]["data"] == {"album": "y"}
            assert call("DELETE", server.url + f"/api/files/{resource['id']}")[0] == 204
            deleted = verified(receiver.wait_for("/deleted")[0])
            assert deleted["file"]["id"] == resource["id"]
            # A tus upload left unfinished expires: the sweeper removes it and says so.
            status, headers, _ = call("POST", server.url + "/api/tus/", b"", {
                "Tus-Resumable": "1.0.0", "Upload-Length": "10",
                "Upload-Metadata": "filename " + base64.b64encode(b"late.bin").decode()})
            assert status == 201
            expired = verified(receiver.wait_for("/expired")[0])
            assert expired["file"]["url"] == headers["Location"]
            assert (expired["file"]["original_filename"], expired["file"]["offset"]) == (
                "late.bin", 0)
            ids = {r.headers["X-Hook-Delivery"] for r in receiver.requests}
            assert len(ids) == len(receiver.requests) == 4  # each delivered once
            assert metric(server, "file.created", "delivered") == 1
            assert metric(server, "file.deleted", "delivered") == 1


@pytest.mark.slow  # about 8 s: two real back-offs
def test_retried_after_500s_with_the_same_delivery_id(tmp_path: Path) -> None:
    with receiving() as receiver:
        receiver.scripts["/created"] = Script(statuses=[500, 500])
        config = hooks_toml(receiver, [("file.created", "/created")])
        with running_server(tmp_path, config=config) as server:
            assert upload(server)[0] == 201
            attempts = receiver.wait_for("/created", 3, timeout=20)
            assert metric(server, "file.created", "failed") == 2
            assert metric(server, "file.created", "delivered") == 1
    assert len({a.headers["X-Hook-Delivery"] for a in attempts}) == 1
    assert len({a.body for a in attempts}) == 1
    assert [a.headers["X-Hook-Attempt"] for a in attempts] == ["1", "2", "3"]
    first, second = (attempts[1].at - attempts[0].at, attempts[2].at - attempts[1].at)
    assert 1.0 <= first <= 5.0  # the first retry within 5 s
    assert second >= first  # doubling (jitter stays within each doubled step)


def test_delivered_after_a_restart(tmp_path: Path) -> None:
    port = free_port()  # nobody listens here yet: every attempt is refused
    with receiving(free_port()) as placeholder:
        config = hooks_toml(placeholder, [("file.created", "/created")])
    config = config.replace(f":{placeholder.port}/", f":{port}/")
    with running_server(tmp_path, config=config) as server:
        status, resource = upload(server)
        assert status == 201
        server_port = server.port
    terminate(server.process)
    with receiving(port) as receiver, running_server(tmp_path, config=config,
                                                     port=server_port):
        [delivery] = receiver.wait_for("/created", timeout=20)
        assert verified(delivery)["file"]["id"] == resource["id"]


def test_pre_create_rejects_before_anything_is_stored(tmp_path: Path) -> None:
    with receiving() as receiver:
        receiver.scripts["/gate"] = Script(
            statuses=[403, 403, 403, 422],
            answer=b'{"detail": "Quota exceeded for alice", "internal": "x"}')
        config = hooks_toml(receiver, [("upload.pre_create", "/gate")])
        with running_server(tmp_path, config=config) as server:
            body, content_type = multipart([Part("data", b'{"album": "x"}'),
                                            Part("file", b"abc", "a.txt", "text/plain")])
            answers = [
                call("POST", server.url + "/api/files", body, {"Content-Type": content_type}),
                call("POST", server.url + "/api/files", b"raw bytes",
                     {"Content-Type": "application/octet-stream", "X-Filename": "r.bin"}),
                call("POST", server.url + "/api/tus/", b"", {
                    "Tus-Resumable": "1.0.0", "Upload-Length": "5",
                    "Upload-Metadata": "filename " + base64.b64encode(b"t.bin").decode()}),
            ]
            # A hook answer that is not JSON with a string detail is never shown.
            receiver.scripts["/gate"] = Script(statuses=[500], answer=b"<html>oops</html>",
                                               content_type="text/html")
            answers.append(call("POST", server.url + "/api/files", b"x",
                                {"Content-Type": "text/plain"}))
            listing = json.loads(call("GET", server.url + "/api/files")[2])
            assert metric(server, "upload.pre_create", "rejected") == 4
            leftovers = stored_files(server.data_dir)
    for status, _, answer in answers[:3]:
        [error] = json.loads(answer)["errors"]
        assert (status, error["code"], error["detail"]) == (
            403, "rejected_by_hook", "Quota exceeded for alice")
    [error] = json.loads(answers[3][2])["errors"]
    assert (answers[3][0], error["code"]) == (403, "rejected_by_hook")
    assert "oops" not in answers[3][2].decode()
    assert listing["files"] == []
    assert leftovers == []
    asked = [r.json() for r in receiver.on("/gate")]
    assert asked[0] == {"route": "/api/files", "principal": None, "filename": "a.txt",
                        "size": None, "data": {"album": "x"}}
    assert (asked[1]["filename"], asked[1]["size"]) == ("r.bin", 9)
    assert (asked[2]["filename"], asked[2]["size"]) == ("t.bin", 5)


def test_pre_create_that_does_not_answer_in_time_is_503(tmp_path: Path) -> None:
    with receiving() as receiver:
        receiver.scripts["/slow"] = Script(delay=3.0)
        config = hooks_toml(receiver, [("upload.pre_create", "/slow")], timeout="0.5")
        with running_server(tmp_path, config=config) as server:
            status, _, answer = call("POST", server.url + "/api/files", b"x",
                                     {"Content-Type": "text/plain"})
            assert metric(server, "upload.pre_create", "unavailable") == 1
            leftovers = stored_files(server.data_dir)
    [error] = json.loads(answer)["errors"]
    assert (status, error["code"]) == (503, "hook_unavailable")
    assert leftovers == []
    assert "Traceback" not in server.log()
    assert " ERROR " not in server.log()


def test_two_hosts_sharing_mongodb_send_each_delivery_once(tmp_path: Path, standin: Any
                                                           ) -> None:
    uri = standin.uri(fresh_database())
    for host in ("a", "b"):
        (tmp_path / host).mkdir()
    with receiving() as receiver:
        config = hooks_toml(receiver, [("file.created", "/created"),
                                       ("file.deleted", "/deleted")])
        with running_server(tmp_path / "a", args=["--mongodb-uri", uri], config=config) as a, \
                running_server(tmp_path / "b", args=["--mongodb-uri", uri], config=config) as b:
            ids = [upload(a, content=b"file %d\n" % n)[1]["id"] for n in range(12)]
            assert call("DELETE", b.url + f"/api/files/{ids[0]}")[0] == 204
            created = receiver.wait_for("/created", 12)
            [deleted] = receiver.wait_for("/deleted")
            time.sleep(1.5)  # both delivery loops polled again: nothing is sent twice
            assert len(receiver.on("/created")) == 12
            delivered = metric(a, "file.created", "delivered") + metric(
                b, "file.created", "delivered")
    assert sorted(verified(r)["file"]["id"] for r in created) == sorted(ids)
    assert verified(deleted)["file"]["id"] == ids[0]
    assert delivered == 12
