#!/usr/bin/env bash
# Installs tornado-files into ./.venv and starts it on the embedded default
# (files and SQLite under ./data, http://127.0.0.1:8888). Extra arguments go to the server.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
# Debian's ffmpeg reads videos and audio for the media jobs (docs/media.md); without it the
# server still runs and says at start-up that such files will get processing "failed".
if ! command -v ffmpeg >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
exec .venv/bin/python server.py "$@"
