"""The upload page in headless Chromium (Debian's, driven by Playwright), against ``python
server.py`` in a subprocess. Screenshots of each final state go to ``artifacts/`` (git-ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, Route
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.test_cli import start_server
from tests.serverproc import ROOT, ServerProcess, free_port, running_server, terminate
from tests.support import Part, multipart
from tests.tokens import TOKENS, WRONG_TOKEN, bearer

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
ARTIFACTS = ROOT / "artifacts"
CONFIG = """
[[routes]]
path = "/api/small"
max_body_size = "40KiB"

[[routes]]
path = "/api/images"
max_body_size = "8MiB"
allowed_mime_types = ["image/png", "image/jpeg"]

[[routes]]
path = "/api/notes"
max_body_size = "50kB"

[[routes]]
path = "/api/docs"
max_body_size = "1.5MB"

[[routes]]
path = "/api/odd"
max_body_size = 1234567
"""


@pytest.fixture
def server(tmp_path) -> Iterator[ServerProcess]:
    with running_server(tmp_path, config=CONFIG) as running:
        yield running


@pytest.fixture
def page(browser, server) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.goto(server.url + "/")
    opened.wait_for_selector("#route option", state="attached")
    yield opened
    # Let every route handler a test installed finish before the page goes: one still pending
    # when the context closes is destroyed later and logged, failing whichever test then runs.
    opened.unroute_all(behavior="wait")
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)


def make(tmp_path: Path, name: str, size: int, head: bytes = b"") -> Path:
    path = tmp_path / name
    with path.open("wb") as fh:
        fh.write(head)
        remaining = size - len(head)
        while remaining > 0:
            block = os.urandom(min(MIB, remaining))
            fh.write(block)
            remaining -= len(block)
    return path


def files_on_server(server: ServerProcess, who: str | None = None) -> list[dict[str, object]]:
    """The server's records, asked as ``who`` (tests/tokens.py) or without a token."""
    request = urllib.request.Request(server.url + "/api/files?limit=1000",  # noqa: S310
                                     headers=bearer(who) if who else {})
    with urllib.request.urlopen(request) as response:  # noqa: S310 (our loopback server)
        return list(json.load(response)["files"])


