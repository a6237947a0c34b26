#!/usr/bin/env bash
# Installs what bench/run.py compares against (not needed by the tests): nginx from Debian,
# and the Python peers (Starlette + python-multipart + uvicorn, aiohttp, Tornado) in bench/.venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/sbin/nginx ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light
fi
[ -x bench/.venv/bin/python ] || python3.11 -m venv bench/.venv
bench/.venv/bin/python -m pip install -q --disable-pip-version-check -r bench/requirements-peers.txt
