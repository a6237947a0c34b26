"""First rough figure (issue 2): 1 GiB multipart upload with curl, wall time and server peak
RSS, for tornado-files and a bare Tornado streaming handler in the same run, alternating.

Usage: .venv/bin/python bench/first_figure.py [--rounds 3] [--size-mib 1024]
Writes a markdown table to bench/results/first_figure.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def wait_up(port: int, path: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def run_one(name: str, sample: Path, work: Path) -> dict[str, float]:
    port = free_port()
    data = work / f"{name}-data"
    data.mkdir()
    if name == "tornado-files":
        argv = [sys.executable, str(ROOT / "server.py"), "--port", str(port),
                "--data-dir", str(data)]
        probe, url = "/healthz", f"http://127.0.0.1:{port}/api/files"
    else:
        argv = [sys.executable, str(ROOT / "bench/peers/bare_tornado.py"), str(port), str(data)]
        probe, url = None, f"http://127.0.0.1:{port}/upload"
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if probe:
            wait_up(port, probe)
        else:
            time.sleep(1.0)
        base = hwm(proc.pid)
        start = time.perf_counter()
        out = subprocess.run(["curl", "-sS", "-F", f"file=@{sample}", url],
                             capture_output=True, check=True)
        wall = time.perf_counter() - start
        peak = hwm(proc.pid)
        if name == "tornado-files":
            assert json.loads(out.stdout)["size"] == sample.stat().st_size
        return {"wall": wall, "mbps": sample.stat().st_size / MIB / wall,
                "peak_mib": peak / MIB, "growth_mib": (peak - base) / MIB}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        sample = work / "sample.bin"
        with sample.open("wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(MIB))
        names = ["tornado-files", "bare-tornado"]
        results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name in names:
                results[name].append(run_one(name, sample, work))
    lines = [f"# First figure: {args.size_mib} MiB multipart upload with curl -F",
             "", f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, {args.rounds} rounds alternating.", "",
             "| server | median wall s | min-max s | MiB/s | ratio to bare | peak RSS MiB |"
             " RSS growth MiB |", "|---|---|---|---|---|---|---|"]
    bare = statistics.median(r["wall"] for r in results["bare-tornado"])
    for name in names:
        walls = [r["wall"] for r in results[name]]
        med = statistics.median(walls)
        lines.append(
            f"| {name} | {med:.2f} | {min(walls):.2f}-{max(walls):.2f} | "
            f"{args.size_mib / med:.0f} | {bare / med:.2f}x | "
            f"{max(r['peak_mib'] for r in results[name]):.0f} | "
            f"{max(r['growth_mib'] for r in results[name]):.0f} |")
    text = "\n".join(lines) + "\n"
    out = ROOT / "bench/results/first_figure.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
