"""``python server.py`` with a GCS route, for what GCS alone shows: ``download = "redirect"``
without a service-account key to sign with stops start-up with one line. What every object
store shows, GCS included (uploads, Range, DELETE, signed redirects, a client gone halfway,
the store stopped, tus across two processes, the memory bound, the unreachable-store line,
fsck, derivatives), is in test_object_server.py and test_object_server_more.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.gcs_support import GcsEmulator
from tests.object_adapters import GcsObjects
from tests.serverproc import ROOT, free_port

pytestmark = pytest.mark.slow


def test_redirect_without_a_signing_key_stops_start_up_with_one_line(
        tmp_path, gcs_emulator: GcsEmulator):
    (tmp_path / "c.toml").write_text(GcsObjects(gcs_emulator).config(download="redirect"))
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--data-dir", str(tmp_path / "d"),
         "--config", str(tmp_path / "c.toml"), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 2
    assert result.stderr == ('server.py: error: gcs.download = "redirect" needs a '
                             "service-account key to sign URLs: set "
                             "GOOGLE_APPLICATION_CREDENTIALS to its JSON file\n")
