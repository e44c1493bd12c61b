"""The reaper's watch without Docker: it removes the run only when its harness died without saying done."""

from __future__ import annotations

import io
import subprocess
import sys

from harness import reaper


def test_a_harness_that_tore_down_itself_disarms_its_reaper():
    calls = []
    assert reaper.watch(io.BytesIO(reaper.DONE), lambda: calls.append(1), sleep=lambda s: None) == "disarmed"
    assert calls == []


def test_a_harness_that_died_is_reaped_twice_for_a_create_that_was_in_flight():
    calls, slept = [], []
    assert reaper.watch(io.BytesIO(b""), lambda: calls.append(1), sleep=slept.append) == "reaped"
    assert calls == [1, 1] and slept == [reaper.SECOND_SWEEP_S]
    # a torn message (the harness died while writing) is no "done"
    assert reaper.watch(io.BytesIO(b"do"), lambda: calls.append(2), sleep=lambda s: None) == "reaped"


def test_the_pipe_closes_when_the_harness_process_dies_even_by_sigkill(tmp_path):
    """The mechanism the reaper rests on: a child blocked reading the pipe sees end-of-file as soon as
    the only process holding the write end is killed, with nothing written."""
    code = (
        "import os, subprocess, sys, time\n"
        "r, w = os.pipe()\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import sys; d = sys.stdin.buffer.read(); "
        "open(sys.argv[1], \"w\").write(repr(d))', sys.argv[1]], stdin=r, start_new_session=True)\n"
        "os.close(r)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    out = tmp_path / "seen"
    harness = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    harness.stdout.readline()
    harness.kill()
    harness.wait()
    import time

    deadline = time.monotonic() + 10
    while not out.exists():
        assert time.monotonic() < deadline, "the watcher never saw the pipe close"
        time.sleep(0.05)
    time.sleep(0.1)
    assert out.read_text() == "b''"


def test_disarm_is_idempotent_and_survives_a_reaper_already_gone():
    r = reaper.Reaper(None, None)
    r.disarm()
    import os

    rfd, wfd = os.pipe()
    os.close(rfd)  # the reaper end is gone: writing raises EPIPE (or SIGPIPE is ignored by Python)
    r = reaper.Reaper(None, wfd)
    r.disarm()
    r.disarm()


def test_the_reaper_without_a_run_id_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "harness.reaper"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage" in out.stderr


def test_it_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("SPLITBRAIN_REAPER", "0")
    assert reaper.start("x").proc is None
