"""The JSONL history: written, read back, validated line by line, paired into operations."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from history.events import (
    Event,
    History,
    HistoryWriter,
    InvalidHistory,
    iter_events,
    pair_operations,
    parse_events,
    read_history,
    validate,
    write_history,
)
from history.formats import FormatError
from history.operation import END_OF_TIME


def jsonl(*events: dict) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def ev(index, type, process, f, time, **more):
    return {"index": index, "type": type, "process": process, "f": f, "time": time, **more}


# --- writer and reader --------------------------------------------------------


def test_writer_and_reader_roundtrip_every_field_including_extras(tmp_path):
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        a = w.append("invoke", 3, "cas", key="k7", value=[1, 4], time=10)
        b = w.append("invoke", "nemesis", "start-partition", value={"n1": ["n2", "n3"]}, time=11)
        c = w.append("ok", 3, "cas", key="k7", value=[1, 4], time=20, node="n2")
        d = w.append("ok", "observer", "leader", value={"n1": "leader"}, time=21, term=5)
    read = list(iter_events(path))
    assert read == [a, b, c, d]
    assert [e.index for e in read] == [0, 1, 2, 3]
    assert read[3].extra == {"term": 5}
    assert [e.line for e in read] == [1, 2, 3, 4]


def test_write_history_then_read_gives_the_same_events(tmp_path):
    events = parse_events(
        jsonl(
            ev(0, "invoke", 0, "write", 5, key="a", value=1),
            ev(1, "ok", 0, "write", 9, key="a", value=1, node="n1", latency_ms=4),
        )
    )
    path = tmp_path / "h.jsonl"
    write_history(path, events)
    assert read_history(path).events == tuple(events)


def test_writer_flushes_each_event_so_a_crash_leaves_a_readable_prefix(tmp_path):
    path = tmp_path / "h.jsonl"
    w = HistoryWriter(path)
    w.append("invoke", 0, "read", key="x", time=1)
    # Not closed: a reader must already see it.
    assert [e.f for e in iter_events(path)] == ["read"]
    w.close()


def test_writer_is_thread_safe_dense_indices_and_times_in_file_order(tmp_path):
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as w:

        def worker(p: int) -> None:
            for i in range(200):
                w.append("invoke", p, "write", key="k", value=i)
                w.append("ok", p, "write", key="k", value=i)

        threads = [threading.Thread(target=worker, args=(p,)) for p in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    history = read_history(path)  # validates: no time goes backwards
    assert [e.index for e in history.events] == list(range(1600))
    assert len(history.client_operations()) == 800


def test_writer_complete_copies_process_f_and_key_from_the_invoke(tmp_path):
    with HistoryWriter(tmp_path / "h.jsonl") as w:
        write = w.append("invoke", 2, "write", key="k", value=5, time=1)
        read = w.append("invoke", 3, "read", key="k", time=2)
        done = w.complete(write, "ok", node="n1", time=3)
        seen = w.complete(read, "ok", value=None, time=4)
        with pytest.raises(ValueError):
            w.complete(read, "invoke")
    assert (done.process, done.f, done.key, done.value, done.node) == (2, "write", "k", 5, "n1")
    assert (seen.process, seen.f, seen.value) == (3, "read", None)
    assert validate(read_history(tmp_path / "h.jsonl").events) == []


def test_writer_rejects_a_time_older_than_the_last(tmp_path):
    with HistoryWriter(tmp_path / "h.jsonl") as w:
        w.append("invoke", 0, "read", time=100)
        with pytest.raises(ValueError):
            w.append("ok", 0, "read", time=99)


def test_writer_rejects_an_unknown_type(tmp_path):
    with HistoryWriter(tmp_path / "h.jsonl") as w, pytest.raises(ValueError):
        w.append("done", 0, "read", time=1)


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text("\n" + jsonl(ev(0, "invoke", 0, "read", 1)) + "\n")
    (event,) = iter_events(path)
    assert event.line == 2


# --- pairing ------------------------------------------------------------------


def test_pairing_ok_fail_info_and_never_completed():
    events = parse_events(
        jsonl(
            ev(0, "invoke", 0, "read", 1, key="a", value=None),
            ev(1, "invoke", 1, "cas", 2, key="a", value=[1, 2]),
            ev(2, "invoke", 2, "write", 3, key="a", value=7),
            ev(3, "invoke", 3, "write", 4, key="b", value=8),
            ev(4, "invoke", "nemesis", "kill", 4, value=["n1"]),
            ev(5, "ok", 0, "read", 5, key="a", value=3, node="n2"),
            ev(6, "fail", 1, "cas", 6, key="a", value=[1, 2]),
            ev(7, "info", 2, "write", 7, key="a", value=7),
        )
    )
    read, cas, write, lost = pair_operations(events)
    assert (read.status, read.value, read.output, read.call, read.ret, read.node) == ("ok", None, 3, 1, 5, "n2")
    assert (read.index, read.complete_index) == (0, 5)
    assert (cas.status, cas.value, cas.ret) == ("fail", [1, 2], 6)
    assert (write.status, write.value, write.ret, write.complete_index) == ("info", 7, END_OF_TIME, 7)
    assert (lost.status, lost.ret, lost.complete_index, lost.key) == ("info", END_OF_TIME, None, "b")


def test_history_keeps_nemesis_and_observer_events_apart_from_client_operations():
    history = History(
        tuple(
            parse_events(
                jsonl(
                    ev(0, "invoke", "nemesis", "start-partition", 1, value="halves"),
                    ev(1, "info", "nemesis", "start-partition", 2, value="halves"),
                    ev(2, "ok", "observer", "leader", 3, value="n1", node="n1"),
                    ev(3, "invoke", 0, "read", 4, key="a"),
                    ev(4, "ok", 0, "read", 5, key="a", value=None),
                )
            )
        )
    )
    assert [e.index for e in history.nemesis_events()] == [0, 1]
    assert [e.index for e in history.observations()] == [2]
    assert [op.index for op in history.client_operations()] == [3]
    assert history.problems() == []


# --- validation: every problem, with its line ---------------------------------


def problems_of(text: str) -> list[tuple[int | None, str]]:
    return [(p.line, p.message) for p in validate(parse_events(text))]


def test_validator_reports_a_completion_without_an_invoke_on_its_line():
    text = jsonl(ev(0, "invoke", 0, "read", 1), ev(1, "ok", 0, "read", 2), ev(2, "ok", 5, "read", 3))
    [(line, message)] = problems_of(text)
    assert line == 3 and "without an invoke" in message


def test_validator_reports_two_open_operations_on_one_process():
    text = jsonl(ev(0, "invoke", 4, "read", 1), ev(1, "invoke", 4, "write", 2, value=1))
    [(line, message)] = problems_of(text)
    assert line == 2 and "still open" in message and "line 1" in message


def test_validator_reports_a_process_that_acts_again_after_info():
    text = jsonl(
        ev(0, "invoke", 1, "write", 1, value=1),
        ev(1, "info", 1, "write", 2, value=1),
        ev(2, "invoke", 2, "read", 3),
        ev(3, "invoke", 1, "read", 4),
    )
    [(line, message)] = problems_of(text)
    assert line == 4 and "after its info on line 2" in message


def test_validator_reports_time_going_backwards():
    text = jsonl(ev(0, "invoke", 0, "read", 50), ev(1, "ok", 0, "read", 40))
    [(line, message)] = problems_of(text)
    assert line == 2 and "backwards" in message


def test_validator_reports_a_completion_that_does_not_match_its_invoke():
    text = jsonl(ev(0, "invoke", 0, "read", 1, key="a"), ev(1, "ok", 0, "write", 2, key="b"))
    assert [line for line, _ in problems_of(text)] == [2, 2]


def test_validator_reports_indices_that_do_not_increase():
    text = jsonl(ev(3, "invoke", 0, "read", 1), ev(3, "ok", 0, "read", 2))
    [(line, message)] = problems_of(text)
    assert line == 2 and "index" in message


def test_validator_applies_no_pairing_rules_to_nemesis_and_observer():
    text = jsonl(
        ev(0, "info", "nemesis", "kill", 1),
        ev(1, "invoke", "nemesis", "start", 2),
        ev(2, "invoke", "nemesis", "start", 3),
        ev(3, "ok", "observer", "leader", 4),
    )
    assert problems_of(text) == []


def test_validator_flags_an_unknown_type_in_a_constructed_event():
    [problem] = validate([Event(index=0, type="done", process=0, f="read", time=1, line=7)])
    assert problem.line == 7 and "unknown type" in problem.message


def test_read_history_reports_every_problem_each_with_its_line(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(
        jsonl(ev(0, "invoke", 0, "read", 10))  # 1
        + "{not json\n"  # 2 malformed
        + jsonl(
            {"index": 2, "type": "ok", "process": 0, "f": "read"},  # 3 missing time
            ev(3, "finish", 0, "read", 11),  # 4 unknown type
            ev(4, "ok", 9, "read", 12),  # 5 completion without invoke
            ev(5, "invoke", 0, "read", 13),  # 6 two open on process 0
            ev(6, "info", 0, "read", 14),  # 7
            ev(7, "invoke", 0, "read", 15),  # 8 acts after info
            ev(8, "invoke", 1, "read", 1),  # 9 time backwards
        )
    )
    with pytest.raises(InvalidHistory) as caught:
        read_history(path)
    lines = [p.line for p in caught.value.problems]
    assert lines == [2, 3, 4, 5, 6, 8, 9]
    messages = [p.message for p in caught.value.problems]
    assert "malformed JSON" in messages[0]
    assert "missing field time" in messages[1]
    assert "unknown type 'finish'" in messages[2]
    assert "without an invoke" in messages[3]
    assert "still open" in messages[4]
    assert "after its info" in messages[5]
    assert "backwards" in messages[6]
    # The one-line form names the first problem with path:line and counts the rest.
    assert str(caught.value) == f"{path}:2: {messages[0]} (and 6 more problems)"


@pytest.mark.parametrize(
    "line, fragment",
    [
        ('[1, 2]', "JSON object"),
        ('{"index": -1, "type": "ok", "process": 0, "f": "r", "time": 1}', "index"),
        ('{"index": true, "type": "ok", "process": 0, "f": "r", "time": 1}', "index"),
        ('{"index": 0, "type": 3, "process": 0, "f": "r", "time": 1}', "type"),
        ('{"index": 0, "type": "ok", "process": [0], "f": "r", "time": 1}', "process"),
        ('{"index": 0, "type": "ok", "process": 0, "f": "", "time": 1}', "f must"),
        ('{"index": 0, "type": "ok", "process": 0, "f": "r", "time": "soon"}', "time"),
        ('{"index": 0, "type": "ok", "process": 0, "f": "r", "time": 1, "node": 2}', "node"),
    ],
)
def test_reader_names_the_bad_field(tmp_path, line, fragment):
    path = tmp_path / "h.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(FormatError) as caught:
        list(iter_events(path))
    assert caught.value.line == 1 and fragment in caught.value.message


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError) as caught:
        read_history(tmp_path / "nope.jsonl")
    assert "cannot read" in str(caught.value)


# --- fuzzing: garbage in gives FormatError, never anything else ---------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)
field_values = st.fixed_dictionaries(
    {},
    optional={
        "index": json_values | st.integers(0, 5),
        "type": json_values | st.sampled_from(["invoke", "ok", "fail", "info"]),
        "process": json_values | st.sampled_from([0, 1, "nemesis", "observer"]),
        "f": json_values | st.sampled_from(["read", "write"]),
        "time": json_values | st.integers(0, 5),
        "key": json_values,
        "value": json_values,
        "node": json_values,
    },
)
lines = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    field_values.map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(lines, max_size=8))
def test_fuzz_reading_garbage_gives_format_error_or_a_history(tmp_path, chunks):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(c.replace(b"\n", b" ") for c in chunks))
    try:
        history = read_history(path)
    except FormatError as e:
        assert str(e).startswith(str(path))
        assert "\n" not in str(e)
    else:
        # Anything accepted must pair cleanly.
        history.client_operations()
