"""Configuration: sizes, sources and their precedence, and every validation rule."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mounts import tmpfs
from tests.serverproc import free_port
from tornado_files.cli import load_config
from tornado_files.config import (
    GIB,
    Config,
    ConfigError,
    RouteConfig,
    build_config,
    env_settings,
    parse_size,
)
from tornado_files.policy import UploadPolicy, build_policies

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "size"), [
    ("40KiB", 40960), ("10GiB", 10 * GIB), ("1MiB", 1 << 20), ("1MB", 10**6), ("7", 7),
    (7, 7), ("0.5KiB", 512), ("2 gib", 2 * GIB), ("100B", 100),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "KiB", "10XB", "-1KiB", "ten", None, True, [1]])
def test_parse_size_rejects(text):
    with pytest.raises(ConfigError):
        parse_size(text)


def test_defaults_are_the_embedded_default():
    config = build_config({}, {}, {})
    assert (config.host, config.port, str(config.data_dir)) == ("127.0.0.1", 8888, "data")
    assert config.max_upload_size == 10 * GIB
    assert config.storage == "disk"
    assert [r.path for r in config.all_routes()] == ["/api/files"]


def test_the_free_space_floor_is_a_size_from_toml_or_environment():
    assert build_config({}, {}, {}).min_free_space == 256 * 1024 * 1024
    assert build_config({"min_free_space": "1GiB"}, {}, {}).min_free_space == GIB
    env = env_settings({"TORNADO_FILES_MIN_FREE_SPACE": "0"})
    assert build_config({"min_free_space": "1GiB"}, env, {}).min_free_space == 0
    with pytest.raises(ConfigError, match="min_free_space"):
        build_config({"min_free_space": "lots"}, {}, {})


def test_cli_beats_env_beats_toml(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('port = 9001\nhost = "127.0.0.2"\nmax_upload_size = "1GiB"\n')
    env = {"TORNADO_FILES_PORT": "9002", "TORNADO_FILES_MAX_UPLOAD_SIZE": "2GiB"}
    config = load_config(["--config", str(toml), "--port", "9003"], env, "t")
    assert config.port == 9003
    assert config.host == "127.0.0.2"
    assert config.max_upload_size == 2 * GIB


def test_config_file_may_come_from_the_environment(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('cors_origins = ["https://a.example"]\n')
    config = load_config([], {"TORNADO_FILES_CONFIG": str(toml)}, "t")
    assert config.cors_origins == ("https://a.example",)


def test_routes_become_policies():
    config = build_config({"routes": [{
        "path": "/api/avatars", "max_body_size": "40KiB", "max_file_size": "1MiB",
        "max_files": 1, "allowed_mime_types": ["image/*"]}]}, {}, {})
    assert config.routes == (RouteConfig("/api/avatars", 40960, 1 << 20, 1, ("image/*",), "disk"),)
    default, avatars = build_policies(config)
    assert default == UploadPolicy("/api/files", 10 * GIB, 10 * GIB, 1000, (), "disk")
    # A file cap above the body cap is clamped: no file can be bigger than its request.
    assert avatars.max_file_size == 40960


def test_max_files_defaults_to_1000_and_is_configurable_globally_and_per_route():
    routes = [{"path": "/a", "max_body_size": 1}, {"path": "/b", "max_body_size": 1,
                                                   "max_files": 7}]
    assert [p.max_files for p in build_policies(build_config({"routes": routes}, {}, {}))] == [
        1000, 1000, 7]
    config = build_config({"routes": routes}, {"max_files": "5"}, {})
    assert [p.max_files for p in build_policies(config)] == [5, 5, 7]


@pytest.mark.parametrize(("settings", "message"), [
    ({"colour": "blue"}, "unknown setting 'colour'"),
    ({"max_files": 0}, "max_files: expected a whole number"),
    ({"max_unfinished_uploads": 0}, "max_unfinished_uploads: expected a whole number"),
    ({"port": "many"}, "port: expected a whole number, got 'many'"),
    ({"port": 70000}, "port: 70000 is not between"),
    ({"max_upload_size": "big"}, "max_upload_size: expected a size"),
    ({"storage": "ftp"}, "storage: 'ftp' is not one of"),
    ({"cors_origins": ["*"]}, "'*' is not allowed"),
    ({"cors_origins": ["example.com"]}, "is not an origin"),
    ({"processes": -1}, "processes: expected 0 (one per core) or more, got -1"),
    ({"processes": 1.5}, "processes: expected a whole number, got 1.5"),
    ({"processes": True}, "processes: expected a whole number, got True"),
    ({"processes": "two"}, "processes: expected a whole number, got 'two'"),
    # A typo must not fork until the host runs out of memory.
    ({"processes": 99999}, f"processes: at most 4 per CPU core this process may use "
                           f"({4 * len(os.sched_getaffinity(0))} here), got 99999"),
    ({"mongodb_uri": "http://x"}, "mongodb_uri: expected mongodb://"),
    ({"storage": "gridfs"}, "storage: gridfs needs mongodb_uri"),
    ({"routes": [{"path": "/a", "max_body_size": 1, "storage": "gridfs"}]},
     "needs mongodb_uri"),
    ({"mongodb_uri": "mongodb://h", "gridfs_chunk_size": "20MiB"}, "gridfs_chunk_size"),
    ({"mongodb_uri": "mongodb://h", "gridfs_bucket": "a.b"}, "gridfs_bucket"),
    ({"routes": [{"path": "/a"}]}, "max_body_size is required"),
    ({"routes": [{"path": "/a", "max_body_size": 1, "colour": 1}]}, "unknown key 'colour'"),
    ({"routes": [{"path": "a", "max_body_size": 1}]}, "path must look like"),
    ({"routes": [{"path": "/a", "max_body_size": 1}] * 2}, "duplicate path /a"),
    ({"routes": [{"path": "/api/files/x", "max_body_size": 1}]}, "shadow the built-in"),
    ({"routes": [{"path": "/healthz", "max_body_size": 1}]}, "shadow the built-in"),
    ({"routes": [{"path": "/a", "max_body_size": 1, "max_files": 0}]}, "max_files"),
    ({"routes": [{"path": "/a", "max_body_size": 1, "allowed_mime_types": ["png"]}]},
     "allowed_mime_types"),
    # A grace shorter than an upload may stay silent lets the sweeper race a commit.
    ({"tus_lease": 0.1}, "tus_lease must be between 0.5 and 3600"),
    ({"sweep_grace": 0}, "sweep_grace must be at least 120"),
    ({"sweep_grace": 59}, "sweep_grace must be at least 120"),
    ({"idle_timeout": 600, "sweep_grace": 900}, "sweep_grace must be at least 1200"),
    ({"max_parts": 0}, "max_parts must be at least 1"),
    ({"max_part_header_size": "100"}, "max_part_header_size 256 bytes"),
    ({"hooks": {"event": "file.created"}}, "hooks: expected [[hooks]] tables"),
    ({"hooks": [{"event": "file.moved", "url": "http://h/"}]}, "hooks[0].event: expected one"),
    ({"hooks": [{"event": "file.created", "url": "ftp://h/"}]}, "hooks[0].url: expected an http"),
    ({"hooks": [{"event": "file.created", "url": "http://h:99999/"}]}, "hooks[0].url"),
    ({"hooks": [{"event": "file.created", "url": "http://h/", "retry": 1}]},
     "hooks[0]: unknown key 'retry'"),
    ({"hooks": [{"event": "file.created", "url": "http://h/", "secret": ""}]},
     "hooks[0].secret: expected a non-empty string"),
    ({"hooks": [{"event": "upload.pre_create", "url": "http://h/", "timeout": 0}]},
     "hooks[0].timeout: expected seconds from 0.1 to 300"),
    ({"hook_retry_max": 0.5}, "hook_retry_max: expected seconds from 1 to 86400"),
    # A hook sent to this server itself: each file.created would create a file, without end.
    ({"port": 8888, "hooks": [{"event": "file.created",
                               "url": "http://u:pw@localhost:8888/api/files?t=1"}]},
     "hooks[0].url: http://REDACTED@localhost:8888/api/files?REDACTED is this server itself"),
    ({"host": "0.0.0.0", "allow_anonymous": True, "port": 80,
      "hooks": [{"event": "upload.pre_create", "url": "http://127.0.0.1/api/files"}]},
     "hooks[0].url: http://127.0.0.1/api/files is this server itself (0.0.0.0:80)"),
])
def test_validation_names_the_problem(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(settings, {}, {})


def test_hooks_share_events_and_keep_their_secret_out_of_reprs():
    config = build_config({"hook_retry_max": 60, "hooks": [
        {"event": "file.created", "url": "https://a.example/h", "secret": "abc"},
        {"event": "file.created", "url": "http://b.example:8080/h"},
        {"event": "upload.pre_create", "url": "http://c.example/", "timeout": 2}]}, {}, {})
    assert [(h.event, h.url, h.secret, h.timeout) for h in config.hooks] == [
        ("file.created", "https://a.example/h", "abc", 5.0),
        ("file.created", "http://b.example:8080/h", None, 5.0),
        ("upload.pre_create", "http://c.example/", None, 2.0)]
    assert config.hook_retry_max == 60
    assert Config().hook_retry_max == 300
    assert "abc" not in repr(config)


def test_a_hook_on_another_port_or_host_is_not_this_server():
    hooks = [{"event": "file.created", "url": "http://127.0.0.1:8889/api/files"},
             {"event": "file.created", "url": "http://other.example:8888/api/files"}]
    assert len(build_config({"port": 8888, "hooks": hooks}, {}, {}).hooks) == 2


def test_multipart_limits_have_defaults_and_can_be_set():
    assert (Config().max_parts, Config().max_part_header_size) == (1000, 16 * 1024)
    config = build_config({"max_parts": 50, "max_part_header_size": "4KiB"}, {}, {})
    assert (config.max_parts, config.max_part_header_size) == (50, 4096)


def test_unknown_environment_variable_is_an_error():
    with pytest.raises(ConfigError, match="TORNADO_FILES_COLOUR"):
        env_settings({"TORNADO_FILES_COLOUR": "1"})
    assert env_settings({"TORNADO_FILES_TEST_MONGODB_URI": "x", "HOME": "/"}) == {}


@pytest.mark.parametrize(("args", "toml", "message"), [
    (["--port", "x"], None, "argument --port: invalid int value"),
    (["--bogus"], None, "unrecognized arguments: --bogus"),
    ([], "port = [", "is not valid TOML"),
    ([], 'routes = [{path = "/api/tus/x", max_body_size = 1}]', "shadow the built-in /api/tus"),
    ([], '[[hooks]]\nevent = "file.created"\nurl = "mailto:x"', "hooks[0].url: expected an"),
    (["--config", "/nonexistent.toml"], None, "does not exist"),
    (["--data-dir", "/proc/no/such/place"], None, "cannot prepare /proc/no/such/place"),
])
def test_bad_start_up_is_one_line_and_nonzero_before_listening(tmp_path, args, toml, message):
    if toml is not None:
        path = tmp_path / "c.toml"
        path.write_text(toml)
        args = [*args, "--config", str(path)]
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()


def test_a_read_only_data_directory_is_one_line_and_exit_2(tmp_path):
    """A tmpfs remounted read-only: as root, chmod alone would not stop the writes."""
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as data:
        result = subprocess.run(
            [sys.executable, str(ROOT / "server.py"), "--data-dir", str(data),
             "--port", str(free_port())], capture_output=True, text=True, timeout=30,
            cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f"server.py: error: cannot write to {data}: "
                             "Read-only file system\n")


def test_port_in_use_is_one_line_and_nonzero(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(ROOT / "server.py"), "--data-dir", str(tmp_path / "d"),
             "--port", str(port)], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 2
    expected = f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert result.stderr.strip().endswith(expected)
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(("settings", "message"), [
    ({"idle_timeout": "nan"}, "idle_timeout: expected seconds from 0 to"),
    ({"sweep_interval": float("nan")}, "sweep_interval: expected seconds"),
    ({"sweep_grace": "inf"}, "sweep_grace: expected seconds"),
    ({"tus_expiry": 1e300}, "tus_expiry: expected seconds"),
    ({"linger_seconds": -1.0}, "linger_seconds: expected seconds"),
    ({"sniff_bytes": 0}, "sniff_bytes: must be between 1KiB and 16MiB"),
    ({"sniff_bytes": "1GiB"}, "sniff_bytes: must be between"),
])
def test_durations_and_the_sniff_window_are_bounded(settings, message):
    """nan was accepted (every body then got 408 at once), 1e300 overflowed the time
    arithmetic with a traceback, and sniff_bytes = 0 typed every file application/x-empty."""
    with pytest.raises(ConfigError) as refused:
        build_config(settings, {}, {})
    assert str(refused.value).startswith(message)


def test_log_format_is_text_or_json():
    assert build_config({}, {}, {}).log_format == "text"
    assert build_config({}, {"log_format": "json"}, {}).log_format == "json"
    with pytest.raises(ConfigError, match=r"^log_format: expected one of \['text', 'json'\]"):
        build_config({"log_format": "xml"}, {}, {})


def test_processes_from_cli_env_or_toml(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("processes = 4\n")
    assert load_config([], {}, "t").processes == 1  # today's single process
    assert load_config(["--config", str(toml)], {}, "t").processes == 4
    env = {"TORNADO_FILES_PROCESSES": "3"}
    assert load_config(["--config", str(toml)], env, "t").processes == 3
    assert load_config(["--config", str(toml), "--processes", "0"], env, "t").processes == 0


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_bad_processes_on_the_command_line_is_one_line(value, capsys):
    with pytest.raises(SystemExit) as exited:
        load_config(["--processes", value], {}, "t")
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("t: error: argument --processes: ")


def test_bad_processes_in_the_environment_is_refused():
    with pytest.raises(ConfigError, match="processes: expected a whole number, got 'many'"):
        load_config([], {"TORNADO_FILES_PROCESSES": "many"}, "t")


def test_as_many_processes_as_four_per_core_are_allowed():
    cores = len(os.sched_getaffinity(0))
    assert build_config({"processes": 4 * cores}, {}, {}).processes == 4 * cores
    assert build_config({}, {"processes": "0"}, {}).processes == 0
