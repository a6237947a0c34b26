"""Images: derivative sizes and formats, EXIF orientation and fields, nothing of the source's
metadata in the outputs, and refusals (bombs, truncated files) that write nothing."""

from __future__ import annotations

import os

import pillow_heif
import pytest
from PIL import Image

from tests.media_support import camera_jpeg, png_declaring, request
from tornado_files.media.process import process

LEAKY_INFO = ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "dpi")


def by_kind(response):
    return {d["kind"]: d for d in response["derivatives"]}


def assert_clean(path):
    with Image.open(path) as image:
        assert len(image.getexif()) == 0
        assert not set(image.info) & set(LEAKY_INFO), image.info.keys()


def test_camera_jpeg_oriented_thumbnails_without_metadata(tmp_path):
    camera_jpeg(tmp_path / "camera.jpg")
    response = process(request(tmp_path / "camera.jpg", "image/jpeg", tmp_path / "out"))
    assert response["ok"] is True, response
    image = response["metadata"]["image"]
    assert (image["width"], image["height"], image["orientation"]) == (1600, 1200, 6)
    exif = image["exif"]
    assert exif["make"] == "TestCam"
    assert exif["model"] == "Model X"
    assert exif["lens"] == "50mm f/2.8"
    assert exif["datetime_original"] == "2026-11-22T10:00:00"
    assert exif["exposure_time"] == pytest.approx(0.004)
    assert exif["f_number"] == pytest.approx(2.8)
    assert exif["iso"] == 400
    assert exif["focal_length"] == pytest.approx(50.0)
    assert exif["gps"]["latitude"] == pytest.approx(-(33 + 52 / 60 + 30 / 3600), abs=1e-6)
    assert exif["gps"]["longitude"] == pytest.approx(-(151 + 12 / 60 + 36 / 3600), abs=1e-6)
    assert exif["gps"]["altitude"] == pytest.approx(-12.5)
    derived = by_kind(response)
    assert [d["kind"] for d in response["derivatives"]] == [
        "thumbnail", "square_thumbnail", "fullsize"]
    assert (derived["thumbnail"]["width"], derived["thumbnail"]["height"]) == (150, 200)
    assert (derived["square_thumbnail"]["width"], derived["square_thumbnail"]["height"]) \
        == (200, 200)
    assert (derived["fullsize"]["width"], derived["fullsize"]["height"]) == (600, 800)
    for d in response["derivatives"]:
        assert d["media_type"] == "image/webp"
        assert d["path"] == str(tmp_path / "out" / f"{d['kind']}.webp")
        with Image.open(d["path"]) as written:
            assert written.format == "WEBP"
            assert written.size == (d["width"], d["height"])
        assert_clean(d["path"])
    assert sorted(os.listdir(tmp_path / "out")) == [
        "fullsize.webp", "square_thumbnail.webp", "thumbnail.webp"]


def test_jpeg_output_is_clean_and_flattens_alpha_onto_white(tmp_path):
    camera_jpeg(tmp_path / "camera.jpg")
    response = process(request(tmp_path / "camera.jpg", "image/jpeg", tmp_path / "out",
                               format="jpeg", quality=70))
    assert response["ok"] is True, response
    for d in response["derivatives"]:
        assert d["media_type"] == "image/jpeg"
        assert d["path"].endswith(".jpg")
        assert_clean(d["path"])
    transparent = Image.new("RGBA", (120, 80), (0, 0, 0, 0))
    transparent.save(tmp_path / "alpha.png")
    response = process(request(tmp_path / "alpha.png", "image/png", tmp_path / "out2",
                               format="jpeg"))
    with Image.open(by_kind(response)["fullsize"]["path"]) as flat:
        assert flat.mode == "RGB"
        assert min(flat.getpixel((60, 40))) > 245


def test_small_png_is_not_upscaled_in_fullsize(tmp_path):
    Image.new("RGB", (120, 80), (0, 90, 200)).save(tmp_path / "small.png")
    response = process(request(tmp_path / "small.png", "image/png", tmp_path / "out"))
    derived = by_kind(response)
    assert response["metadata"] == {"image": {"width": 120, "height": 80}}
    assert (derived["fullsize"]["width"], derived["fullsize"]["height"]) == (120, 80)
    assert (derived["thumbnail"]["width"], derived["thumbnail"]["height"]) == (200, 133)
    assert (derived["square_thumbnail"]["width"], derived["square_thumbnail"]["height"]) \
        == (200, 200)


