"""The client's environment variables (``TORNADO_FILES_URL``, ``TORNADO_FILES_TOKEN``) live in
the same namespace as the server's settings; the server must ignore them, not refuse to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.serverproc import free_port, terminate
from tornado_files.config import ConfigError, env_settings

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ENV = {"TORNADO_FILES_URL": "http://127.0.0.1:1", "TORNADO_FILES_TOKEN": "secret"}


def test_env_settings_ignores_the_clients_variables():
    assert env_settings({**CLIENT_ENV, "TORNADO_FILES_PORT": "9000"}) == {"port": "9000"}
    with pytest.raises(ConfigError, match="TORNADO_FILES_URLS"):
        env_settings({"TORNADO_FILES_URLS": "x"})  # only the exact names are the client's


def test_server_starts_with_the_clients_variables_set(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--data-dir",
             str(tmp_path / "data")], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={**env, **CLIENT_ENV})
    try:
        deadline = time.monotonic() + 20
        status = None
        while status is None and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                url = f"http://127.0.0.1:{port}/healthz"  # our own loopback server
                with urllib.request.urlopen(url, timeout=2) as response:
                    status = json.load(response)["status"]
            except OSError:
                time.sleep(0.1)
        assert status == "ok", log.read_text()
    finally:
        terminate(process)
