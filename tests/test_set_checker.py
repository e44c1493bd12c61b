"""Set checker: lost, unexpected and duplicated elements, each lost one with the add that acknowledged it."""

from __future__ import annotations

from checkers.sets import check
from history.operation import END_OF_TIME, Operation


def add(i, v, status="ok", call=None, ret=None):
    call = i * 10 if call is None else call
    ret = (END_OF_TIME if status == "info" else call + 5) if ret is None else ret
    return Operation(index=i, process=i % 3, f="add", value=v, output=None, call=call, ret=ret,
                     status=status, key="set", node="n1")


def read(i, elements, call=10_000):
    return Operation(index=i, process=99, f="read", value=None, output=elements, call=call, ret=call + 5,
                     status="ok", key="set", node="n2")


def test_every_acknowledged_add_present_is_valid():
    ops = [add(i, i) for i in range(5)] + [read(100, [0, 1, 2, 3, 4])]
    r = check(ops)
    assert r["valid"] is True and r["lost"] == [] and r["counts"]["ok"] == 5


def test_a_lost_element_is_reported_with_its_add_operation():
    ops = [add(i, i) for i in range(5)] + [read(100, [0, 1, 3, 4])]
    r = check(ops)
    assert r["valid"] is False and r["lost_count"] == 1
    lost = r["lost"][0]
    assert lost["value"] == 2 and lost["index"] == 2 and lost["f"] == "add" and lost["status"] == "ok"


def test_unexpected_and_duplicated_elements_are_anomalies():
    r = check([add(0, 1), read(100, [1, 1, 9])])
    assert r["valid"] is False
    assert r["unexpected"] == [9] and r["duplicated"] == {"1": 2}


def test_info_and_failed_adds_may_be_absent_and_info_ones_present():
    ops = [add(0, 1, "info"), add(1, 2, "fail"), add(2, 3, "info"), read(100, [3])]
    r = check(ops)
    assert r["valid"] is True and r["counts"]["recovered"] == 1


def test_an_add_concurrent_with_the_read_is_not_lost():
    r = check([add(0, 1, call=9_999, ret=10_010), read(100, [])])
    assert r["valid"] is True


def test_no_successful_final_read_is_unknown():
    r = check([add(0, 1)])
    assert r["valid"] == "unknown" and "no final read" in r["reason"]
