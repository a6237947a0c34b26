"""The upload page's media parts in headless Chromium against ``python server.py`` (which
runs the media jobs in its own workers): thumbnails through the derivative URL, with and
without tokens; "processing…" that updates itself; "failed" with its reason; the Details view
in human units; hostile names and tags shown as text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, Route

from tests.e2e.test_page import enter_token, files_on_server
from tests.media_support import camera_jpeg, ffmpeg
from tests.serverproc import ServerProcess, running_server
from tests.tokens import TOKENS

pytestmark = pytest.mark.slow
HOSTILE = '<img src=x onerror="window.pwned=1">'


@pytest.fixture
def server(tmp_path) -> Iterator[ServerProcess]:
    with running_server(tmp_path) as running:
        yield running


def open_page(browser: Browser, url: str) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.goto(url + "/")
    yield opened
    opened.unroute_all(behavior="wait")
    context.close()


@pytest.fixture
def page(browser, server) -> Iterator[Page]:
    yield from open_page(browser, server.url)


def photo(tmp_path: Path, name: str = "photo.jpg") -> Path:
    path = tmp_path / name
    camera_jpeg(path)
    return path


def row_of(page: Page, name: str) -> Locator:
    row = page.locator("#file-list li", has_text=name)
    row.wait_for(timeout=30_000)
    return row


def wait_thumbnail(page: Page, file_id: str) -> dict[str, object]:
    """Wait for the row's thumbnail to load; its naturalWidth, src and data-src."""
    selector = f'#file-list li[data-id="{file_id}"] img.thumb'
    page.wait_for_function(
        "s => { const i = document.querySelector(s); "
        "return i && i.complete && i.naturalWidth > 0; }", arg=selector, timeout=60_000)
    return page.eval_on_selector(selector, "i => ({width: i.naturalWidth, "
                                 "height: i.naturalHeight, src: i.src, from: i.dataset.src})")


def details_text(page: Page, row: Locator) -> str:
    row.locator(".details summary").click()
    dl = row.locator(".details dl")
    dl.wait_for()
    return dl.inner_text()


def test_a_photo_gets_its_thumbnail_and_details(page, server, tmp_path):
    page.wait_for_selector("#route option", state="attached")
    page.set_input_files("#files", str(photo(tmp_path)))
    row = row_of(page, "photo.jpg")
    # Straight from the upload the job is usually still pending; on a quick machine it may
    # be done already. Either way the row ends done, with its thumbnail.
    first = row.get_attribute("data-processing")
    assert first in ("pending", "done")
    if first == "pending":
        assert row.locator(".processing").inner_text() == "processing\u2026"
    page.wait_for_selector("#file-list li[data-processing=done]", timeout=60_000)
    (stored,) = files_on_server(server)
    thumb = wait_thumbnail(page, str(stored["id"]))
    assert thumb["from"] == f"/api/files/{stored['id']}/derivatives/square_thumbnail"
    assert (thumb["width"], thumb["height"]) == (200, 200)
    assert str(thumb["src"]).startswith("blob:")
    assert f"200 GET /api/files/{stored['id']}/derivatives/square_thumbnail" in server.log()
    assert row.locator(".processing").inner_text() == ""
    text = details_text(page, row)
    for fact in ("1600 \u00d7 1200 (shown as 1200 \u00d7 1600)", "TestCam Model X",
                 "50mm f/2.8", "2026-11-22 10:00:00", "1/250 s", "f/2.8", "400", "50 mm",
                 "33.87500\u00b0 S, 151.21000\u00b0 W, -12.5 m"):
        assert fact in text, (fact, text)
    screenshot = tmp_path / "photo-row.png"
    page.screenshot(path=str(screenshot), full_page=True)
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 5_000 < len(data) < 5_000_000
    with Image.open(screenshot) as shot:
        assert shot.width >= 600
        assert shot.height >= 300


