"""The CLI's state file (``--state``: unfinished tus uploads) shared by runs at the same time:
every change is a locked load-modify-save, written to a temporary file of its own and renamed
over the state, so no run loses another's entry and none fails on another's temporary file."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from tornado_files.client.state import ResumeState

WORKERS = 12
ROUNDS = 60


def hammer(path: str, worker: int) -> list[str]:
    """Put ROUNDS entries, dropping every other one again; return the puts that were lost
    (read back missing right after they were made: another run's save undid them)."""
    state = ResumeState(Path(path))
    lost = []
    for n in range(ROUNDS):
        key = f"{worker}-{n}"
        state.put(key, f"/api/tus/{key}")
        if state.get(key) != f"/api/tus/{key}":
            lost.append(key)
        if n % 2:
            state.drop(key)
    return lost


def test_parallel_runs_lose_no_entry(tmp_path):
    path = tmp_path / "cache" / "uploads.json"
    with ProcessPoolExecutor(WORKERS, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(hammer, [str(path)] * WORKERS, range(WORKERS)))
    assert [lost for lost in results if lost] == []
    kept = {f"{w}-{n}": f"/api/tus/{w}-{n}" for w in range(WORKERS) for n in range(0, ROUNDS, 2)}
    assert json.loads(path.read_text()) == kept
    assert sorted(p.name for p in path.parent.iterdir()) == ["uploads.json", "uploads.json.lock"]


def test_a_state_file_is_never_seen_half_written(tmp_path):
    path = tmp_path / "uploads.json"
    state = ResumeState(path)
    state.put("a", "/api/tus/a")
    assert json.loads(path.read_text()) == {"a": "/api/tus/a"}
    assert path.stat().st_mode & 0o077 == 0  # upload URLs: the user's own
    state.drop("a")
    state.drop("never-there")
    assert json.loads(path.read_text()) == {}
