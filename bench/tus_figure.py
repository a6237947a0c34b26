"""tus throughput (issue 4): 1 GiB in 8 MiB PATCHes with tuspy against the disk store, next
to a 1 GiB multipart POST with curl, same server, alternating rounds.

Usage: .venv/bin/python bench/tus_figure.py [--rounds 2] [--size-mib 1024]
Writes bench/results/tus_figure.md.
"""

from __future__ import annotations

import argparse
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
from tests.serverproc import running_server  # noqa: E402

MIB = 1024 * 1024


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
                start = time.perf_counter()
                with sample.open("rb") as stream:
                    tus_client.TusClient(server.url + "/api/tus/").uploader(
                        file_stream=stream, chunk_size=8 * MIB).upload()
                walls["tus 8 MiB PATCHes"].append(time.perf_counter() - start)
                start = time.perf_counter()
                subprocess.run(["curl", "-sS", "-o", "/dev/null", "-F", f"file=@{sample}",
                                server.url + "/api/files"], check=True)
                walls["multipart POST"].append(time.perf_counter() - start)
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
