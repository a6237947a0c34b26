"""``[derivatives]`` and a route's ``derivatives`` (docs/media.md, Configuration)."""

from __future__ import annotations

import pytest

from tornado_files.config import ConfigError, build_config
from tornado_files.policy import build_policies
from tornado_files.processing.settings import MediaSettings, startup_warnings


def test_defaults():
    media = build_config({}, {}, {}).media
    assert media == MediaSettings()
    assert (media.format, media.media_type, media.sizes) == (
        "webp", "image/webp", {"thumbnail": 200, "square_thumbnail": 200, "fullsize": 800})
    assert media.max_image_pixels == 100_000_000


def test_settings_from_toml():
    media = build_config({"derivatives": {
        "format": "jpeg", "quality": 70, "thumbnail": 128, "square_thumbnail": 96,
        "fullsize": 1024, "workers": 0, "job_timeout": 30, "worker_memory": "512MiB",
        "max_image_pixels": 50_000_000}}, {}, {}).media
    assert (media.media_type, media.quality, media.workers, media.job_timeout) == (
        "image/jpeg", 70, 0, 30.0)
    assert media.sizes == {"thumbnail": 128, "square_thumbnail": 96, "fullsize": 1024}
    assert media.worker_memory == 512 * 1024 * 1024


def test_routes_and_the_switch_decide_who_gets_jobs():
    routes = [{"path": "/api/raw", "max_body_size": "1MiB", "derivatives": False},
              {"path": "/api/photos", "max_body_size": "1MiB"}]
    policies = build_policies(build_config({"routes": routes}, {}, {}))
    assert [p.derivatives for p in policies] == [True, False, True]
    off = build_policies(build_config({"routes": routes, "derivatives": {"enabled": False}},
                                      {}, {}))
    assert [p.derivatives for p in off] == [False, False, False]


@pytest.mark.parametrize(("raw", "message"), [
    ({"format": "png"}, "derivatives.format: expected one of ['jpeg', 'webp']"),
    ({"quality": 0}, "derivatives.quality: expected a whole number from 1 to 100"),
    ({"thumbnail": True}, "derivatives.thumbnail: expected a whole number"),
    ({"job_timeout": float("nan")}, "derivatives.job_timeout: expected seconds"),
    ({"worker_memory": "64MiB"}, "derivatives.worker_memory: at least 128MiB"),
    ({"workers": -1}, "derivatives.workers: expected a whole number from 0"),
    ({"enabled": "yes"}, "derivatives.enabled: expected true or false"),
    ({"colour": 1}, "derivatives: unknown key 'colour'"),
    ("off", "derivatives: expected a table"),
])
def test_each_problem_is_one_line(raw, message):
    with pytest.raises(ConfigError) as raised:
        build_config({"derivatives": raw}, {}, {})
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_route_switch_must_be_a_boolean():
    with pytest.raises(ConfigError, match=r"routes\[0\].derivatives: expected true or false"):
        build_config({"routes": [{"path": "/api/x", "max_body_size": 1,
                                  "derivatives": "no"}]}, {}, {})


def test_a_missing_ffmpeg_is_a_startup_warning(monkeypatch):
    assert startup_warnings(MediaSettings()) == ()
    monkeypatch.setenv("PATH", "/nonexistent")
    [warning] = startup_warnings(MediaSettings())
    assert warning.startswith("ffprobe and ffmpeg not found on PATH")
    assert startup_warnings(MediaSettings(enabled=False)) == ()
