#!/usr/bin/env bash
# Installs tornado-files into ./.venv and starts it on the embedded default
# (files and SQLite under ./data, http://127.0.0.1:8888). Extra arguments go to the server.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
exec .venv/bin/python server.py "$@"
