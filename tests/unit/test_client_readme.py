"""The README's raw-upload example, run as written (curl) against ``python server.py``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

from tests.serverproc import running_server

ROOT = Path(__file__).resolve().parents[2]


def readme_commands(prefix: str) -> list[str]:
    """Shell commands in the README's ``sh`` blocks that start with ``prefix`` (continuation
    lines joined, trailing comments dropped)."""
    text = ROOT.joinpath("README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            if command.startswith(prefix):
                commands.append(command.split("  #")[0].strip())
    return commands


def test_the_raw_upload_example_works(tmp_path):
    (command,) = readme_commands("curl -T")
    argv = shlex.split(command)
    name = argv[argv.index("-T") + 1]
    content = os.urandom(100_000)
    (tmp_path / name).write_bytes(content)
    (tmp_path / "server").mkdir()
    with running_server(tmp_path / "server") as server:
        argv = [a.replace("http://127.0.0.1:8888", server.url) for a in argv]
        result = subprocess.run([*argv, "-sS", "-w", "\n%{http_code}"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=30, check=False)
        body, status = result.stdout.rsplit("\n", 1)
        assert status == "201", result.stdout + result.stderr
        stored = json.loads(body)
        assert stored["filename"] == name
        assert stored["sha256"] == hashlib.sha256(content).hexdigest()
        # What the README warns about: --data-binary alone is form encoding, refused.
        form = ["curl", "--data-binary", f"@{name}", argv[-1]]
        refused = subprocess.run([*form, "-sS", "-o", "/dev/null", "-w", "%{http_code}"],
                                 cwd=tmp_path, capture_output=True, text=True, timeout=30,
                                 check=False)
        assert refused.stdout == "415"
