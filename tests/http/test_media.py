"""Media jobs through HTTP (docs/media.md): uploads get derivative images and metadata from
real worker processes, on every stack; failures leave the server healthy; deletion and
re-processing leave no blob behind."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tornado.httpclient import AsyncHTTPClient

from tests.media_support import brightness, camera_jpeg, png_declaring
from tests.support import Part, error_of, multipart
from tornado_files.app import build_runner

JSON = "application/json; charset=UTF-8"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "derivatives": {"retry_delay": 0.05, "workers": 2},
        "routes": [{"path": "/api/plain", "max_body_size": "10MiB", "derivatives": False}],
    }


def picture(size: tuple[int, int] = (120, 80), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, fmt)
    return out.getvalue()


async def upload(client: AsyncHTTPClient, base_url: str, content: bytes, name: str,
                 wait: int | None = 30, path: str = "/api/files") -> dict[str, Any]:
    body, content_type = multipart([Part("file", content, name, "application/octet-stream")])
    headers = {"Content-Type": content_type}
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    response = await client.fetch(base_url + path, method="POST", body=body, headers=headers)
    assert response.code == 201
    return dict(json.loads(response.body))


async def get(client: AsyncHTTPClient, url: str, **kwargs: Any) -> Any:
    return await client.fetch(url, raise_error=False, **kwargs)


async def settled(client: AsyncHTTPClient, base_url: str, file_id: str,
                  within: float = 60) -> dict[str, Any]:
    """The resource once its job is no longer pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        resource = json.loads((await get(client, f"{base_url}/api/files/{file_id}")).body)
        if resource["processing"] != "pending" or loop.time() > deadline:
            return dict(resource)
        await asyncio.sleep(0.1)


def camera_bytes(tmp_path: Path) -> bytes:
    camera_jpeg(tmp_path / "camera.jpg")
    return (tmp_path / "camera.jpg").read_bytes()


