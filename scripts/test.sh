#!/usr/bin/env bash
# Installs everything the test suite needs into ./.venv, then runs lint, types and the suite.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
if ! command -v curl >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep -q libmagic.so.1 \
    || [ ! -x /usr/bin/chromium ] || ! command -v chattr >/dev/null 2>&1 \
    || ! command -v ffmpeg >/dev/null 2>&1 || [ ! -x /usr/sbin/nginx ]; then
  # From Debian: curl (a real client in the e2e tests), libmagic (python-magic), Chromium
  # (the page's browser tests; never `playwright install`, which downloads and fails here),
  # e2fsprogs (chattr: a folder made immutable, which binds root too, in the failure tests)
  # ffmpeg (ffprobe/ffmpeg: the media worker's video and audio, run as programs) and nginx
  # (the proxy tests run deploy/nginx/tornado-files.conf in front of the server).
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      curl libmagic1 chromium e2fsprogs ffmpeg nginx >/dev/null
  else
    echo "scripts/test.sh: curl, libmagic1, chromium, e2fsprogs, ffmpeg and nginx are required (apt-get as root)" >&2
    exit 1
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .

# The MongoDB wire-compatible stand-in (mongoeco needs Python 3.13, which pyenv provides).
# Skipped only when a real server is named by TORNADO_FILES_TEST_MONGODB_URI.
if [ -z "${TORNADO_FILES_TEST_MONGODB_URI:-}" ]; then
  PY313=${PYTHON313:-$(command -v python3.13 2>/dev/null || true)}
  if [ -z "$PY313" ] || ! "$PY313" --version >/dev/null 2>&1; then
    PY313=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1)
  fi
  if [ -z "$PY313" ]; then
    echo "scripts/test.sh: Python 3.13 is needed for the MongoDB stand-in (mongoeco)" >&2
    exit 1
  fi
  [ -x .venv-standin/bin/python ] || "$PY313" -m venv .venv-standin
  .venv-standin/bin/python -m pip install -q --disable-pip-version-check "mongoeco[wire]==4.11.0"
fi

# Azurite, the Azure Blob stand-in (npm; tests/azure_support.py starts it). Node 20 works
# although azurite declares node >= 22 (npm warns only).
if [ ! -x .azurite/node_modules/.bin/azurite-blob ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "scripts/test.sh: npm (Node.js) is needed for the Azure stand-in (azurite)" >&2
    exit 1
  fi
  npm install --prefix .azurite --no-audit --no-fund --loglevel=error azurite@3.37.0 >/dev/null
fi

.venv/bin/ruff check .
.venv/bin/mypy
# Every test runs: a skip would hide missing work, so skips fail the run.
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@" | tee .pytest-last.log
status=${PIPESTATUS[0]}
set -e
if grep -Eq '[0-9]+ skipped' .pytest-last.log; then
  echo "scripts/test.sh: tests were skipped; every test must run" >&2
  exit 1
fi
exit "$status"
