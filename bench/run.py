"""The benchmark (issue 5): tornado-files against nginx and Python peers, in one run.

Each server runs as a subprocess on 127.0.0.1, one at a time, in alternating rounds
(A B C … A B C …) so machine drift hits all alike; figures are medians with min-max, and
ratios to tuned nginx taken within each round. Every run's stored or received bytes are hashed
against the source. Workloads:
  1. one large upload, multipart (curl -F) and raw (curl -T);
  2. concurrent multipart uploads (32 x 128 MiB), aggregate MB/s; here nginx and
     tornado-files also run with two processes (``worker_processes 2``, ``--processes 2``);
  3. early rejection at a 10 MiB cap: declared and chunked, with and without
     ``Expect: 100-continue`` — what curl saw and how much the server read;
  4. one large download, and random 1 MiB Range reads (p50/p99, by offset);
  5. tornado-files on GridFS (MongoDB stand-in): CPU seconds per GiB in our process.

``--baseline REF`` also runs the code of git REF (checked out in a temporary ``git worktree``,
removed afterwards) as one more server in the same rounds, with the same arguments and the same
venv, on disk + SQLite and on GridFS + the stand-in; the report then gives this tree over REF,
ratios taken within each round. ``--upload-rounds N`` adds rounds of workload 1 alone after
the ``--rounds`` full ones.

Setup: ``bench/setup.sh`` (nginx, the peers) and ``scripts/test.sh`` once (the stand-in).
Usage: .venv/bin/python bench/run.py [--quick] [--rounds 3] [--workloads 1,2,3,4]
       [--only NAME,NAME] [--baseline REF --out NAME] [--upload-rounds N]
Writes bench/results/latest.md (and a dated copy, and the raw runs as JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report, workloads  # noqa: E402
from bench.servers import (  # noqa: E402
    NGINX_TUNED,
    OURS,
    PEER_PYTHON,
    Running,
    Server,
    baseline_servers,
    concurrent_servers,
    download_servers,
    gridfs_server,
    running,
    upload_servers,
)

MIB = 1024 * 1024
REJECT_CAP = 10 * MIB
REJECTION_SERVERS = (NGINX_TUNED, OURS)
LOADS: list[float] = []  # the 1-minute load average at the start, after every run, at the end


def make_sample(path: Path, mib: int) -> None:
    with path.open("wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(MIB))


def warm_up(work: Path, sample: Path) -> None:
    """Memory this VM has not touched for a while is slow to touch again (seen: writing 1 GiB
    took 2.8 s, then 0.7 s): after a peer that held gigabytes exits, the next server would pay
    for it. Each timed transfer is preceded by an untimed write of its size, so none does."""
    copy = work / "warm-up.bin"
    subprocess.run(["cp", str(sample), str(copy)], check=True)
    copy.unlink()


def rotated(servers: list[Server], round_no: int) -> list[Server]:
    """A different server goes first in each round: no one always follows the same peer."""
    shift = round_no % len(servers) if servers else 0
    return servers[shift:] + servers[:shift]


@contextlib.contextmanager
def baseline_checkout(ref: str) -> Iterator[tuple[Path, str]]:
    """``ref`` checked out (detached) in a temporary git worktree: (its root, short hash).
    The worktree is removed afterwards, also when the run fails."""
    tmp = Path(tempfile.mkdtemp(prefix="tornado-files-baseline-", dir=os.environ.get("BENCH_TMP")))
    tree = tmp / "tree"
    try:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                        str(tree), ref], check=True)
        short = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True, check=True).stdout.strip()
        yield tree, short
    finally:
        if tree.exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def versions() -> str:
    nginx = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True).stderr
    peers = subprocess.run(
        [str(PEER_PYTHON), "-c", "import importlib.metadata as m; print(', '.join(f'{n} '"
         " + m.version(n) for n in ('starlette', 'uvicorn', 'python-multipart', 'aiohttp',"
         " 'tornado')))"], capture_output=True, text=True).stdout.strip()
    return f"{nginx.strip().removeprefix('nginx version: ')}; {peers}"


def header(args: argparse.Namespace, size: int, rounds: int) -> list[str]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [f"# Benchmark: tornado-files against its peers ({rounds} alternating round(s))", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, "
             f"{memory:.0f} GiB; {platform.platform()}; Python {platform.python_version()}; "
             f"{versions()}.", "",
             f"Sizes: one upload/download {size} MiB; concurrent {args.clients} x "
             f"{args.concurrent_mib} MiB; Range reads {args.range_reads} x 1 MiB. tornado-files "
             "runs the full product (sha256, libmagic, SQLite record, fsync before rename); the "
             "peers only write the bytes. Ratios: median over rounds of the ratio within each "
             "round (> 1 is faster than the reference)."]
    if args.upload_rounds > rounds:
        lines += ["", f"Workload 1 (one upload, disk) ran {args.upload_rounds} rounds: {rounds} "
                  f"in the full rotation, then {args.upload_rounds - rounds} of it alone."]
    if args.only:
        lines += ["", f"Servers: only those whose name contains one of: {args.only}."]
    if LOADS:
        lines += ["", f"Machine load (1-minute average): {LOADS[0]:.2f} at the start, "
                  f"{LOADS[-1]:.2f} at the end, {min(LOADS):.2f}-{max(LOADS):.2f} over the runs."]
    if args.baseline:
        named = args.baseline if args.baseline == args.baseline_label else \
            f"{args.baseline} = {args.baseline_label}"
        lines += ["", f"Previous code: `{named}`, checked out in "
                  "a temporary git worktree and run by the same interpreter (same venv) with the "
                  f"same arguments; its rows are named `... @ {args.baseline_label}`."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="100 MiB, 1 round, 32 x 8 MiB concurrent, 50 Range reads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--concurrent-mib", type=int, default=128)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--range-reads", type=int, default=200)
    parser.add_argument("--workloads", default="1,2,3,4", help="comma-separated of 1,2,3,4")
    parser.add_argument("--no-gridfs", action="store_true", help="leave out GridFS (and 5)")
    parser.add_argument("--gridfs-mib", type=int, default=128,
                        help="GridFS upload/download size (the stand-in slows as it fills)")
    parser.add_argument("--gridfs-concurrent-mib", type=int, default=4)
    parser.add_argument("--only", default="",
                        help="only servers whose name contains one of these (comma-separated)")
    parser.add_argument("--out", default="latest", help="name of the results file")
    parser.add_argument("--baseline", default="", metavar="REF",
                        help="also run the code of git REF (a temporary worktree), same rounds")
    parser.add_argument("--upload-rounds", type=int, default=0,
                        help="rounds of workload 1 in all (those past --rounds run it alone)")
    args = parser.parse_args()
    if args.baseline and args.out == "latest":
        parser.error("--baseline needs --out NAME: its run is a comparison, not the latest figures")
    if args.quick:
        args.size_mib, args.rounds, args.concurrent_mib, args.range_reads = 100, 1, 8, 50
        args.gridfs_mib, args.gridfs_concurrent_mib = 32, 1
    chosen = {int(w) for w in args.workloads.split(",")}
    args.upload_rounds = max(args.upload_rounds, args.rounds)
    sections: dict[str, report.Runs] = {}
    args.extra, args.extra_gridfs, args.baseline_label = [], [], ""
    with contextlib.ExitStack() as stack:
        if args.baseline:
            tree, args.baseline_label = stack.enter_context(baseline_checkout(args.baseline))
            disk, gridfs = baseline_servers(tree, args.baseline_label)
            args.extra, args.extra_gridfs = [disk], [gridfs]
        run_all(args, chosen, sections)
    text = report.render(header(args, args.size_mib, args.rounds), sections,
                         list(workloads.REJECTION_CASES), baseline=args.baseline_label)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M")
    (out / f"{args.out}.md").write_text(text + "\n")
    if args.out == "latest":  # a dated copy of every full-named run, none of debugging ones
        (out / f"run-{stamp}.md").write_text(text + "\n")
    raw = {section: [{"server": n, "case": c, "runs": r} for (n, c), r in runs.items()]
           for section, runs in sections.items()}
    (out / f"{args.out}.json").write_text(json.dumps(raw, indent=1) + "\n")
    print(text)


def run_all(args: argparse.Namespace, chosen: set[int], sections: dict[str, report.Runs]) -> None:
    LOADS.append(os.getloadavg()[0])
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        samples = {}
        sizes = {"big": args.size_mib, "small": args.concurrent_mib,
                 "gridfs": args.gridfs_mib, "gridfs-small": args.gridfs_concurrent_mib}
        for name, mib in sizes.items():
            path = work / f"{name}.bin"
            make_sample(path, mib)
            samples[name] = (path, workloads.sha256_of(path))
        for round_no in range(1, args.upload_rounds + 1):
            print(f"-- round {round_no}/{args.upload_rounds} (load {os.getloadavg()[0]:.2f})",
                  flush=True)
            full = round_no <= args.rounds
            run_round(args, chosen if full else chosen & {1}, work, samples, sections,
                      round_no, gridfs=full)
    LOADS.append(os.getloadavg()[0])


def _keep(name: str, args: argparse.Namespace) -> bool:
    return any(part.strip().lower() in name.lower() for part in args.only.split(","))


def _add(sections: dict[str, report.Runs], section: str, name: str, case: str,
         figures: dict[str, Any]) -> None:
    figures["load1"] = os.getloadavg()[0]
    LOADS.append(figures["load1"])
    sections.setdefault(section, {}).setdefault((name, case), []).append(figures)
    shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items()
             if k in ("wall", "peak", "cpu", "ok", "status", "sent", "received", "p99")}
    print(f"{name:30} {case:32} {shown}", flush=True)


def run_round(args: argparse.Namespace, chosen: set[int], work: Path,
              samples: dict[str, tuple[Path, str]], sections: dict[str, report.Runs],
              round_no: int, gridfs: bool = True) -> None:
    big, small = samples["big"], samples["small"]

    def chosen_servers(servers: list[Server]) -> list[Server]:
        return rotated([s for s in servers if _keep(s.name, args)], round_no)

    if 1 in chosen:
        for kind in ("multipart", "raw"):
            for server in chosen_servers(upload_servers(False, args.extra)):
                with running(server, work) as run:
                    warm_up(work, big[0])
                    _add(sections, "upload", server.name, kind,
                         workloads.upload(run, kind, *big))
    if 2 in chosen:
        for server in chosen_servers(concurrent_servers(args.extra)):
            with running(server, work) as run:
                warm_up(work, big[0])
                _add(sections, "concurrent", server.name, "concurrent",
                     workloads.concurrent(run, *small, args.clients))
    if 3 in chosen:
        for server in upload_servers(False):
            if server.name not in REJECTION_SERVERS or not _keep(server.name, args):
                continue
            for case in workloads.REJECTION_CASES:
                with running(server, work, cap=REJECT_CAP) as run:
                    _add(sections, "rejection", server.name, case,
                         workloads.rejection(run, big[0], case))
    if 4 in chosen:
        for server in chosen_servers(download_servers(False, args.extra)):
            with running(server, work) as run:
                _download(run, big, args, sections, "download", work)
    if gridfs and not args.no_gridfs:
        run_gridfs(args, chosen, work, samples, sections, round_no)


def _download(run: Running, sample: tuple[Path, str], args: argparse.Namespace,
              sections: dict[str, report.Runs], section: str, work: Path) -> None:
    path = workloads.prepare_download(run, sample[0])
    warm_up(work, sample[0])
    _add(sections, section, run.server.name, "download", workloads.download(run, path, *sample))
    _add(sections, section, run.server.name, "ranges",
         workloads.ranges(run, path, sample[0], args.range_reads, seed=5))


def run_gridfs(args: argparse.Namespace, chosen: set[int], work: Path,
               samples: dict[str, tuple[Path, str]], sections: dict[str, report.Runs],
               round_no: int) -> None:
    """Workload 5: tornado-files on GridFS against the stand-in, with smaller sizes (the
    stand-in's in-memory engine slows down as it fills: 128 MiB took 6 s, 1 GiB 305 s).
    With ``--baseline`` the previous code's GridFS server takes turns with ours."""
    servers = rotated([s for s in [gridfs_server(), *args.extra_gridfs] if _keep(s.name, args)],
                      round_no)
    for kind in ("multipart", "raw") if 1 in chosen else ():
        for server in servers:
            with running(server, work) as run:
                _add(sections, "gridfs", server.name, kind,
                     workloads.upload(run, kind, *samples["gridfs"]))
    if 2 in chosen:
        for server in servers:
            with running(server, work) as run:
                _add(sections, "gridfs", server.name, "concurrent",
                     workloads.concurrent(run, *samples["gridfs-small"], args.clients))
    if 4 in chosen:
        for server in servers:
            with running(server, work) as run:
                _download(run, samples["gridfs"], args, sections, "gridfs", work)


if __name__ == "__main__":
    main()
