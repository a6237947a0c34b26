"""Markdown tables of a benchmark run. Every ratio is taken within one round (the server's
figure against the reference server's figure of that same round), then the median over the
rounds is reported, so drift of the machine between rounds cancels out."""

from __future__ import annotations

import statistics
from typing import Any

from bench.servers import (
    NGINX_DEFAULT,
    NGINX_TUNED,
    NGINX_TUNED_2,
    OURS,
    OURS_2,
    OURS_GRIDFS,
    baseline_name,
)

MIB = 1024 * 1024
Runs = dict[tuple[str, str], list[dict[str, Any]]]  # (server, case) → one run per round
# Rows in this order whatever order the last (rotated) round ran them in.
ORDER = [NGINX_TUNED, NGINX_TUNED_2, NGINX_DEFAULT, OURS, OURS_2, OURS_GRIDFS,
         "Starlette (uvicorn)", "aiohttp", "Tornado buffered", "Starlette FileResponse",
         "aiohttp FileResponse"]


def ordered(runs: Runs) -> Runs:
    rank = {name: float(i) for i, name in enumerate(ORDER)}

    def key(item: tuple[tuple[str, str], Any]) -> float:
        name = item[0][0]
        # the previous code (--baseline, "tornado-files @ abc1234") right below this tree's row
        return rank.get(name, rank.get(name.split(" @ ")[0], len(ORDER)) + 0.5)
    return dict(sorted(runs.items(), key=key))


def _ratio(runs: Runs, case: str, server: str, reference: str) -> str:
    """Median over rounds of reference wall / server wall (> 1: faster than the reference)."""
    mine, theirs = runs.get((server, case), []), runs.get((reference, case), [])
    pairs = [t["wall"] / m["wall"] for m, t in zip(mine, theirs, strict=False)]
    return f"{statistics.median(pairs):.2f}" if pairs else "—"


def _row(name: str, case: str, runs: Runs, reference: str, peer: str | None) -> str:
    results = runs[(name, case)]
    walls = [r["wall"] for r in results]
    med = statistics.median(walls)
    rate = statistics.median(r["bytes"] for r in results) / 1e6 / med
    cells = [name, f"{med:.2f}", f"{min(walls):.2f}-{max(walls):.2f}", f"{rate:.0f}",
             _ratio(runs, case, name, reference)]
    if peer is not None:
        cells.append(_ratio(runs, case, name, peer))
    cells += [f"{max(r['peak'] for r in results) / MIB:.0f}",
              f"{statistics.median(r['cpu'] for r in results):.2f}",
              "yes" if all(r["ok"] for r in results) else "**NO — bytes differ**"]
    return "| " + " | ".join(cells) + " |"


