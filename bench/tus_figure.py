"""tus throughput (issue 4): 1 GiB in 8 MiB PATCHes with tuspy against the disk store, next
to a 1 GiB multipart POST with curl, same server, alternating rounds; an untimed write of the
sample's size before each transfer, and each upload deleted after it (as bench/run.py does).

Usage: .venv/bin/python bench/tus_figure.py [--rounds 2] [--size-mib 1024]
Writes bench/results/tus_figure.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tusclient import client as tus_client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.run import warm_up  # noqa: E402
from tests.serverproc import running_server  # noqa: E402

MIB = 1024 * 1024


def delete(url: str) -> None:
    """Uploads are removed after each timed run: files left in the page cache would make every
    later transfer write into memory this VM has not touched yet (several times slower)."""
    subprocess.run(["curl", "-sS", "--fail", "-X", "DELETE", url], check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"tus 8 MiB PATCHes": [], "multipart POST": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sample = work / "sample.bin"
        with sample.open("wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(MIB))
        with running_server(work) as server:
            for _ in range(args.rounds):
                warm_up(work, sample)
                start = time.perf_counter()
                with sample.open("rb") as stream:
                    uploader = tus_client.TusClient(server.url + "/api/tus/").uploader(
                        file_stream=stream, chunk_size=8 * MIB)
                    uploader.upload()
                walls["tus 8 MiB PATCHes"].append(time.perf_counter() - start)
                delete(server.url + "/api/files/" + str(uploader.url).rsplit("/", 1)[1])
                warm_up(work, sample)
                start = time.perf_counter()
                posted = subprocess.run(["curl", "-sS", "-F", f"file=@{sample}",
                                         server.url + "/api/files"], check=True,
                                        capture_output=True)
                walls["multipart POST"].append(time.perf_counter() - start)
                delete(server.url + json.loads(posted.stdout)["url"])
            peak = server.status("VmHWM") / MIB
    post = statistics.median(walls["multipart POST"])
    lines = [f"# tus vs POST: {args.size_mib} MiB to the disk store", "",
             f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} cores, "
             f"{args.rounds} alternating rounds; server peak RSS {peak:.0f} MiB.", "",
             "| upload | median s | MiB/s | ratio to POST |", "|---|---|---|---|"]
    for name, values in walls.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med:.2f} | {args.size_mib / med:.0f} | {post / med:.2f}x |")
    text = "\n".join(lines) + "\n"
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / "bench/results/tus_figure.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
