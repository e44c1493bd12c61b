"""The raftkv clock follows its control file: wall offset and monotonic rate, without jumps."""

import json
import os

from targets.raftkv.clock import Clock


class FakeTime:
    def __init__(self):
        self.mono = 1000.0
        self.wall = 1_700_000_000.0

    def advance(self, s):
        self.mono += s
        self.wall += s


def make_clock(tmp_path, spec=None):
    t = FakeTime()
    path = tmp_path / "clock.json"
    if spec is not None:
        write_spec(path, spec)
    return t, path, Clock(str(path), real_monotonic=lambda: t.mono, real_wall=lambda: t.wall)


def write_spec(path, spec):
    tmp = path.with_name("clock.tmp")
    tmp.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    os.replace(tmp, path)


def test_without_a_file_the_clock_is_the_real_clock(tmp_path):
    t, _, clock = make_clock(tmp_path)
    start = clock.monotonic()
    t.advance(2.0)
    assert clock.monotonic() - start == 2.0
    assert clock.wall() == t.wall


def test_offset_moves_the_wall_clock_only(tmp_path):
    t, _, clock = make_clock(tmp_path, {"offset_s": -30.0})
    start = clock.monotonic()
    assert clock.wall() == t.wall - 30.0
    t.advance(1.0)
    assert clock.monotonic() - start == 1.0


def test_rate_speeds_up_the_monotonic_clock_without_a_jump(tmp_path):
    t, path, clock = make_clock(tmp_path)
    t.advance(5.0)
    before = clock.monotonic()
    write_spec(path, {"rate": 2.0})
    t.advance(0.2)  # past the poll interval
    after_change = clock.monotonic()
    assert clock.rate == 2.0
    # the 0.2 s before the change took effect ran at the old rate at most... and never jumps
    assert 0.2 <= after_change - before <= 0.4
    t.advance(1.0)
    assert abs(clock.monotonic() - after_change - 2.0) < 1e-9
    assert abs(clock.real_seconds_until(clock.monotonic() + 1.0) - 0.5) < 1e-9


def test_the_file_is_polled_at_most_every_100ms(tmp_path):
    t, path, clock = make_clock(tmp_path)
    clock.monotonic()
    write_spec(path, {"offset_s": 5.0})
    t.advance(0.05)
    assert clock.wall() == t.wall  # not re-read yet
    t.advance(0.06)
    assert clock.wall() == t.wall + 5.0


def test_a_bad_file_keeps_the_previous_setting_and_says_why(tmp_path):
    t, path, clock = make_clock(tmp_path, {"offset_s": 1.0, "rate": 1.5})
    clock.poll(force=True)
    write_spec(path, "{not json")
    clock.poll(force=True)
    assert (clock.offset_s, clock.rate) == (1.0, 1.5)
    assert "clock file" in clock.last_error
    write_spec(path, {"rate": -1})
    clock.poll(force=True)
    assert clock.rate == 1.5 and "rate" in clock.last_error


def test_removing_the_file_resets_the_clock(tmp_path):
    t, path, clock = make_clock(tmp_path, {"offset_s": 9.0, "rate": 3.0})
    clock.poll(force=True)
    path.unlink()
    clock.poll(force=True)
    assert (clock.offset_s, clock.rate) == (0.0, 1.0)
