"""The media column of ``tornado-files ls --long`` (tornado_files/client/mediafacts.py)."""

from __future__ import annotations

import pytest

from tornado_files.client.mediafacts import clock, media_column


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0.0s"), (2.0, "2.0s"), (2.04, "2.0s"), (59.9, "59.9s"), (59.96, "1:00"),
    (60, "1:00"), (62.4, "1:02"), (599.5, "10:00"), (3599.4, "59:59"), (3600, "1:00:00"),
    (3723, "1:02:03"), (90061, "25:01:01"),
])
def test_clock(seconds, text):
    assert clock(seconds) == text


@pytest.mark.parametrize(("resource", "column"), [
    ({"processing": "done", "metadata": {"image": {"width": 1600, "height": 1200,
                                                   "exif": {"make": "TestCam"}}}},
     "1600×1200"),
    ({"processing": "done", "metadata": {"video": {"width": 1920, "height": 1080,
                                                   "duration": 3723.2, "codec": "h264"}}},
     "1920×1080 1:02:03"),
    ({"processing": "done", "metadata": {"audio": {"duration": 2.04, "bitrate": 128000}}},
     "2.0s"),
    ({"processing": "done", "metadata": {"document": {"pages": 3, "title": "T"}}}, "3 pages"),
    ({"processing": "done", "metadata": {"document": {"pages": 1}}}, "1 page"),
    ({"processing": "pending", "metadata": {}}, "pending"),
    ({"processing": "failed", "metadata": {"error": "The image could not be decoded."}},
     "failed"),
    ({"processing": "failed", "metadata": {"error": "Too many pixels.",
                                           "image": {"width": 40000, "height": 30000}}},
     "40000×30000 failed"),
    ({"processing": "none", "metadata": {}}, "-"),
    ({"processing": "done", "metadata": {}}, "-"),
    ({}, "-"),
])
def test_media_column(resource, column):
    assert media_column(resource) == column


@pytest.mark.parametrize("metadata", [
    None, "text", [], {"image": "x"}, {"image": {"width": "1", "height": 2}},
    {"image": {"width": True, "height": 2}}, {"audio": {"duration": float("nan")}},
    {"audio": {"duration": -1}}, {"document": {"pages": "3"}}, {"video": {"duration": None}},
])
def test_odd_metadata_says_nothing_rather_than_failing(metadata):
    assert media_column({"processing": "done", "metadata": metadata}) == "-"