@pytest.mark.parametrize(("pillow_format", "mime_type", "mode"), [
    ("HEIF", "image/heic", "RGB"), ("AVIF", "image/avif", "RGB"),
    ("TIFF", "image/tiff", "CMYK"), ("BMP", "image/bmp", "P"), ("PNG", "image/png", "I;16"),
    ("PNG", "image/png", "LA"), ("WEBP", "image/webp", "RGBA")])
def test_formats_and_modes(tmp_path, pillow_format, mime_type, mode):
    pillow_heif.register_heif_opener()
    source = tmp_path / "picture"
    picture = Image.new("RGB", (300, 200), (30, 160, 60)).convert(mode)
    if mode == "I;16":
        picture = Image.new("I;16", (300, 200), 40000)
    picture.save(source, pillow_format)
    response = process(request(source, mime_type, tmp_path / "out"))
    assert response["ok"] is True, response
    assert response["metadata"]["image"]["width"] == 300
    assert [(d["width"], d["height"]) for d in response["derivatives"]] == [
        (200, 133), (200, 200), (300, 200)]


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (100, 100), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:],
                   duration=100, loop=0)
    response = process(request(tmp_path / "anim.gif", "image/gif", tmp_path / "out"))
    with Image.open(by_kind(response)["fullsize"]["path"]) as first:
        red, green, blue = first.convert("RGB").getpixel((50, 50))
    assert red > 200
    assert green < 50
    assert blue < 50


def test_a_bomb_is_refused_from_its_header_and_nothing_is_written(tmp_path):
    png_declaring(tmp_path / "bomb.png", 20000, 20000)
    response = process(request(tmp_path / "bomb.png", "image/png", tmp_path / "out"))
    assert response["ok"] is False
    assert "max_image_pixels" in response["error"]
    assert "/" not in response["error"]
    assert response["metadata"] == {"image": {"width": 20000, "height": 20000}}
    assert os.listdir(tmp_path / "out") == []


def test_pillow_guard_stays_at_the_request_bound(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")
    before = Image.MAX_IMAGE_PIXELS
    response = process(request(tmp_path / "a.png", "image/png", tmp_path / "out",
                               max_image_pixels=9999))
    assert response["ok"] is False
    assert "max_image_pixels (9999)" in response["error"]
    assert before == Image.MAX_IMAGE_PIXELS


def test_truncated_and_garbage_images_fail_cleanly(tmp_path):
    noise = Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3))
    noise.save(tmp_path / "whole.jpg", quality=95)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    response = process(request(tmp_path / "cut.jpg", "image/jpeg", tmp_path / "out"))
    assert response == {"ok": False, "metadata": {"image": {"width": 400, "height": 300}},
                        "error": "The image could not be decoded: it is truncated or corrupt."}
    assert os.listdir(tmp_path / "out") == []
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    response = process(request(tmp_path / "junk.png", "image/png", tmp_path / "out"))
    assert response["ok"] is False
    assert response["metadata"] == {}


@pytest.mark.parametrize("bad", [
    {"source": "relative.png"}, {"out_dir": "/nonexistent-media15"}, {"format": "gif"},
    {"quality": 0}, {"sizes": {"thumbnail": 200}}, {"timeout": float("nan")},
    {"max_image_pixels": True}])
def test_bad_requests_are_failures_naming_the_field(tmp_path, bad):
    response = process({**request(tmp_path / "x.png", "image/png", tmp_path / "out"), **bad})
    assert response["ok"] is False
    assert "request" in response["error"]
    assert process(["not", "an", "object"])["ok"] is False


def test_unsupported_type_and_missing_source(tmp_path):
    assert process(request(tmp_path / "x.svg", "image/svg+xml", tmp_path / "out")) == {
        "ok": False, "error": "The file's type has no media processing.", "metadata": {}}
    assert process(request(tmp_path / "none.png", "image/png", tmp_path / "out"))[
        "ok"] is False
