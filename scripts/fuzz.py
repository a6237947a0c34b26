"""Long fuzz runs: the suite's seeded fuzzer (tests/fuzzing.py) against ``python server.py``
started as a subprocess on 127.0.0.1 (disk + SQLite in a temporary directory).

    .venv/bin/python scripts/fuzz.py --multipart 20000 --raw 5000 [--seed 13] [--workers 32]
        [--server-root DIR]

``--server-root DIR`` starts ``DIR/server.py`` instead of this checkout's (its own
``tornado_files`` package is the one imported), with the same cases from this checkout's
fuzzer: to compare with an older commit, check it out beside this one and fuzz both, e.g.

    git worktree add ../tornado-files-old <commit>
    .venv/bin/python scripts/fuzz.py --multipart 2000 --raw 500 --server-root ../tornado-files-old

Every answer must be 2xx or a JSON:API 4xx (never a 5xx, never silence); afterwards the server
log must hold no ERROR line and the data directory no temporary file or intent, and as many
blobs as records. Prints a JSON summary; exit status 0 clean, 1 problems found (each printed
with its seed and case index: ``fuzzing.multipart_case(seed, i)`` / ``raw_case`` rebuild it).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import fuzzing  # noqa: E402
from tests.serverproc import running_server  # noqa: E402
from tornado_files.storage.disk import MARKER  # noqa: E402

CONFIG = "idle_timeout = 1.0\nlinger_seconds = 0.5\n"


def _first_file(url: str) -> str:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.txt"\r\n'
            f"\r\n0123456789\r\n--{boundary}--\r\n").encode()
    request = urllib.request.Request(url + "/api/files", data=body, method="POST", headers={  # noqa: S310
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    # http://127.0.0.1 only: the URL is built here, never taken from outside.
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return str(json.load(response)["id"])


def _residue(data_dir: Path) -> list[str]:
    problems = []
    # The store's marker (tornado_files/store_identity.py) is no residue of a request.
    files = [p.relative_to(data_dir) for p in data_dir.rglob("*")
             if p.is_file() and p.name != MARKER]
    temp = [str(p) for p in files if p.parts[0] != "blobs" and
            not str(p).startswith("metadata.sqlite3")]
    blobs = [p for p in files if p.parts[0] == "blobs"]
    with closing(sqlite3.connect(data_dir / "metadata.sqlite3")) as db:
        rows = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        intents = db.execute("SELECT COUNT(*) FROM intents").fetchone()[0]
    if temp:
        problems.append(f"temporary files left: {temp[:5]}")
    if intents:
        problems.append(f"{intents} intents left")
    if len(blobs) != rows:
        problems.append(f"{len(blobs)} blobs but {rows} records")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--multipart", type=int, default=20_000)
    parser.add_argument("--raw", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--server-root", type=Path, default=ROOT,
                        help="the checkout whose server.py is fuzzed (default: this one)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tornado-files-fuzz-") as tmp, \
            running_server(Path(tmp), config=CONFIG,
                           root=args.server_root.resolve()) as server:
        file_id = _first_file(server.url)
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            outcomes = list(pool.map(lambda case: fuzzing.send(server.port, case),
                                     fuzzing.cases(args.seed, args.multipart, args.raw,
                                                   file_id)))
        for _ in range(100):  # clean-up after closed connections runs after the answers
            left = _residue(server.data_dir)
            if not left:
                break
            time.sleep(0.1)
        problems = [fuzzing.describe(o, args.seed) for o in outcomes if o.problem is not None]
        problems += left
        problems += [line for line in server.log().splitlines() if " ERROR " in line]
    report = fuzzing.summary(outcomes)
    report.update(seed=args.seed, seconds=round(time.monotonic() - started, 1),
                  problems=len(problems))
    print(json.dumps(report, indent=2))
    for problem in problems[:50]:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