def residue(server: ServerProcess) -> list[str]:
    data = server.data_dir
    return [str(p.relative_to(data)) for p in data.rglob("*")
            if p.is_file() and p.parts[-2] in ("tmp", "partial")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_small_and_large_upload_at_once(page, server, tmp_path):
    small = make(tmp_path, "small.bin", 5 * MIB)
    large = make(tmp_path, "large.bin", 64 * MIB)  # ≥ 16 MiB: goes over tus
    page.set_input_files("#files", [str(small), str(large)])
    page.wait_for_function(
        "document.querySelectorAll('#transfers li[data-state=done]').length === 2",
        timeout=120_000)
    assert page.locator("#transfers li[data-percent='100']").count() == 2
    for path in (small, large):
        row = page.locator("#file-list li", has_text=path.name)
        row.wait_for()
        assert row.get_attribute("data-sha256") == sha256(path)
    assert page.locator("#transfers .error").count() == 0
    assert page.locator("#more").is_hidden()  # one page of files: no "Show more"
    assert server.log().count("PATCH /api/tus/") >= 8  # the large one went in tus chunks
    shot(page, "two-uploads-done")


def test_too_large_and_wrong_type_are_explained(page, tmp_path):
    page.select_option("#route", "/api/small")
    assert "40 KiB" in page.inner_text("#limits")
    page.set_input_files("#files", str(make(tmp_path, "big.txt", 100_000)))
    error = page.locator("#transfers .error").first
    error.wait_for()
    assert error.inner_text() == "Too large — the limit here is 40 KiB"
    page.select_option("#route", "/api/images")
    page.set_input_files("#files", str(make(tmp_path, "doc.png", 50_000, b"%PDF-1.4\n")))
    page.wait_for_function("document.querySelectorAll('#transfers .error').length === 2")
    assert page.locator("#transfers .error").first.inner_text() == \
        "Only image/png, image/jpeg accepted here (this file is application/pdf)"
    shot(page, "refusals")


@pytest.mark.parametrize(("route", "limit"), [
    ("/api/files", "10 GiB"), ("/api/small", "40 KiB"), ("/api/notes", "50 kB"),
    ("/api/docs", "1.5 MB"), ("/api/odd", "1.2 MiB"),
])
def test_limits_read_in_sensible_units(page, tmp_path, route, limit):
    page.select_option("#route", route)
    assert page.inner_text("#limits").startswith(f"Up to {limit} per file")


def test_a_refusal_names_a_decimal_limit(page, tmp_path):
    page.select_option("#route", "/api/notes")
    page.set_input_files("#files", str(make(tmp_path, "big.txt", 60_000)))
    error = page.locator("#transfers .error").first
    error.wait_for()
    assert error.inner_text() == "Too large — the limit here is 50 kB"


def test_cancel_mid_upload_leaves_nothing(page, server, tmp_path):
    held: list[Route] = []
    page.route("**/api/tus/*", lambda route: _slow(route, held))
    page.set_input_files("#files", str(make(tmp_path, "cancel.bin", 40 * MIB)))
    page.wait_for_function("document.querySelector('#transfers li') && "
                           "document.querySelector('#transfers li').dataset.percent > 0",
                           timeout=60_000)
    page.click("#transfers li button")
    page.wait_for_selector("#transfers li[data-state=cancelled]")
    page.wait_for_timeout(500)
    assert files_on_server(server) == []
    assert residue(server) == []
    shot(page, "cancelled")
    for route in held:
        route.abort()


def _slow(route: Route, held: list[Route]) -> None:
    if route.request.method == "PATCH" and route.request.headers.get("upload-offset") != "0":
        held.append(route)  # hold later chunks: the upload stays in flight until cancelled
        return
    route.continue_()


def test_interrupted_tus_upload_is_finished_by_the_page(page, server, tmp_path):
    failures = {"left": 2}

    def flaky(route: Route) -> None:
        if route.request.method == "PATCH" and failures["left"] and \
                route.request.headers.get("upload-offset") != "0":
            failures["left"] -= 1
            route.abort("connectionreset")
            return
        route.continue_()
    page.route("**/api/tus/*", flaky)
    path = make(tmp_path, "flaky.bin", 30 * MIB)
    page.set_input_files("#files", str(path))
    page.wait_for_selector("#transfers li[data-state=done]", timeout=120_000)
    assert failures["left"] == 0
    row = page.locator("#file-list li", has_text="flaky.bin")
    row.wait_for()
    assert row.get_attribute("data-sha256") == sha256(path)
    shot(page, "resumed-after-network-errors")


def test_delete_from_the_list(page, server, tmp_path):
    page.set_input_files("#files", str(make(tmp_path, "gone.bin", 1000)))
    row = page.locator("#file-list li", has_text="gone.bin")
    row.wait_for()
    asked: list[str] = []

    def answer(accept: bool) -> Callable[[Dialog], None]:
        def handle(dialog: Dialog) -> None:
            asked.append(f"{dialog.type}: {dialog.message}")
            dialog.accept() if accept else dialog.dismiss()
        return handle
    page.once("dialog", answer(False))  # "Cancel": nothing happens
    row.get_by_role("button", name="Delete gone.bin").click()
    page.wait_for_timeout(500)
    assert asked == ["confirm: Delete gone.bin? This cannot be undone."]
    assert row.is_visible()
    assert len(files_on_server(server)) == 1
    page.once("dialog", answer(True))
    row.get_by_role("button", name="Delete gone.bin").click()
    row.wait_for(state="detached")
    assert len(asked) == 2
    assert "Deleted gone.bin" in page.inner_text("#list-status")
    assert files_on_server(server) == []
    shot(page, "deleted")


def test_reload_resumes_the_tus_upload(page, server, tmp_path):
    held: list[Route] = []
    holding = {"on": True}

    def hold(route: Route) -> None:
        # Until the reload, later chunks are held: the upload stays in flight. After it,
        # everything passes.
        if holding["on"]:
            _slow(route, held)
            return
        route.continue_()
    page.route("**/api/tus/*", hold)
    path = make(tmp_path, "reload.bin", 40 * MIB)
    page.set_input_files("#files", str(path))
    # Reload only once a later chunk is held: progress shows during the first chunk, and a
    # busy machine that let the rest through finished the upload before the reload.
    deadline = time.monotonic() + 60
    while not any(r.request.method == "PATCH" for r in held):
        assert time.monotonic() < deadline, "no later chunk was sent"
        page.wait_for_timeout(50)  # Playwright dispatches route handlers while it waits
    _release(held)  # what closing the tab does to its requests in flight
    page.reload()  # the tab is closed mid-upload and opened again
    holding["on"] = False
    _release(held)  # whatever the closing tab still sent
    page.wait_for_selector("#route option", state="attached")
    page.set_input_files("#files", str(path))  # the same file, chosen again
    page.wait_for_selector("#transfers li[data-state=done]", timeout=120_000)
    row = page.locator("#file-list li", has_text="reload.bin")
    row.wait_for()
    assert row.get_attribute("data-sha256") == sha256(path)
    log = server.log()
    assert log.count("201 POST /api/tus/") == 1, "the upload was continued, not begun again"
    assert "200 HEAD /api/tus/" in log
    shot(page, "resumed-after-reload")


def _release(held: list[Route]) -> None:
    """Abort held routes (those whose request the page has not given up on already)."""
    for route in held:
        with suppress(PlaywrightError):
            route.abort()
    held.clear()


def test_a_stalled_patch_is_aborted_and_resumed(page, server, tmp_path):
    page.evaluate("document.body.dataset.stallSeconds = '2'")
    held: list[Route] = []
    done = {"stall": False, "busy": False}

    def stall_once(route: Route) -> None:
        request = route.request
        if request.method == "PATCH" and request.headers.get("upload-offset") != "0" \
                and not done["stall"]:
            done["stall"] = True
            held.append(route)  # never answered, never progresses: a stalled connection
            return
        if request.method == "HEAD" and done["stall"] and not done["busy"]:
            done["busy"] = True  # the first HEAD after it meets an overloaded server
            route.fulfill(status=503, headers={"Retry-After": "1"}, body="")
            return
        route.continue_()
    page.route("**/api/tus/*", stall_once)
    path = make(tmp_path, "stalled.bin", 24 * MIB)  # three 8 MiB PATCHes
    page.set_input_files("#files", str(path))
    try:
        row = page.locator("#transfers li[data-state=retrying]")
        row.wait_for(timeout=30_000)
        assert "retrying" in row.inner_text()
    finally:
        _release(held)
    page.wait_for_selector("#transfers li[data-state=done]", timeout=120_000)
    assert done == {"stall": True, "busy": True}
    assert page.get_attribute("#transfers li", "data-retries") == "2"  # the PATCH, the HEAD
    stored = page.locator("#file-list li", has_text="stalled.bin")
    stored.wait_for()
    assert stored.get_attribute("data-sha256") == sha256(path)
    assert server.log().count("201 POST /api/tus/") == 1, "resumed, not begun again"
    shot(page, "resumed-after-a-stall")


OUT_OF_SPACE = json.dumps({"errors": [{
    "status": "507", "code": "insufficient_storage", "title": "Insufficient storage",
    "detail": "The server has no room to store this upload"}]})


def test_an_out_of_space_answer_is_said_at_once_not_retried(page, server, tmp_path):
    """A PATCH answered 507 (the server's disk is full) is not "connection trouble": the row
    says so in words at once, and nothing is retried (no HEAD, no other PATCH)."""
    seen: list[str] = []

    def full_disk(route: Route) -> None:
        request = route.request
        seen.append(f"{request.method} {request.headers.get('upload-offset', '')}")
        if request.method == "PATCH" and request.headers.get("upload-offset") != "0":
            route.fulfill(status=507, content_type="application/json; charset=UTF-8",
                          body=OUT_OF_SPACE)
            return
        route.continue_()
    page.route("**/api/tus/*", full_disk)
    path = make(tmp_path, "full.bin", 24 * MIB)  # three 8 MiB PATCHes: the second is refused
    page.set_input_files("#files", str(path))
    row = page.locator("#transfers li[data-state=error]")
    row.wait_for(timeout=10_000)
    assert row.locator(".error").inner_text() == \
        "The server is out of space: try again once room has been freed"
    assert row.get_attribute("data-retries") is None
    page.wait_for_timeout(1500)  # longer than the first back-off: a retry would show by now
    assert seen == ["POST ", "PATCH 0", f"PATCH {8 * MIB}"]
    assert page.locator("#transfers li[data-state=retrying]").count() == 0
    shot(page, "out-of-space")


def test_a_post_answered_408_is_sent_again(page, server, tmp_path):
    timed_out: list[str] = []

    def first_408(route: Route) -> None:
        if route.request.method == "POST" and not timed_out:
            timed_out.append(route.request.url)  # as the server answers a body that stalled
            route.fulfill(status=408, content_type="application/json; charset=UTF-8",
                          body=json.dumps({"errors": [{
                              "status": "408", "code": "request_timeout",
                              "title": "The request body stopped arriving",
                              "detail": "No data arrived for too long; the upload was dropped",
                          }]}))
            return
        route.continue_()
    page.route("**/api/files", first_408)
    path = make(tmp_path, "again.bin", 300_000)
    page.set_input_files("#files", str(path))
    page.wait_for_selector("#transfers li[data-state=done]", timeout=30_000)
    assert timed_out
    assert page.get_attribute("#transfers li", "data-retries") == "1"
    assert [f["sha256"] for f in files_on_server(server)] == [sha256(path)]
    assert server.log().count("201 POST /api/files") == 1


def test_a_list_request_that_never_answers_times_out(page, server):
    page.evaluate("document.body.dataset.requestTimeoutSeconds = '1'")
    held: list[Route] = []
    page.route("**/api/files?*", lambda route: held.append(route))
    try:
        page.fill("#filter", "nothing")
        page.wait_for_function(
            "document.querySelector('#list-status').textContent === "
            "'The server did not answer in time'", timeout=10_000)
    finally:
        # Answer the held request before unrouting: unrouted first, Playwright passes the
        # request the page has already given up on to the network and waits for that
        # forever; the waiting task is destroyed later, logged, and fails another test.
        _release(held)
        page.unroute("**/api/files?*")


def test_a_large_upload_rides_out_a_server_restart(browser, tmp_path):
    """The server is stopped (SIGTERM) mid-upload and started again on the same port and data
    directory two seconds later: the page's PATCH fails, its HEADs meet a refused connection
    and then, until the cut PATCH's lease runs out, 423 — all retried with back-off — and the
    upload finishes where the server left off."""
    port = free_port()
    server = start_server(tmp_path, port, "first")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#route option", state="attached")
        path = make(tmp_path, "restart.bin", 256 * MIB)
        page.set_input_files("#files", str(path))
        page.wait_for_function("document.querySelector('#transfers li') && "
                               "document.querySelector('#transfers li').dataset.percent >= 5",
                               timeout=60_000)
        terminate(server.process)
        assert page.get_attribute("#transfers li", "data-state") in (None, "retrying")
        page.wait_for_timeout(2000)
        server = start_server(tmp_path, port, "second")
        page.wait_for_selector("#transfers li[data-state=done], #transfers li[data-state=error]",
                               timeout=240_000)
        shot(page, "resumed-after-a-restart")
        assert page.get_attribute("#transfers li", "data-state") == "done", \
            page.inner_text("#transfers li")
        row = page.locator("#file-list li", has_text="restart.bin")
        row.wait_for()
        assert row.get_attribute("data-sha256") == sha256(path)
        assert "201 POST /api/tus/" not in server.log(), "resumed, not begun again"
    finally:
        context.close()
        terminate(server.process)


def test_download_in_open_mode_is_direct(page, server, tmp_path):
    """With no auth and no signing_key the server makes no signed links (404): the page
    downloads from the file's own address, as it always did."""
    path = make(tmp_path, "open.bin", 70_000)
    page.set_input_files("#files", str(path))
    row = page.locator("#file-list li", has_text="open.bin")
    row.wait_for()
    with page.expect_download() as info:
        row.get_by_role("link", name="Download open.bin").click()
    download = info.value
    assert Path(download.path()).read_bytes() == path.read_bytes()
    assert download.suggested_filename == "open.bin"
    (stored,) = files_on_server(server)
    assert download.url == server.url + str(stored["download_url"])
    assert "Downloading open.bin" in page.inner_text("#list-status")
    assert " 404 POST /api/files/" in server.log()  # the links it asked for first


# -- a server that requires tokens (tests/tokens.py) ---------------------------------------

NEEDS_TOKEN = "This server needs an access token: enter yours under \u201cAccess token\u201d"
NOT_ACCEPTED = "The access token was not accepted (it is wrong or has expired)"


@pytest.fixture
def auth_page(browser, auth_server) -> Iterator[Page]:
    """The page of ``auth_server``, no token entered yet (routes and list not loaded)."""
    context = browser.new_context()
    opened = context.new_page()
    opened.goto(auth_server.url + "/")
    yield opened
    opened.unroute_all(behavior="wait")
    context.close()


def enter_token(page: Page, token: str) -> None:
    """Type the token as people do (the field is under "Access token") and press Enter."""
    if page.get_attribute("#token-box", "open") is None:
        page.click("#token-box summary")
    page.fill("#token", token)
    page.press("#token", "Enter")


def upload_as(server: ServerProcess, who: str, name: str, content: bytes) -> str:
    body, ctype = multipart([Part("file", content, name)])
    request = urllib.request.Request(server.url + "/api/files", data=body,  # noqa: S310
                                     headers={**bearer(who), "Content-Type": ctype})
    with urllib.request.urlopen(request) as response:  # noqa: S310 (our loopback server)
        return str(json.load(response)["id"])


def test_with_a_token_the_page_does_everything(auth_page, auth_server, tmp_path):
    """Upload (multipart and tus), list, download through a signed link (the browser fetches
    it without the token), delete — all as alice, with her token entered once."""
    page = auth_page
    page.wait_for_function("document.querySelector('#list-status').textContent !== ''")
    enter_token(page, TOKENS["alice"][0])
    page.wait_for_selector("#route option", state="attached")
    assert page.evaluate("localStorage.getItem('tf-token')") == TOKENS["alice"][0]
    small = make(tmp_path, "small.bin", 200_000)
    large = make(tmp_path, "large.bin", 17 * MIB)  # >= 16 MiB: over tus
    page.set_input_files("#files", [str(small), str(large)])
    page.wait_for_function(
        "document.querySelectorAll('#transfers li[data-state=done]').length === 2",
        timeout=60_000)
    stored = {f["filename"]: f for f in files_on_server(auth_server, "alice")}
    assert {name: f["owner"] for name, f in stored.items()} == \
        {"small.bin": "alice", "large.bin": "alice"}
    assert "201 POST /api/tus/" in auth_server.log()
    for path in (small, large):
        row = page.locator("#file-list li", has_text=path.name)
        row.wait_for()
        assert row.get_attribute("data-sha256") == sha256(path)
        with page.expect_download() as info:
            row.get_by_role("link", name=f"Download {path.name}").click()
        download = info.value
        assert Path(download.path()).read_bytes() == path.read_bytes()
        assert download.suggested_filename == path.name
        assert "&sig=" in download.url or "?sig=" in download.url
        assert download.url.startswith(f"{auth_server.url}/api/files/{stored[path.name]['id']}"
                                       "/content?")
    # The same address without its signature is refused: the token made the link.
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(auth_server.url + str(stored["small.bin"]["download_url"]))  # noqa: S310
    assert plain.value.code == 401
    page.once("dialog", lambda dialog: dialog.accept())
    row = page.locator("#file-list li", has_text="small.bin")
    row.get_by_role("button", name="Delete small.bin").click()
    row.wait_for(state="detached")
    assert "Deleted small.bin" in page.inner_text("#list-status")
    assert [f["filename"] for f in files_on_server(auth_server, "alice")] == ["large.bin"]
    assert page.locator("#transfers .error").count() == 0
    shot(page, "token-everything-done")


def test_no_token_or_a_wrong_one_is_said_in_words(auth_page, auth_server, tmp_path):
    page = auth_page
    page.wait_for_function(f"document.querySelector('#list-status').textContent === "
                           f"{json.dumps(NEEDS_TOKEN)}")
    assert page.inner_text("#limits") == NEEDS_TOKEN
    assert page.get_attribute("#token-box", "open") is not None, "opened to ask for it"
    page.set_input_files("#files", str(make(tmp_path, "anon.bin", 1000)))
    error = page.locator("#transfers .error").first
    error.wait_for()
    assert error.inner_text() == NEEDS_TOKEN
    enter_token(page, WRONG_TOKEN)
    page.wait_for_function(f"document.querySelector('#list-status').textContent === "
                           f"{json.dumps(NOT_ACCEPTED)}")
    page.wait_for_function(f"document.querySelector('#limits').textContent === "
                           f"{json.dumps(NOT_ACCEPTED)}")
    page.set_input_files("#files", [str(make(tmp_path, "wrong.bin", 1000)),
                                    str(make(tmp_path, "wrong-large.bin", 17 * MIB))])
    page.wait_for_function("document.querySelectorAll('#transfers .error').length === 3")
    assert page.locator("#transfers .error").all_inner_texts() == [NOT_ACCEPTED] * 2 + \
        [NEEDS_TOKEN]
    assert files_on_server(auth_server, "alice") == []
    shot(page, "token-wrong")


def test_a_read_only_token_is_told_what_it_cannot_do(auth_page, auth_server, tmp_path):
    """reader may list and download, not upload (multipart or tus) nor delete; bob, who may
    delete his own files, may not delete alice's."""
    content = os.urandom(5000)
    upload_as(auth_server, "alice", "alices.bin", content)
    page = auth_page
    enter_token(page, TOKENS["reader"][0])
    page.wait_for_selector("#route option", state="attached")
    page.set_input_files("#files", [str(make(tmp_path, "ro.bin", 1000)),
                                    str(make(tmp_path, "ro-large.bin", 17 * MIB))])
    page.wait_for_function("document.querySelectorAll('#transfers .error').length === 2")
    assert page.locator("#transfers .error").all_inner_texts() == [
        "Your access token does not allow uploading or changing files (it lacks the "
        "\u201cwrite\u201d scope)"] * 2
    shot(page, "token-read-only")
    row = page.locator("#file-list li", has_text="alices.bin")
    with page.expect_download() as info:
        row.get_by_role("link", name="Download alices.bin").click()
    assert Path(info.value.path()).read_bytes() == content
    page.on("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete alices.bin").click()
    page.wait_for_function("document.querySelector('#list-status').textContent.startsWith("
                           "'Your access token')")
    assert page.inner_text("#list-status") == (
        "Your access token does not allow deleting files (it lacks the \u201cdelete\u201d "
        "scope)")
    enter_token(page, TOKENS["bob"][0])
    row.wait_for()  # the list is loaded again for bob
    row.get_by_role("button", name="Delete alices.bin").click()
    page.wait_for_function("document.querySelector('#list-status').textContent.startsWith("
                           "'Not allowed')")
    assert page.inner_text("#list-status") == \
        "Not allowed: only the file's owner (or an admin) may do this"
    assert [f["filename"] for f in files_on_server(auth_server, "alice")] == ["alices.bin"]


def test_an_expired_or_altered_link_is_said_in_words(auth_page, auth_server, tmp_path):
    """The page checks a signed link before handing it to the browser: one that expired on
    the way (its answer held past its one second) or was altered is refused by the server
    (403 invalid_signature), and the page says so instead of downloading an error page."""
    upload_as(auth_server, "alice", "linked.bin", b"linked content")
    page = auth_page
    enter_token(page, TOKENS["alice"][0])
    row = page.locator("#file-list li", has_text="linked.bin")
    row.wait_for()
    mode = {"how": "expire"}

    def mangle(route: Route) -> None:
        if mode["how"] == "expire":
            answer = route.fetch(post_data=json.dumps({"expires_in": 1}))
            time.sleep(2.1)  # the expiry is rounded up to the second
            route.fulfill(response=answer)
            return
        answer = route.fetch()
        made = answer.json()
        made["url"] = made["url"].replace("expires=", "expires=9")  # a longer life, forged
        route.fulfill(response=answer, json=made)
    page.route("**/api/files/*/links", mangle)
    downloads: list[object] = []
    page.on("download", lambda download: downloads.append(download))
    row.get_by_role("link", name="Download linked.bin").click()
    page.wait_for_function("document.querySelector('#list-status').textContent.startsWith("
                           "'The download link')", timeout=15_000)
    assert page.inner_text("#list-status") == \
        "The download link has expired; choose Download again"
    mode["how"] = "alter"
    row.get_by_role("link", name="Download linked.bin").click()
    page.wait_for_function("document.querySelector('#list-status').textContent === "
                           "'The download link is not valid; choose Download again'",
                           timeout=15_000)
    assert downloads == []
    assert auth_server.log().count(" 403 GET /api/files/") == 2
