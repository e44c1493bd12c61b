"""Jepsen history.edn: imported into our events, exported so Knossos/Elle can re-check, and back."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from history.events import Event, history_from_events, validate
from history.formats import FormatError
from history.formats.jepsen_edn import (
    events_to_edn,
    looks_independent,
    parse_jepsen_edn,
    read_jepsen_edn,
    read_jepsen_history,
    write_jepsen_edn,
)

ONE_PER_LINE = """\
{:index 0 :type :invoke, :f :write, :value 3, :process 0, :time 100}
{:index 1 :type :invoke, :f :start-partition, :value nil, :process :nemesis, :time 110}
{:index 2 :type :ok, :f :write, :value 3, :process 0, :time 120}
{:index 3 :type :info, :f :start-partition, :value [:isolated {"n1" #{"n2" "n3"}}], :process :nemesis, :time 130}
{:index 4 :type :invoke, :f :cas, :value [3 4], :process 1, :time 140}
{:index 5 :type :info, :f :cas, :value [3 4], :process 1, :time 150, :error :timed-out}
"""


def test_imports_one_map_per_line_with_line_numbers_and_the_nemesis():
    events = parse_jepsen_edn(ONE_PER_LINE, "history.edn")
    assert [e.line for e in events] == [1, 2, 3, 4, 5, 6]
    assert [(e.type, e.process, e.f) for e in events[:2]] == [("invoke", 0, "write"), ("invoke", "nemesis", "start-partition")]
    assert events[3].value == ["isolated", {"n1": ["n2", "n3"]}]
    assert (events[4].key, events[4].value) == (None, [3, 4])  # a plain cas register is not independent
    assert events[5].extra == {"error": "timed-out"}
    history = history_from_events(events)
    assert [op.status for op in history.client_operations()] == ["ok", "info"]
    assert len(history.nemesis_events()) == 2


def test_imports_a_vector_of_maps_and_record_tags_and_fills_missing_index_and_time():
    text = "[{:type :invoke :f :read :value nil :process 0}\n #jepsen.history.Op{:type :ok :f :read :value 5 :process 0}]"
    a, b = parse_jepsen_edn(text)
    assert (a.index, a.time, b.index, b.time, b.value) == (0, 0, 1, 1, 5)
    assert a.line is None


def test_unknown_tags_such_as_java_objects_are_kept_as_text():
    text = '{:type :info :f :write :value 1 :process 0 :time 1 :index 0 :exception #object[java.net.SocketTimeoutException 0x5 "Read timed out"]}\n'
    [e] = parse_jepsen_edn(text)
    assert e.extra["exception"].startswith("#object [java.net.SocketTimeoutException")


def test_independent_key_value_tuples_become_key_and_value():
    text = """\
{:type :invoke :f :read :value [7 nil] :process 0 :time 1 :index 0}
{:type :ok :f :read :value [7 2] :process 0 :time 2 :index 1}
{:type :invoke :f :cas :value [8 [1 2]] :process 1 :time 3 :index 2}
{:type :fail :f :cas :value [8 [1 2]] :process 1 :time 4 :index 3}
{:type :info :f :kill :value nil :process :nemesis :time 5 :index 4}
"""
    events = parse_jepsen_edn(text)
    assert [(e.key, e.value) for e in events] == [(7, None), (7, 2), (8, [1, 2]), (8, [1, 2]), (None, None)]
    assert [op.key for op in history_from_events(events).client_operations()] == [7, 8]


def test_independence_can_be_forced_either_way():
    text = "{:type :invoke :f :cas :value [1 2] :process 0 :time 1 :index 0}\n"
    assert parse_jepsen_edn(text)[0].key is None
    assert parse_jepsen_edn(text, independent=True)[0].key == 1
    text = "{:type :invoke :f :write :value [1 2] :process 0 :time 1 :index 0}\n"
    assert parse_jepsen_edn(text)[0].key == 1
    assert parse_jepsen_edn(text, independent=False)[0].value == [1, 2]


def test_looks_independent_needs_every_client_value_to_be_a_pair():
    assert not looks_independent([{"process": 0, "f": "read", "value": None}])
    assert not looks_independent([{"process": "nemesis", "f": "kill", "value": [1, 2]}])
    assert looks_independent([{"process": 0, "f": "cas", "value": [1, [2, 3]]}])


def test_export_then_import_gives_the_same_events(tmp_path):
    events = parse_jepsen_edn(ONE_PER_LINE)
    path = tmp_path / "out.edn"
    write_jepsen_edn(path, events)
    assert read_jepsen_edn(path) == events


def test_export_writes_keyed_values_as_independent_tuples_and_odd_names_as_strings():
    e = Event(index=0, type="invoke", process=2, f="write", time=5, key="k1", value=9, extra={"my field": 1, "error": "x"})
    text = events_to_edn([e])
    assert ':value ["k1" 9]' in text and ':f :write' in text and '"my field" 1' in text and ":error" in text
    assert parse_jepsen_edn(text) == [e]


def test_an_invalid_jepsen_history_is_reported_by_the_validator_with_lines():
    text = "{:type :ok :f :read :value 1 :process 0 :time 1 :index 0}\n"
    [problem] = validate(parse_jepsen_edn(text))
    assert problem.line == 1 and "without an invoke" in problem.message


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("{:type :invoke :f :read :process 0 :time 1}\n{:type :ok :f\n", 2, "malformed EDN"),
        ("{:type :invoke :f :read :process 0 :time 1}\n42\n", 2, "expected an op map"),
        ("{:type :done :f :read :process 0 :time 1}\n", 1, "unknown type"),
        ("{:type :ok :f :read :process 0}\n{:type :ok :process 0 :time 2}\n", 2, "missing field f"),
        ("#inst \"not a time\"\n", 1, "malformed EDN"),
        ("{:type :invoke :f :write :value [1 2] :process 0 :time 1}\n{:type :ok :f :write :value 3 :process 0 :time 2}\n", 2, "not a [key value]"),
    ],
)
def test_bad_edn_is_one_format_error_with_its_line(text, line, fragment):
    if "not a [key value]" in fragment:
        call = lambda: parse_jepsen_edn(text, "h.edn", independent=True)  # noqa: E731
    else:
        call = lambda: parse_jepsen_edn(text, "h.edn")  # noqa: E731
    with pytest.raises(FormatError) as caught:
        call()
    assert caught.value.line == line and fragment in caught.value.message
    assert "\n" not in str(caught.value)


def test_non_utf8_and_missing_files_are_format_errors(tmp_path):
    bad = tmp_path / "bad.edn"
    bad.write_bytes(b"{:type :ok}\n\xff\xfe\n")
    with pytest.raises(FormatError) as caught:
        read_jepsen_edn(bad)
    assert caught.value.line == 2
    with pytest.raises(FormatError):
        read_jepsen_edn(tmp_path / "missing.edn")


# --- properties ---------------------------------------------------------------

plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def keyed_histories(draw):
    """Client events all keyed (as jepsen.independent writes them) or none keyed, plus nemesis events."""
    keyed = draw(st.booleans())
    n = draw(st.integers(0, 8))
    events, t = [], 0
    for i in range(n):
        t += draw(st.integers(0, 1000))
        if draw(st.integers(0, 4)) == 0:
            events.append(
                Event(index=i, type=draw(st.sampled_from(["invoke", "info"])), process="nemesis",
                      f=draw(st.sampled_from(["kill", "start-partition"])), time=t, value=draw(plain_values))
            )
            continue
        key = draw(st.integers(0, 3) | st.text(max_size=3)) if keyed else None
        extra = draw(st.dictionaries(st.from_regex(r"[a-z][a-z-]{0,5}", fullmatch=True), plain_values, max_size=2))
        extra = {k: v for k, v in extra.items() if k not in ("index", "type", "process", "f", "value", "time", "key", "node")}
        events.append(
            Event(index=i, type=draw(st.sampled_from(["invoke", "ok", "fail", "info"])), process=draw(st.integers(0, 3)),
                  f=draw(st.sampled_from(["read", "write", "append"])), time=t, key=key,
                  value=draw(plain_values), node=draw(st.none() | st.just("n1")), extra=extra)
        )
    return events


@settings(max_examples=100, deadline=None)
@given(keyed_histories())
def test_roundtrip_property_our_events_survive_edn_export_and_import(events):
    independent = any(e.key is not None for e in events)
    assert parse_jepsen_edn(events_to_edn(events), independent=independent) == events


edn_atoms = st.sampled_from(
    ["nil", "true", ":type", ":invoke", ":ok", ":process", ":f", ":value", ":time", ":index", ":nemesis",
     "0", "1", "-3", "2.5", "\"s\"", "#{", "{", "}", "[", "]", "(", ")", "#", "#inst", "\\a", "^", ";", "\n", " ", "1N", "1M", "#_"]
)


# Deep nesting, huge numbers and long bodies as well as small garbage.
_hostile_edn = st.one_of(
    st.tuples(st.integers(1, 3000), st.sampled_from(["[]", "()", "{}", "#{}"])).map(
        lambda t: ("{:type :invoke, :process 0, :f :write, :value " + t[1][:-1] * t[0] + t[1][-1] * t[0]
                   + "}").encode()),
    st.integers(100, 6000).map(lambda n: ("{:type :invoke, :process 0, :f :write, :value " + "7" * n + "}").encode()),
    st.sampled_from(["##NaN", "##Inf", "##-Inf", "1e400", "1e400M", "-1e999"]).map(
        lambda v: ("{:type :invoke, :process 0, :f :write, :value " + v + "}").encode()),
    st.text(min_size=1000, max_size=20_000).map(lambda t: ('{:type :invoke, :value "' + t.replace('"', "") + '"}').encode()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode),
                 st.lists(edn_atoms, max_size=30).map(lambda xs: " ".join(xs).encode()), _hostile_edn))
def test_fuzz_garbage_edn_gives_format_error_never_a_crash(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "h.edn"
    path.write_bytes(data)
    try:
        events = read_jepsen_edn(path)
    except FormatError as e:
        assert "\n" not in str(e)
    else:
        validate(events)
        history_from_events(events, check=False).client_operations()


PEERS = Path(__file__).resolve().parent / "data" / "porcupine"


@pytest.mark.parametrize("name", ["c01-ok.txt", "c01-bad.txt", "c10-ok.txt", "c10-bad.txt"])
def test_porcupine_kv_files_are_edn_and_read_as_such_give_porcupines_verdict(name):
    # Porcupine's kv files are one EDN map per line with :key and no :time:
    # the generic importer (file order as time) must agree with porcupine.
    from checkers.linearizability import check
    from checkers.models import get_model

    history = read_jepsen_history(PEERS / "kv" / name)
    result = check(history.client_operations(), get_model("string-kv", ""))
    assert result["valid"] is name.endswith("-ok.txt")
