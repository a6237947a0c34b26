"""The nginx configuration docs/deploying.md shows is the file the proxy tests run
(deploy/nginx/tornado-files.conf), and the placeholders the tests replace are in it."""

from __future__ import annotations

import re
import subprocess

from tests.nginx_support import SITE, site_config
from tests.serverproc import ROOT

DOC = ROOT / "docs" / "deploying.md"


def test_the_documented_configuration_is_the_tested_file():
    blocks = re.findall(r"```nginx\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks == [SITE.read_text()]


def test_the_placeholders_are_replaced_and_nothing_else():
    original = SITE.read_text().splitlines()
    replaced = site_config(["127.0.0.1:4000", "127.0.0.1:4001"], "127.0.0.1:5000").splitlines()
    assert "    server 127.0.0.1:4000;" in replaced
    assert "    server 127.0.0.1:4001;" in replaced
    assert "    listen 127.0.0.1:5000;" in replaced
    assert [line for line in replaced if line not in original] == [
        "    server 127.0.0.1:4000;", "    server 127.0.0.1:4001;", "    listen 127.0.0.1:5000;"]
    assert sum("PLACEHOLDER" in line and not line.lstrip().startswith("#")
               for line in original) == 2


def test_nginx_accepts_the_file(tmp_path):
    """``nginx -t`` on the file inside a minimal ``http`` block (no port is opened)."""
    site = tmp_path / "site.conf"
    site.write_text(site_config(["127.0.0.1:4000"], "127.0.0.1:5000"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"events {{}}\nhttp {{ include {site}; }}\n")
    result = subprocess.run(
        ["/usr/sbin/nginx", "-t", "-p", f"{tmp_path}/", "-e", str(tmp_path / "error.log"),
         "-c", str(conf), "-g", f"pid {tmp_path / 'nginx.pid'};"],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