def test_processing_updates_itself_and_stops_when_the_row_goes(page, server, tmp_path):
    """The listing is answered as it was before the job ended (pending, no derivatives):
    the row says "processing…", asks for the file again with back-off, and turns into the
    thumbnail once the answer says done. A row that leaves the page is no longer polled."""
    def as_pending(route: Route) -> None:
        answer = route.fetch()
        listing = answer.json()
        for item in listing["files"]:
            item["processing"] = "pending"
            item["metadata"] = {}
            item["file_urls"].update(thumbnail=None, square_thumbnail=None, fullsize=None)
        route.fulfill(response=answer, json=listing)
    page.route("**/api/files?*", as_pending)
    page.reload()
    page.wait_for_selector("#route option", state="attached")
    page.set_input_files("#files", str(photo(tmp_path)))
    row = row_of(page, "photo.jpg")
    assert row.get_attribute("data-processing") == "pending"
    assert row.locator(".processing").inner_text() == "processing\u2026"
    assert row.locator("img.thumb").count() == 0
    page.wait_for_selector("#file-list li[data-processing=done]", timeout=60_000)
    (stored,) = files_on_server(server)
    wait_thumbnail(page, str(stored["id"]))
    assert "1600 \u00d7 1200" in details_text(page, row)

    # Now every answer says pending: the row polls until it leaves the list.
    polls: list[str] = []

    def still_pending(route: Route) -> None:
        polls.append(route.request.url)
        answer = route.fetch()
        item = answer.json()
        item["processing"] = "pending"
        route.fulfill(response=answer, json=item)
    page.route(f"**/api/files/{stored['id']}", still_pending)
    page.fill("#filter", "photo")  # the list is loaded again: a new, pending row
    page.wait_for_selector("#file-list li[data-processing=pending]")
    page.wait_for_timeout(2500)  # the first polls come after 1 s and 2 s
    assert len(polls) >= 1
    page.fill("#filter", "nothing-matches")
    page.wait_for_function("document.querySelectorAll('#file-list li').length === 0")
    seen = len(polls)
    page.wait_for_timeout(4000)  # longer than the next back-off
    assert len(polls) == seen, "a row no longer shown is not polled"


def test_a_failed_job_is_shown_quietly_with_its_reason(page, server, tmp_path):
    whole = photo(tmp_path, "whole.jpg").read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(whole[: len(whole) // 3])
    page.wait_for_selector("#route option", state="attached")
    page.set_input_files("#files", str(broken))
    row = row_of(page, "broken.jpg")
    page.wait_for_selector("#file-list li[data-processing=failed]", timeout=60_000)
    state = row.locator(".processing")
    assert state.inner_text() == "failed"
    reason = state.get_attribute("title") or ""
    (stored,) = files_on_server(server)
    assert reason == stored["metadata"]["error"]  # type: ignore[index]
    assert re.search(r"truncated|corrupt|decoded", reason), reason
    assert row.locator("img.thumb").count() == 0
    assert f"Processing failed\n{reason}" in details_text(page, row).replace("\t", "\n")


def test_hostile_names_and_tags_stay_text(page, server, tmp_path):
    song = tmp_path / f"{HOSTILE}.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "libmp3lame",
           "-metadata", f"title={HOSTILE}", "-metadata", "artist=<b>Someone</b>",
           str(song))
    page.wait_for_selector("#route option", state="attached")
    page.set_input_files("#files", str(song))
    row = row_of(page, f"{HOSTILE}.mp3")
    page.wait_for_selector("#file-list li[data-processing=done]", timeout=60_000)
    text = details_text(page, row)
    assert HOSTILE in text
    assert "<b>Someone</b>" in text
    for fact in ("2.0 s", "kb/s", "44.1 kHz", "mono", "mp3"):
        assert fact in text, (fact, text)
    assert row.locator(".name").inner_text() == f"{HOSTILE}.mp3"
    assert page.locator("#file-list img:not(.thumb), #file-list b").count() == 0
    assert page.evaluate("window.pwned") is None


# -- a server that requires tokens ----------------------------------------------------------

@pytest.fixture
def auth_page(browser, auth_server) -> Iterator[Page]:
    yield from open_page(browser, auth_server.url)


def test_with_a_token_the_thumbnail_loads_and_the_token_stays_out_of_urls(
        auth_page, auth_server, tmp_path):
    page = auth_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    enter_token(page, TOKENS["alice"][0])
    page.wait_for_selector("#route option", state="attached")
    page.set_input_files("#files", str(photo(tmp_path)))
    row_of(page, "photo.jpg")
    page.wait_for_selector("#file-list li[data-processing=done]", timeout=60_000)
    (stored,) = files_on_server(auth_server, "alice")
    thumb = wait_thumbnail(page, str(stored["id"]))
    assert (thumb["width"], thumb["height"]) == (200, 200)
    log = auth_server.log()
    assert f"200 GET /api/files/{stored['id']}/derivatives/square_thumbnail" in log
    assert f" 401 GET /api/files/{stored['id']}/derivatives/" not in log
    token = TOKENS["alice"][0]
    assert token not in log
    assert not [url for url in requested if token in url]