def transfer_table(runs: Runs, case: str, reference: str, peer: str | None,
                   title: str) -> list[str]:
    names = [n for (n, c) in runs if c == case]
    head = ["server", "median s", "min-max s", "MB/s", f"x {reference}"]
    if peer is not None:
        head.append(f"x {peer}")
    head += ["peak RSS MiB", "CPU s", "bytes verified"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    lines += [_row(n, case, runs, reference, peer) for n in names]
    return [*lines, ""]


def rejection_table(runs: Runs, cases: list[str]) -> list[str]:
    lines = ["| server | case | status | curl exit | bytes curl sent | s to the answer |"
             " body bytes the server read | bytes left stored |", "|---" * 8 + "|"]
    for (name, case), results in runs.items():
        if case not in cases:
            continue
        worst = max(results, key=lambda r: r["sent"])
        statuses = sorted({str(r["status"]) for r in results})
        exits = sorted({str(r["curl_exit"]) for r in results})
        received = [r["received"] for r in results if r["received"] is not None]
        lines.append(
            f"| {name} | {case} | {'/'.join(statuses)} | {'/'.join(exits)} | "
            f"{worst['sent']:,} (max) | {statistics.median(r['seconds'] for r in results):.3f} | "
            f"{f'{max(received):,} (max)' if received else '—'} | "
            f"{max(r['stored'] for r in results):,} |")
    return [*lines, ""]


def range_table(runs: Runs) -> list[str]:
    lines = ["| server | reads | p50 ms | p99 ms | p99 first tenth ms | p99 last tenth ms |"
             " bytes verified |", "|---|---|---|---|---|---|---|"]

    def ms(results: list[dict[str, Any]], key: str) -> str:
        values = [r[key] for r in results if r[key] is not None]
        return f"{statistics.median(values) * 1000:.1f}" if values else "—"

    for (name, case), results in runs.items():
        if case != "ranges":
            continue
        lines.append(f"| {name} | {sum(r['count'] for r in results)} | {ms(results, 'p50')} | "
                     f"{ms(results, 'p99')} | {ms(results, 'p99_first_tenth')} | "
                     f"{ms(results, 'p99_last_tenth')} | "
                     f"{'yes' if all(r['ok'] for r in results) else '**NO**'} |")
    return [*lines, ""]


def gridfs_table(runs: Runs) -> list[str]:
    """Workload 5: CPU seconds per GiB in our process, and the stand-in's apart."""
    servers = list(dict.fromkeys(name for name, _ in runs))
    head = "| transfer | MiB | tornado-files CPU s per GiB | stand-in CPU s per GiB (not ours) |" \
           " MB/s | peak RSS MiB | bytes verified |"
    lines = [("| server " if servers != [OURS_GRIDFS] else "") + head,
             "|---" * (7 + (servers != [OURS_GRIDFS])) + "|"]

    def per_gib(r: dict[str, Any], key: str) -> float:
        return float(r.get(key, 0.0)) / (float(r["bytes"]) / 2**30)

    for case in ("multipart", "raw", "concurrent", "download"):
        for server in servers:
            results = runs.get((server, case))
            if not results:
                continue
            ours = statistics.median(per_gib(r, "cpu") for r in results)
            standin = statistics.median(per_gib(r, "standin_cpu") for r in results)
            rate = statistics.median(r["bytes"] / r["wall"] for r in results) / 1e6
            lines.append(
                ("" if servers == [OURS_GRIDFS] else f"| {server} ")
                + f"| {case} | {results[0]['bytes'] // MIB} | {ours:.2f} | {standin:.2f} | "
                f"{rate:.0f} | {max(r['peak'] for r in results) / MIB:.0f} | "
                f"{'yes' if all(r['ok'] for r in results) else '**NO**'} |")
    return [*lines, ""]


def _spread(values: list[float], places: int = 2) -> str:
    return (f"{statistics.median(values):.{places}f} "
            f"({min(values):.{places}f}-{max(values):.{places}f})")


def _rate(r: dict[str, Any]) -> float:
    return float(r["bytes"]) / 1e6 / float(r["wall"])


def _cpu_per_gib(r: dict[str, Any]) -> float:
    return float(r["cpu"]) / (float(r["bytes"]) / 2**30)


def _peak(r: dict[str, Any]) -> float:
    return float(r["peak"]) / MIB


def _ms(key: str) -> Any:
    return lambda r: float(r[key]) * 1000


# What the baseline table compares: (figure, its value in one run, decimals).
TRANSFER = [("MB/s", _rate, 0), ("server CPU s/GiB", _cpu_per_gib, 2), ("peak RSS MiB", _peak, 1)]
LATENCY = [("p50 ms", _ms("p50"), 2), ("p99 ms", _ms("p99"), 2),
           ("p99 first tenth ms", _ms("p99_first_tenth"), 2),
           ("p99 last tenth ms", _ms("p99_last_tenth"), 2)]
BASELINE_CASES = [("upload", "multipart", OURS), ("upload", "raw", OURS),
                  ("concurrent", "concurrent", OURS), ("download", "download", OURS),
                  ("download", "ranges", OURS), ("gridfs", "multipart", OURS_GRIDFS),
                  ("gridfs", "raw", OURS_GRIDFS), ("gridfs", "concurrent", OURS_GRIDFS),
                  ("gridfs", "download", OURS_GRIDFS), ("gridfs", "ranges", OURS_GRIDFS)]


def baseline_table(sections: dict[str, Runs], label: str) -> list[str]:
    """This tree over the previous code (``--baseline``), every figure a ratio taken within
    each round: median (min-max over the rounds), and each side's median."""
    lines = ["| workload | figure | new / previous (medians) | new / previous within rounds: "
             "median (min-max) | rounds | bytes verified |", "|---" * 6 + "|"]
    for section, case, name in BASELINE_CASES:
        runs = sections.get(section, {})
        new, old = runs.get((name, case), []), runs.get((baseline_name(name, label), case), [])
        pairs = list(zip(new, old, strict=False))
        if not pairs:
            continue
        title = ("GridFS " if section == "gridfs" else "") + \
            {"concurrent": "32 concurrent"}.get(case, case)
        verified = "yes" if all(n["ok"] and o["ok"] for n, o in pairs) else "**NO**"
        for figure, how, places in LATENCY if case == "ranges" else TRANSFER:
            if any(n.get("p99_first_tenth") is None or o.get("p99_first_tenth") is None
                   for n, o in pairs) and "tenth" in figure:
                continue
            lines.append(
                f"| {title} | {figure} | "
                f"{statistics.median(how(n) for n, _ in pairs):.{places}f} / "
                f"{statistics.median(how(o) for _, o in pairs):.{places}f} | "
                f"{_spread([how(n) / how(o) for n, o in pairs])} | {len(pairs)} | {verified} |")
    return [*lines, ""]


def render(header: list[str], sections: dict[str, Runs], rejection_cases: list[str],
           baseline: str = "") -> str:
    lines = [*header, ""]
    if baseline:
        lines += [f"### This tree against the previous code ({baseline}), same rounds", "",
                  "Each figure of this tree over the same figure of the previous code in the same "
                  "round; median (min-max) over the rounds. x MB/s > 1, x CPU s/GiB < 1, x peak "
                  "< 1 and x latency < 1 favour this tree. GridFS CPU is our process only (the "
                  "stand-in's is apart, below).", "", *baseline_table(sections, baseline)]
    sections = {name: ordered(runs) for name, runs in sections.items()}
    uploads = sections.get("upload", {})
    for case in ("multipart", "raw"):
        if any(c == case for _, c in uploads):
            lines += transfer_table(uploads, case, NGINX_TUNED, "Starlette (uvicorn)",
                                    f"1. One upload, {case}")
    if sections.get("concurrent"):
        lines += transfer_table(sections["concurrent"], "concurrent", NGINX_TUNED,
                                "aiohttp", "2. Concurrent multipart uploads "
                                "(MB/s is the aggregate; peak RSS and CPU summed over a "
                                "server's processes)")
    if sections.get("rejection"):
        lines += ["### 3. Early rejection (raw body over a 10 MiB cap)", "",
                  *rejection_table(sections["rejection"], rejection_cases)]
    downloads = sections.get("download", {})
    if any(c == "download" for _, c in downloads):
        lines += transfer_table(downloads, "download", NGINX_TUNED, None,
                                "4. One download (nginx: static file, sendfile on)")
        lines += ["### 4. Random 1 MiB Range reads", "", *range_table(downloads)]
    if sections.get("gridfs"):
        lines += ["### 5. tornado-files on GridFS (MongoDB stand-in)", "",
                  *gridfs_table(sections["gridfs"]),
                  *range_table({k: v for k, v in sections["gridfs"].items() if k[1] == "ranges"})]
    return "\n".join(lines)
