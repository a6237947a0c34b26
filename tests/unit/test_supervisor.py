"""The supervisor's restart rules with real forked children (their work is a function that
exits at once): a worker that ends is replaced; workers that keep dying at start-up make the
parent give up with one line; a signal is passed on and ends the run with status 0."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from tornado_files.supervisor import (
    MAX_YOUNG_DEATHS,
    METRICS_PREFIX,
    GaveUp,
    Supervisor,
    describe_exit,
    remove_stale_metrics_dirs,
)


def test_workers_that_keep_dying_at_start_up_make_the_parent_give_up():
    ended: list[int] = []
    supervisor = Supervisor(2, work=lambda: 3, on_exit=ended.append, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(GaveUp) as gave_up:
        supervisor.run()
    assert str(gave_up.value) == (f"{MAX_YOUNG_DEATHS} workers in a row exited within 10s of "
                                  "starting (the last: exit status 3); giving up")
    assert time.monotonic() - started < 10  # backed off, but briefly
    assert len(ended) >= MAX_YOUNG_DEATHS
    assert supervisor.pids == []  # none left running
    assert not any(os.path.exists(f"/proc/{pid}") for pid in ended)  # and all reaped


def test_a_worker_that_ends_is_replaced_until_a_signal_ends_the_run():
    ended: list[int] = []

    def on_exit(pid: int) -> None:
        ended.append(pid)
        if len(ended) == 3:  # the operator stops it (the signal waits, blocked, in run())
            # To this thread: the test process has other threads, which do not block it.
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    # young=0: no death counts as a start-up failure, each is simply replaced.
    supervisor = Supervisor(1, work=lambda: 0, on_exit=on_exit, young=0)
    assert supervisor.run() == 0
    assert len(set(ended)) >= 3  # three different workers, one after the other
    assert supervisor.pids == []


def test_exit_statuses_are_described_for_the_log():
    assert describe_exit(3 << 8) == "exit status 3"
    assert describe_exit(signal.SIGKILL) == "signal SIGKILL"


def test_metrics_folders_of_ended_supervisors_are_removed_and_others_kept(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()  # its PID names no process now
    stale = tmp_path / f"{METRICS_PREFIX}{ended.pid}-abc"
    alive = tmp_path / f"{METRICS_PREFIX}{os.getpid()}-def"  # a supervisor still running
    unrelated = tmp_path / f"{METRICS_PREFIX}notapid-x"
    for folder in (stale, alive, unrelated):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    assert remove_stale_metrics_dirs(tmp_path) == [stale]
    assert not stale.exists()
    assert alive.exists()
    assert unrelated.exists()
