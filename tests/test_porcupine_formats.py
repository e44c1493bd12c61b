"""Porcupine's two history formats read as the README's grammar says; garbage gives FormatError, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from history.formats import FormatError
from history.formats.porcupine import (
    parse_porcupine_etcd,
    parse_porcupine_kv,
    read_porcupine_etcd,
    read_porcupine_kv,
)
from history.operation import END_OF_TIME

PEER_DIR = Path(__file__).resolve().parent / "data" / "porcupine"

ETCD = [
    "INFO  jepsen.util - 4\t:invoke\t:read\tnil",
    "INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]",
    "INFO  jepsen.util - 4\t:ok\t:read\t3",
    "INFO  jepsen.util - 2\t:invoke\t:write\t0",
    "INFO  jepsen.util - 1\t:fail\t:cas\t[1 2]",
    "INFO  jepsen.util - 3   :invoke   :read    nil",
    "INFO  jepsen.util - 2\t:info\t:write\t:timed-out",
    "INFO  jepsen.util - 3   :fail     :read    :timed-out",
]


def test_etcd_lines_become_operations_with_the_grammar_meanings():
    ops = parse_porcupine_etcd(ETCD)
    read, cas, write, timed_out = ops
    assert (read.f, read.output, read.status, read.call, read.ret) == ("read", 3, "ok", 0, 2)
    assert (cas.f, cas.value, cas.status, cas.ret) == ("cas", [1, 2], "fail", 4)
    # :info is ignored: the write stays open until the end of time.
    assert (write.f, write.value, write.status, write.ret) == ("write", 0, "info", END_OF_TIME)
    assert (timed_out.f, timed_out.status, timed_out.output) == ("read", "fail", None)
    assert [op.index for op in ops] == [0, 1, 3, 5]


def test_an_etcd_op_still_open_at_the_end_is_info():
    (op,) = parse_porcupine_etcd(["INFO  jepsen.util - 0\t:invoke\t:write\t5"])
    assert op.status == "info" and op.ret == END_OF_TIME


@pytest.mark.parametrize(
    "line, why",
    [
        ("INFO jepsen.util - 0 :invoke :read", "expected"),
        ("WARN  jepsen.util - 0\t:invoke\t:read\tnil", "expected"),
        ("INFO  jepsen.util - x\t:invoke\t:read\tnil", "process"),
        ("INFO  jepsen.util - 0\t:begin\t:read\tnil", "type"),
        ("INFO  jepsen.util - 0\t:invoke\t:delete\tnil", "function"),
        ("INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2 3]", "value"),
        ("INFO  jepsen.util - 0\t:invoke\t:cas\t5", "cas"),
        ("INFO  jepsen.util - 0\t:ok\t:read\t5", "never invoked"),
    ],
)
def test_etcd_lines_outside_the_grammar_say_which_line_and_why(line, why):
    with pytest.raises(FormatError) as err:
        parse_porcupine_etcd(["INFO  jepsen.util - 9\t:invoke\t:read\tnil", line], "f.log")
    assert err.value.line == 2 and err.value.path == "f.log"
    assert why in err.value.message


KV = [
    '{:process 0, :type :invoke, :f :append, :key "1", :value "x 0 0 y"}',
    '{:process 1, :type :invoke, :f :get, :key "1", :value nil}',
    '{:process 0, :type :ok, :f :append, :key "1", :value "x 0 0 y"}',
    '{:process 1, :type :ok, :f :get, :key "1", :value ""}',
    '{:process 2, :type :invoke, :f :put, :key "3", :value "a"}',
]


def test_kv_lines_become_get_put_append_on_their_keys():
    append, get, put = parse_porcupine_kv(KV)
    assert (append.f, append.key, append.value, append.ret) == ("append", "1", "x 0 0 y", 2)
    assert (get.f, get.value, get.output, get.status) == ("get", None, "", "ok")
    assert (put.status, put.ret) == ("info", END_OF_TIME)


@pytest.mark.parametrize(
    "line",
    [
        '{:process 0, :type :fail, :f :get, :key "1", :value nil}',
        '{:process 0 :type :invoke, :f :get, :key "1", :value nil}',
        '{:process 0, :type :invoke, :f :put, :key "1", :value nil}',
        '{:process 5, :type :ok, :f :get, :key "1", :value ""}',
        "not edn at all",
    ],
)
def test_kv_lines_outside_the_grammar_are_format_errors(line):
    with pytest.raises(FormatError) as err:
        parse_porcupine_kv([KV[0], line], "h.txt")
    assert err.value.line == 2


def test_a_missing_file_is_a_format_error_not_an_os_error(tmp_path):
    with pytest.raises(FormatError, match="cannot read"):
        read_porcupine_etcd(tmp_path / "nope.log")


def test_a_binary_file_is_a_format_error(tmp_path):
    path = tmp_path / "bin.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(FormatError):
        read_porcupine_kv(path)


def test_the_peer_files_read_without_error():
    assert len(read_porcupine_etcd(PEER_DIR / "jepsen" / "etcd_000.log")) == 85
    assert len(read_porcupine_kv(PEER_DIR / "kv" / "c01-ok.txt")) == 58


_etcd_words = st.sampled_from(
    ["INFO", "jepsen.util", "-", "0", "1", "-3", ":invoke", ":ok", ":fail", ":info", ":read"]
    + [":write", ":cas", "nil", "7", "[1", "2]", "[1 2]", ":timed-out", "[", "]", "x"]
)
_etcd_line = st.lists(_etcd_words, max_size=9).map(" ".join) | st.text(max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(_etcd_line, max_size=8))
def test_etcd_garbage_in_gives_format_error_never_another_exception(lines):
    try:
        parse_porcupine_etcd(lines)
    except FormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ETCD), max_size=10))
def test_shuffled_valid_etcd_lines_either_read_or_give_format_error(lines):
    try:
        parse_porcupine_etcd(lines)
    except FormatError:
        pass


_kv_line = st.builds(
    "{{:process {}, :type {}, :f {}, :key {}, :value {}}}".format,
    st.sampled_from(["0", "1", "x", "-2", ""]),
    st.sampled_from([":invoke", ":ok", ":fail", "ok"]),
    st.sampled_from([":get", ":put", ":append", ":cas"]),
    st.sampled_from(['"1"', '"2"', "1", '""', '"a"b"']),
    st.sampled_from(["nil", '""', '"x 1 2 y"', "7", '"unterminated']),
) | st.text(max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.lists(_kv_line, max_size=8))
def test_kv_garbage_in_gives_format_error_never_another_exception(lines):
    try:
        parse_porcupine_kv(lines)
    except FormatError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_from_a_file_give_format_error_or_operations(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "h"
    path.write_bytes(data)
    for reader in (read_porcupine_etcd, read_porcupine_kv):
        try:
            reader(path)
        except FormatError:
            pass