@pytest.mark.stores
@pytest.mark.gen_test(timeout=90)
async def test_a_camera_jpeg_gets_oriented_derivatives_without_its_exif(
        http_client, base_url, runner, residue, tmp_path):
    created = await upload(http_client, base_url, camera_bytes(tmp_path), "camera.jpg")
    assert created["processing"] == "done"
    assert created["has_derivative_images"] is True
    image = created["metadata"]["image"]
    assert (image["width"], image["height"], image["orientation"]) == (1600, 1200, 6)
    gps = image["exif"]["gps"]
    assert gps["latitude"] < 0
    assert gps["longitude"] < 0
    urls = created["file_urls"]
    expected = {"thumbnail": (150, 200), "square_thumbnail": (200, 200), "fullsize": (600, 800)}
    for kind, size in expected.items():
        assert urls[kind] == f"/api/files/{created['id']}/derivatives/{kind}"
        response = await get(http_client, base_url + urls[kind])
        assert response.code == 200
        assert response.headers["Content-Type"] == "image/webp"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "private, max-age=3600"
        assert response.headers["Content-Disposition"].startswith("inline;")
        with Image.open(io.BytesIO(response.body)) as derived:
            assert derived.size == size
            assert len(derived.getexif()) == 0
            assert "icc_profile" not in derived.info
            assert "exif" not in derived.info
        again = await get(http_client, base_url + urls[kind],
                          headers={"If-None-Match": response.headers["ETag"]})
        assert again.code == 304
        # No Last-Modified: made again, a derivative changes at the same URL while the
        # record's times do not; only its ETag tells, so dates never validate a cached copy.
        assert "Last-Modified" not in response.headers
        dated = await get(http_client, base_url + urls[kind],
                          headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
        assert dated.code == 200
    # The content blob and three derivatives; nothing journalled.
    residue.assert_clean(committed=1, derivatives=3)


@pytest.mark.stores
@pytest.mark.gen_test(timeout=90)
async def test_delete_removes_the_derivatives(http_client, base_url, runner, residue):
    created = await upload(http_client, base_url, picture(), "small.png")
    assert created["processing"] == "done"
    fullsize = await get(http_client, base_url + created["file_urls"]["fullsize"])
    with Image.open(io.BytesIO(fullsize.body)) as derived:
        assert derived.size == (120, 80)  # never upscaled
    response = await get(http_client, base_url + created["url"], method="DELETE")
    assert response.code == 204
    gone = await get(http_client, base_url + created["file_urls"]["thumbnail"])
    error_of(gone, 404, "not_found")
    residue.assert_clean(committed=0)


@pytest.mark.gen_test(timeout=90)
async def test_without_prefer_the_upload_answers_pending_at_once(http_client, base_url,
                                                                  services):
    # No runner yet: the job cannot have run, so what a client sees before it is certain.
    created = await upload(http_client, base_url, picture(), "later.png", wait=None)
    assert created["processing"] == "pending"
    assert created["file_urls"]["thumbnail"] is None
    missing = await get(http_client, base_url + f"/api/files/{created['id']}/derivatives/"
                        "thumbnail")
    error_of(missing, 404, "not_found")
    started = build_runner(services, poll=0.1)
    started.start()
    try:
        done = await settled(http_client, base_url, created["id"])
    finally:
        await started.stop()
    assert done["processing"] == "done"
    assert done["file_urls"]["thumbnail"] is not None


@pytest.mark.gen_test(timeout=90)
async def test_what_gets_no_job(http_client, base_url, runner):
    text = await upload(http_client, base_url, b"just words\n", "notes.txt")
    assert (text["processing"], text["has_derivative_images"], text["metadata"]) == (
        "none", False, {})
    plain = await upload(http_client, base_url, picture(), "a.png", path="/api/plain")
    assert plain["processing"] == "none"
    refused = await get(http_client, base_url + plain["url"] + "/process", method="POST",
                        body=b"")
    assert error_of(refused, 409, "processing_disabled")["meta"] == {"route": "/api/plain"}
    redo = await get(http_client, base_url + text["url"] + "/process", method="POST",
                     body=b"", headers={"Prefer": "wait=30"})
    assert json.loads(redo.body)["processing"] == "none"  # nothing to derive from text
    unknown = await get(http_client, base_url + f"/api/files/{text['id']}/derivatives/poster")
    error_of(unknown, 404, "not_found")


@pytest.mark.gen_test(timeout=120)
async def test_a_bomb_and_a_truncated_jpeg_fail_and_other_jobs_go_on(
        http_client, base_url, runner, tmp_path):
    png_declaring(tmp_path / "bomb.png", 20000, 20000, bit_depth=8, rows=True)
    bomb = await upload(http_client, base_url, (tmp_path / "bomb.png").read_bytes(),
                        "bomb.png")
    assert bomb["processing"] == "failed"
    assert "max_image_pixels" in bomb["metadata"]["error"]
    assert bomb["file_urls"]["thumbnail"] is None
    truncated = await upload(http_client, base_url, picture((900, 700), "JPEG")[:3000],
                             "cut.jpg")
    assert truncated["processing"] == "failed"
    assert truncated["metadata"]["error"]
    fine = await upload(http_client, base_url, picture(), "fine.png")
    assert fine["processing"] == "done"
    health = await get(http_client, base_url + "/healthz")
    assert health.code == 200


@pytest.mark.gen_test(timeout=120)
async def test_a_worker_killed_mid_job_is_retried(http_client, base_url, runner, tmp_path):
    # A big noisy PNG keeps the worker busy long enough to be killed while it decodes.
    noise = Image.frombytes("RGB", (3000, 3000), os.urandom(3000 * 3000 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG", compress_level=0)
    created = await upload(http_client, base_url, out.getvalue(), "noise.png", wait=None)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not runner.pool.busy_pids and loop.time() < deadline:
        await asyncio.sleep(0.005)
    [victim] = runner.pool.busy_pids
    os.kill(victim, 9)
    done = await settled(http_client, base_url, created["id"])
    assert done["processing"] == "done", done["metadata"]
    assert victim not in runner.pool.pids


@pytest.mark.stores
@pytest.mark.gen_test(timeout=120)
async def test_process_again_replaces_the_derivatives(http_client, base_url, runner,
                                                       residue):
    created = await upload(http_client, base_url, picture(), "again.png")
    before = await get(http_client, base_url + created["file_urls"]["thumbnail"])
    response = await get(http_client, base_url + created["url"] + "/process", method="POST",
                         body=b"", headers={"Prefer": "wait=30"})
    assert response.code == 200
    redone = json.loads(response.body)
    assert redone["processing"] == "done"
    after = await get(http_client, base_url + redone["file_urls"]["thumbnail"])
    assert after.body == before.body  # the same picture, made again
    residue.assert_clean(committed=1, derivatives=3)
    queued = await get(http_client, base_url + created["url"] + "/process", method="POST",
                       body=b"")
    assert queued.code == 202
    assert json.loads(queued.body)["processing"] == "pending"
    missing = await get(http_client, base_url + "/api/files/" + "0" * 32 + "/process",
                        method="POST", body=b"")
    error_of(missing, 404, "not_found")


@pytest.mark.stores
@pytest.mark.gen_test(timeout=120)
async def test_listing_filters(http_client, base_url, runner):
    image = await upload(http_client, base_url, picture(), "listed.png")
    text = await upload(http_client, base_url, b"text\n", "listed.txt")

    async def ids(query: str) -> list[str]:
        response = await get(http_client, f"{base_url}/api/files?{query}")
        assert response.code == 200, response.body
        return [f["id"] for f in json.loads(response.body)["files"]]

    assert await ids("has_derivative_images=true") == [image["id"]]
    assert await ids("has_derivative_images=false") == [text["id"]]
    assert await ids("processing=done") == [image["id"]]
    assert await ids("processing=none") == [text["id"]]
    error_of(await get(http_client, f"{base_url}/api/files?processing=maybe"), 400,
             "invalid_parameter")


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s MP4 whose first half second is black, a 2 s MP3 with tags, a one-page PDF, a
    HEIC, an AVIF and an animated GIF."""
    import pillow_heif

    from tests.media_support import ffmpeg

    folder = tmp_path_factory.mktemp("samples")
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=320x240:r=25:d=0.5",
           "-f", "lavfi", "-i", "color=c=0xF0E040:s=320x240:r=25:d=1.5",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(folder / "clip.mp4"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "libmp3lame",
           "-metadata", "title=A Song", "-metadata", "artist=Someone", str(folder / "song.mp3"))
    Image.new("RGB", (850, 1100), "white").save(folder / "doc.pdf", "PDF", title="Report",
                                                 author="Ann")
    pillow_heif.from_pillow(Image.new("RGB", (640, 480), (20, 200, 20))).save(
        folder / "photo.heic", quality=80)
    Image.new("RGB", (400, 300), (200, 20, 20)).save(folder / "photo.avif", "AVIF")
    frames = [Image.new("RGB", (100, 100), colour) for colour in ("blue", "red", "green")]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:], duration=50)
    return folder


@pytest.mark.stores
@pytest.mark.gen_test(timeout=120)
async def test_video_audio_and_pdf(http_client, base_url, runner, samples):
    clip = await upload(http_client, base_url, (samples / "clip.mp4").read_bytes(), "clip.mp4")
    assert clip["processing"] == "done", clip["metadata"]
    video = clip["metadata"]["video"]
    assert abs(video["duration"] - 2.0) < 0.3
    assert (video["width"], video["height"], video["codec"]) == (320, 240, "h264")
    poster = await get(http_client, base_url + clip["file_urls"]["fullsize"])
    with Image.open(io.BytesIO(poster.body)) as frame:
        assert frame.size == (320, 240)
    assert brightness(io.BytesIO(poster.body)) > 100  # not the black first frame
    song = await upload(http_client, base_url, (samples / "song.mp3").read_bytes(), "song.mp3")
    assert song["processing"] == "done"
    assert song["has_derivative_images"] is False
    audio = song["metadata"]["audio"]
    assert abs(audio["duration"] - 2.0) < 0.3
    assert audio["tags"]["title"] == "A Song"
    doc = await upload(http_client, base_url, (samples / "doc.pdf").read_bytes(), "doc.pdf")
    assert doc["metadata"]["document"] == {"pages": 1, "title": "Report", "author": "Ann"}
    assert doc["file_urls"]["thumbnail"] is not None


@pytest.mark.gen_test(timeout=120)
async def test_heic_avif_and_the_first_frame_of_a_gif(http_client, base_url, runner, samples):
    expected = {"photo.heic": ((640, 480), (20, 200, 20)), "photo.avif": ((400, 300),
                (200, 20, 20)), "moving.gif": ((100, 100), (0, 0, 255))}
    for name, (size, colour) in expected.items():
        created = await upload(http_client, base_url, (samples / name).read_bytes(), name)
        assert created["processing"] == "done", (name, created["metadata"])
        assert (created["metadata"]["image"]["width"],
                created["metadata"]["image"]["height"]) == size
        fullsize = await get(http_client, base_url + created["file_urls"]["fullsize"])
        with Image.open(io.BytesIO(fullsize.body)) as derived:
            pixel = derived.convert("RGB").getpixel((size[0] // 2, size[1] // 2))
        assert all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=True)), (name, pixel)


@pytest.mark.gen_test(timeout=120)
async def test_a_job_that_keeps_killing_its_worker_fails_after_max_attempts(
        http_client, base_url, runner, services):
    created = await upload(http_client, base_url, picture((2500, 2500)), "doomed.png",
                           wait=None)
    killed: set[int] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        for pid in runner.pool.busy_pids:
            if pid not in killed:
                killed.add(pid)
                os.kill(pid, 9)
        resource = json.loads((await get(http_client, base_url + created["url"])).body)
        if resource["processing"] != "pending":
            break
        await asyncio.sleep(0.001)
    assert resource["processing"] == "failed"
    assert resource["metadata"]["error"] == ("Processing failed 3 times: the worker process "
                                             "ended")
    assert len(killed) == services.config.media.max_attempts


class TestSecured:
    """Derivatives follow the content's read rules; a signed link may name one."""

    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        from tests.tokens import tokens_setting

        return {"tokens": tokens_setting(), "private_reads": True,
                "signing_key": "a-signing-key-of-at-least-32-characters",
                "derivatives": {"retry_delay": 0.05}}

    @pytest.mark.gen_test(timeout=90)
    async def test_read_rules_and_signed_links(self, http_client, base_url, runner):
        from tests.tokens import bearer

        body, content_type = multipart([Part("file", picture(), "mine.png")])
        response = await http_client.fetch(
            base_url + "/api/files", method="POST", body=body,
            headers={"Content-Type": content_type, "Prefer": "wait=30", **bearer("alice")})
        created = json.loads(response.body)
        url = base_url + created["file_urls"]["thumbnail"]
        assert (await get(http_client, url, headers=bearer("alice"))).code == 200
        error_of(await get(http_client, url, headers=bearer("bob")), 403, "forbidden")
        error_of(await get(http_client, url), 401, "unauthorized")
        made = await get(http_client, f"{base_url}/api/files/{created['id']}/links",
                         method="POST", body=json.dumps({"derivative": "thumbnail"}),
                         headers={"Content-Type": "application/json", **bearer("alice")})
        assert made.code == 201, made.body
        link = json.loads(made.body)["url"]
        assert link.startswith(f"/api/files/{created['id']}/derivatives/thumbnail?")
        shown = await get(http_client, base_url + link)
        assert shown.code == 200
        assert shown.headers["Content-Type"] == "image/webp"
        # The link grants the derivative only, not the content.
        other = link.replace("/derivatives/thumbnail", "/content")
        assert (await get(http_client, base_url + other)).code == 403  # a signature that fails
        bad = await get(http_client, f"{base_url}/api/files/{created['id']}/links",
                        method="POST", body=json.dumps({"derivative": "poster"}),
                        headers={"Content-Type": "application/json", **bearer("alice")})
        error_of(bad, 400, "invalid_parameter")
        # Processing again is for admins.
        again = await get(http_client, f"{base_url}/api/files/{created['id']}/process",
                          method="POST", body=b"", headers=bearer("alice"))
        error_of(again, 403, "forbidden")


@pytest.mark.stores
@pytest.mark.gen_test(timeout=90)
async def test_a_tus_upload_gets_its_job_too(http_client, base_url, runner):
    content = picture((90, 60), "JPEG")
    created = await http_client.fetch(
        base_url + "/api/tus/", method="POST", body=content,
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(content)),
                 "Content-Type": "application/offset+octet-stream",
                 "Upload-Metadata": "filename dHVzLmpwZw=="})
    assert created.code == 201
    file_id = created.headers["Location"].rsplit("/", 1)[1]
    done = await settled(http_client, base_url, file_id)
    assert done["processing"] == "done"
    assert done["metadata"]["image"]["width"] == 90


@pytest.fixture
def leftovers(data_dir: Path) -> list[Path]:
    """Job folders as a crash leaves them: of a process that has ended, and of one that had
    this process's PID (a container restarted); made before the runner starts."""
    import subprocess
    import sys

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    folders = [data_dir / "jobs" / f"{ended.stdout.strip()}-{'a' * 32}",
               data_dir / "jobs" / f"{os.getpid()}-{'b' * 32}"]
    for folder in folders:
        (folder / "out").mkdir(parents=True)
        (folder / "source").write_bytes(b"a copy of a file" * 1000)
    return folders


@pytest.mark.gen_test(timeout=60)
async def test_job_folders_of_ended_processes_are_removed(http_client, base_url, leftovers,
                                                         runner, residue):
    created = await upload(http_client, base_url, picture(), "after.png")
    assert created["processing"] == "done"
    assert not any(folder.exists() for folder in leftovers)
    residue.assert_clean(committed=1, derivatives=3)


class TestRelativeDataDir:
    """``--data-dir data`` (relative, as ``scripts/serve.sh`` uses): the worker gets absolute
    paths (every job failed before)."""

    @pytest.fixture
    def data_dir(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "data").mkdir()
        return Path("data")

    @pytest.mark.gen_test(timeout=60)
    async def test_jobs_run(self, http_client, base_url, runner):
        created = await upload(http_client, base_url, picture(), "relative.png")
        assert created["processing"] == "done", created["metadata"]
