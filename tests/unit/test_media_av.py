"""Video and audio through ffprobe/ffmpeg: metadata, a poster that is not the black first
frame, tags, Ogg without video, and a timeout that kills ffmpeg's process group."""

from __future__ import annotations

import os

import pytest

from tests.media_support import brightness, ffmpeg, request
from tornado_files.media.process import process
from tornado_files.media.request import parse_request
from tornado_files.media.video import poster_frame


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("av")
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=320x240:r=25:d=0.5",
           "-f", "lavfi", "-i", "color=c=0xF0E040:s=320x240:r=25:d=1.5",
           "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-map", "2:a",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           str(folder / "clip.mp4"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "libmp3lame",
           "-metadata", "title=A Song", "-metadata", "artist=Someone",
           "-metadata", "album=Tests", "-metadata", "track=3/12", str(folder / "song.mp3"))
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libvorbis",
           "-metadata", "TITLE=Vorbis Title", "-f", "ogg", str(folder / "voice.ogg"))
    ffmpeg("-f", "lavfi", "-i", "color=c=white:s=64x48:r=25:d=0.04", "-c:v", "libx264",
           str(folder / "one-frame.mp4"))
    return folder


def test_mp4_metadata_and_a_poster_that_is_not_black(media, tmp_path):
    response = process(request(media / "clip.mp4", "video/mp4", tmp_path / "out"))
    assert response["ok"] is True, response
    video = response["metadata"]["video"]
    assert video["duration"] == pytest.approx(2.0, abs=0.3)
    assert (video["width"], video["height"], video["codec"]) == (320, 240, "h264")
    assert video["frame_rate"] == pytest.approx(25.0)
    assert video["bitrate"] > 0
    assert video["audio_codec"] == "aac"
    sizes = [(d["kind"], d["width"], d["height"]) for d in response["derivatives"]]
    assert sizes == [("thumbnail", 200, 150), ("square_thumbnail", 200, 200),
                     ("fullsize", 320, 240)]
    for d in response["derivatives"]:
        assert brightness(d["path"]) > 120, d["kind"]
    assert sorted(os.listdir(tmp_path / "out")) == [  # the poster PNG is gone
        "fullsize.webp", "square_thumbnail.webp", "thumbnail.webp"]


def test_a_video_shorter_than_any_seek_still_gets_a_poster(media, tmp_path):
    response = process(request(media / "one-frame.mp4", "video/mp4", tmp_path / "out",
                               format="jpeg"))
    assert response["ok"] is True, response
    assert brightness(response["derivatives"][0]["path"]) > 200


def test_mp3_duration_and_id3_tags(media, tmp_path):
    response = process(request(media / "song.mp3", "audio/mpeg", tmp_path / "out"))
    assert response["ok"] is True
    assert response["derivatives"] == []
    audio = response["metadata"]["audio"]
    assert audio["duration"] == pytest.approx(2.0, abs=0.3)
    assert audio["codec"] == "mp3"
    assert audio["sample_rate"] == 44100
    assert audio["channels"] == 1
    assert audio["bitrate"] > 0
    assert audio["tags"] == {"title": "A Song", "artist": "Someone", "album": "Tests",
                             "track": "3/12"}
    assert os.listdir(tmp_path / "out") == []


def test_ogg_sniffed_as_application_ogg_gets_audio_metadata_only(media, tmp_path):
    response = process(request(media / "voice.ogg", "application/ogg", tmp_path / "out"))
    assert response["ok"] is True
    assert response["derivatives"] == []
    audio = response["metadata"]["audio"]
    assert audio["codec"] == "vorbis"
    assert audio["tags"] == {"title": "Vorbis Title"}
    assert "video" not in response["metadata"]


def test_not_media_and_timeouts_are_clean_failures(media, tmp_path):
    (tmp_path / "junk.mp4").write_bytes(os.urandom(5000))
    response = process(request(tmp_path / "junk.mp4", "video/mp4", tmp_path / "out"))
    assert response["ok"] is False
    assert str(tmp_path) not in response["error"]
    response = process(request(media / "clip.mp4", "video/mp4", tmp_path / "out",
                               timeout=0.001))
    assert response == {"ok": False, "metadata": {},
                        "error": "ffprobe did not finish within the job's 0.001 s timeout."}
    assert os.listdir(tmp_path / "out") == []


def test_playlists_are_not_followed(media, tmp_path):
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXTINF:2,\n{media / 'song.mp3'}\n")
    response = process(request(playlist, "video/mp4", tmp_path / "out"))
    assert response["ok"] is False


def test_a_seek_past_the_end_is_retried_from_the_start(media, tmp_path):
    (tmp_path / "out").mkdir()
    clip = parse_request(request(media / "one-frame.mp4", "video/mp4", tmp_path / "out"))
    path = poster_frame(clip, duration=100.0)  # a wrong duration: the 3 s seek finds nothing
    assert brightness(path) > 200
