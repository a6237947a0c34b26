"""Open mode and its bind guard (docs/security.md), as ``python server.py`` runs: with no
``[[tokens]]`` and no ``[jwt]`` the server is open and says so at start-up; on anything but
loopback it refuses to start in one line unless ``allow_anonymous`` is set (option, TOML or
environment). Servers bound to 0.0.0.0 are reached through 127.0.0.1 only."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.serverproc import ROOT, ServerProcess, free_port, running_server

pytestmark = pytest.mark.slow
ANY = "0.0.0.0"
OPEN_WARNING = "no tokens or jwt are configured: the server is open to anyone who can reach it"
TOKEN = "alice-token-0123456789"
AUTH_TOML = f'''signing_key = "a-signing-key-of-at-least-32-characters"
[[tokens]]
token = "{TOKEN}"
principal = "alice"
scopes = ["read"]
'''


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the IPv4 sockets listening on ``port`` (/proc/net/tcp: state
    0A is LISTEN; the address is hex, little-endian)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def status_of(server: ServerProcess, path: str, **headers: str) -> int:
    # http://127.0.0.1 only: the URL is built here, never taken from outside.
    request = urllib.request.Request(server.url + path, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_FILES_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--port", str(free_port()),
         "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True, text=True, timeout=30, cwd=tmp_path, env={**environ, **(env or {})})


@pytest.mark.parametrize("host", [ANY, "::", "192.0.2.10", "files.example"])
def test_open_mode_on_a_public_address_is_refused_in_one_line(tmp_path, host):
    result = start(tmp_path, "--host", host)
    assert result.returncode == 2
    assert result.stderr == (
        f"server.py: error: refusing to listen on {host} with no tokens or jwt configured: "
        "anyone could read and delete every file (configure auth, or set allow_anonymous = "
        "true / --allow-anonymous)\n")
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()  # refused before anything was prepared


def test_allow_anonymous_false_still_refuses(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("allow_anonymous = false\n")
    result = start(tmp_path, "--host", ANY, "--config", str(config),
                   env={"TORNADO_FILES_ALLOW_ANONYMOUS": "false"})
    assert result.returncode == 2
    assert result.stderr.startswith(f"server.py: error: refusing to listen on {ANY}")


@pytest.mark.parametrize("how", ["option", "toml", "environment"])
def test_allow_anonymous_lets_open_mode_listen_everywhere(tmp_path, how):
    args, config, env = ["--host", ANY], None, None
    if how == "option":
        args.append("--allow-anonymous")
    elif how == "toml":
        config = "allow_anonymous = true\n"
    else:
        env = {"TORNADO_FILES_ALLOW_ANONYMOUS": "true"}
    with running_server(tmp_path, args, config=config, env=env) as server:
        assert listening_addresses(server.port) == {ANY}
        assert status_of(server, "/api/files") == 200  # open: no credential needed
        assert OPEN_WARNING in server.log()


def test_open_mode_on_loopback_says_so(tmp_path):
    with running_server(tmp_path) as server:
        assert listening_addresses(server.port) == {"127.0.0.1"}
        assert status_of(server, "/api/files") == 200
        assert OPEN_WARNING in server.log()


def test_with_tokens_the_server_listens_everywhere_and_is_not_open(tmp_path):
    with running_server(tmp_path, ["--host", ANY], config=AUTH_TOML) as server:
        assert listening_addresses(server.port) == {ANY}
        assert status_of(server, "/api/files") == 401
        assert status_of(server, "/api/files", **{"X-Auth-Token": TOKEN}) == 200
        log = server.log()
        assert f"tornado-files listening on http://{ANY}:" in log
        assert OPEN_WARNING not in log
        assert "open to anyone" not in log
        assert TOKEN not in log


def test_a_jwt_without_audience_is_said_at_start_up(tmp_path):
    jwt_toml = ('signing_key = "a-signing-key-of-at-least-32-characters"\n[jwt]\n'
                'algorithms = ["HS256"]\nsecret = "an-hs256-secret-of-at-least-32-bytes!!"\n')
    (tmp_path / "without").mkdir()
    (tmp_path / "with").mkdir()
    with running_server(tmp_path / "without", config=jwt_toml) as server:
        log = server.log()
        assert "WARNING tornado_files jwt.audience is not set" in log
        assert OPEN_WARNING not in log
        assert "an-hs256-secret" not in log
    with running_server(tmp_path / "with", config=jwt_toml + 'audience = "files"\n') as server:
        assert "jwt.audience" not in server.log()
