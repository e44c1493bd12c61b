"""The live progress line: redrawn in place on a terminal, a line every few seconds in a log."""

from __future__ import annotations

import io

from harness.progress import Progress, Snapshot


def snap(ok=10) -> Snapshot:
    return Snapshot(elapsed=12.5, phase="faults", ok=ok, fail=2, info=1, faults=["kill n3", "start-partition(halves)"],
                    leader="n2")


def test_the_line_shows_elapsed_counts_faults_and_leader():
    line = snap().line()
    for part in ("12.5s", "faults", "ok 10", "fail 2", "info 1", "kill n3", "start-partition(halves)", "leader: n2"):
        assert part in line


def test_on_a_terminal_the_line_is_redrawn_in_place():
    out = io.StringIO()
    p = Progress(out, tty=True)
    p.show(snap(1))
    p.show(snap(2))
    p.message("splitbrain run: heal")
    p.close()
    text = out.getvalue()
    assert text.count("\r\x1b[2K") >= 3 and "ok 2" in text
    assert "splitbrain run: heal\n" in text


def test_in_a_log_at_most_one_line_per_period():
    out = io.StringIO()
    p = Progress(out, tty=False, every=60)
    for i in range(50):
        p.show(snap(i))
    p.show(snap(99), force=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "ok 0" in lines[0] and "ok 99" in lines[1]
    assert "\r" not in out.getvalue()


def test_quiet_prints_nothing():
    out = io.StringIO()
    p = Progress(out, quiet=True)
    p.show(snap(), force=True)
    p.message("x")
    assert out.getvalue() == ""
