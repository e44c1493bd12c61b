"""The HTML report's data and files, without a browser: what report.html and index.html say and embed."""

from __future__ import annotations

import io
import json
import re

import pytest

from harness.cli import main
from history.events import History, parse_events
from reports.data import (
    anomalies,
    clock_offsets,
    fault_bands,
    leader_lanes,
    load_run,
    log_entries,
    logs_near,
    operations_table,
    report_data,
)
from reports.index import index_rows, trends, write_index
from reports.render import embed_json, render_html, render_run
from reports.synthetic import write_synthetic_run


def history(lines: list[dict]) -> History:
    text = "\n".join(json.dumps({"index": i, **e}) for i, e in enumerate(lines))
    return History(tuple(parse_events(text)))


def page_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert m, "the page embeds its data"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    """A synthetic failing run: a stale read and two leaders in one term."""
    path = tmp_path_factory.mktemp("store") / "synthetic-register" / "20261127T120000.000Z"
    return write_synthetic_run(path, 3000, rate=150, dual_leader=True, seed=1)


# ------------------------------------------------------------------ operations


def test_operations_are_columns_sorted_by_call_and_info_is_open_ended_from_where_its_outcome_was_recorded():
    h = history([
        {"type": "invoke", "process": 0, "f": "write", "key": "k1", "value": 3, "time": 2_000_000},
        {"type": "invoke", "process": 1, "f": "read", "key": "k1", "value": None, "time": 1_000_000},
        {"type": "ok", "process": 1, "f": "read", "key": "k1", "value": 3, "time": 4_000_000, "node": "n2"},
        {"type": "info", "process": 0, "f": "write", "key": "k1", "value": 3, "time": 9_000_000},
        {"type": "invoke", "process": 2, "f": "cas", "key": "k2", "value": [1, 4], "time": 9_500_000},
        {"type": "fail", "process": 2, "f": "cas", "key": "k2", "value": [1, 4], "time": 9_600_000},
        {"type": "invoke", "process": 3, "f": "write", "key": "k2", "value": 7, "time": 9_700_000},
    ])
    table, rows = operations_table(h)
    assert len({len(table[c]) for c in "iprcfsknd"}) == 1 and len(table["c"]) == 4
    assert table["c"] == sorted(table["c"])
    read, write, cas, never = (rows[i] for i in (1, 0, 4, 6))
    assert table["d"][read] == "r 3" and table["s"][read] == 0 and table["r"][read] == 4.0
    assert table["s"][write] == 2 and table["r"][write] == 9.0, "info: solid until its outcome was recorded"
    assert table["d"][cas] == "cas 1→4" and table["s"][cas] == 1
    assert table["r"][never] == -1, "never completed: open from its call"
    assert table["nodes"] == ["n2"] and table["keys"] == ["k1", "k2"]


def test_a_partition_band_names_the_nodes_it_left_without_a_majority_and_a_heal_closes_what_is_open():
    h = history([
        {"type": "invoke", "process": "nemesis", "f": "start-partition", "value": {"grudge": "isolate-leader"}, "time": 1_000_000_000},
        {"type": "info", "process": "nemesis", "f": "start-partition",
         "value": {"grudge": "isolate-leader", "drops": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}}, "time": 1_200_000_000},
        {"type": "invoke", "process": "nemesis", "f": "stop-partition", "value": None, "time": 3_000_000_000},
        {"type": "info", "process": "nemesis", "f": "stop-partition", "value": None, "time": 3_100_000_000},
        {"type": "invoke", "process": "nemesis", "f": "kill", "value": {"nodes": ["n2"]}, "time": 4_000_000_000},
        {"type": "ok", "process": "nemesis", "f": "kill", "value": ["n2"], "time": 4_100_000_000},
        {"type": "invoke", "process": "nemesis", "f": "pause", "value": {"nodes": ["n3"]}, "time": 4_500_000_000},
        {"type": "fail", "process": "nemesis", "f": "pause", "value": {"nodes": ["n3"]}, "time": 4_600_000_000},
        {"type": "invoke", "process": "nemesis", "f": "heal", "value": None, "time": 6_000_000_000},
        {"type": "info", "process": "nemesis", "f": "heal", "value": [], "time": 6_500_000_000},
    ])
    bands = fault_bands(h, end_ms=7000.0)
    part, kill, heal = bands
    assert (part["family"], part["label"], part["nodes"], part["start"], part["end"]) == \
        ("partition", "partition isolate-leader", ["n1"], 1000.0, 3000.0)
    assert (kill["family"], kill["nodes"], kill["end"]) == ("kill", ["n2"], 6000.0), "the heal ends the kill"
    assert heal["family"] == "heal"
    assert not any(b["family"] == "pause" for b in bands), "a fault that certainly did not happen has no band"


def test_a_leader_lane_merges_samples_of_one_role_and_term_and_shows_silence_as_down():
    def sample(t, node, role, term):
        value = None if role is None else {"role": role, "term": term, "leader": None}
        return {"type": "ok" if value else "info", "process": "observer", "f": "status", "value": value, "node": node, "time": t * 1_000_000}

    h = history([sample(0, "n1", "follower", 1), sample(50, "n1", "follower", 1), sample(100, "n1", "leader", 2),
                 sample(150, "n1", None, None), sample(200, "n1", "follower", 3)])
    roles = ["down", "follower", "precandidate", "candidate", "leader", "other"]
    lane = [(a, b, roles[c], t) for a, b, c, t in leader_lanes(h)["n1"]]
    assert lane == [(0, 100, "follower", 1), (100, 150, "leader", 2), (150, 200, "down", -1), (200, 200, "follower", 3)]


# ------------------------------------------------------------------ anomalies


def lin_result(blocked_read_call: int) -> dict:
    ops = [
        {"index": 1, "process": 4, "f": "write", "key": "k17", "value": 3, "output": None, "status": "ok",
         "call": 1_000_000_000, "ret": 1_100_000_000},
        {"index": 3, "process": 5, "f": "write", "key": "k17", "value": 4, "output": None, "status": "ok",
         "call": 2_000_000_000, "ret": 2_100_000_000},
        {"index": 5, "process": 6, "f": "read", "key": "k17", "value": None, "output": 3, "status": "ok",
         "call": blocked_read_call, "ret": blocked_read_call + 10_000_000},
    ]
    return {"checkers": {"linearizability": {"valid": False, "checker": "linearizability", "evidence": {
        "key": "k17", "operations": ops, "linearized_prefix": [1, 3], "state_after_prefix": "4",
        "blocked": [{"op": 5, "description": "p6 read 'k17' -> 3", "needs": "3", "reason": "illegal"}],
        "legal_but_dead_end": [], "definite_ops_left": 1, "partition_operations": 3}}}}


def test_the_linearizability_sentence_says_which_read_returned_what_after_which_write_had_completed():
    rows = {1: 0, 3: 1, 5: 2}
    calls = [1000.0, 2000.0, 3000.0]
    [a] = anomalies(lin_result(3_000_000_000), rows, calls, [1100.0, 2100.0, 3010.0])
    assert a["sentence"].startswith("key k17: a read returned 3 after a write of 4 had completed")
    assert a["id"] == "anomaly-1" and a["blocked"] == [2] and a["last_write"] == 1 and a["rows"] == [0, 1, 2]
    assert a["focus"] == [2000.0, 3010.0], "zoom to the read and the write it should have seen"


def test_a_read_concurrent_with_the_last_write_is_not_said_to_come_after_it():
    [a] = anomalies(lin_result(2_050_000_000), {1: 0, 3: 1, 5: 2}, [1000.0, 2000.0, 2050.0])
    assert "had completed" not in a["sentence"] and "a read returned 3" in a["sentence"]


def test_every_failing_checker_gets_a_sentence_and_a_link_at_the_top(bad_run):
    html = render_html(bad_run)
    data = page_data(html)
    kinds = [(a["checker"], a["type"]) for a in data["anomalies"]]
    assert ("linearizability", "not-linearizable") in kinds and ("split-brain", "two-leaders-one-term") in kinds
    for a in data["anomalies"]:
        assert f'href="#{a["id"]}"' in html and f'id="{a["id"]}"' in html
    assert "anomaly found" in html and "splitbrain run --spec" in html and "seed: 1" in html


def test_the_page_gets_operations_packed_and_unpacking_gives_the_table_back(bad_run):
    from reports.data import packed_operations, unpack_operations

    table, _ = operations_table(load_run(bad_run).history)
    packed = packed_operations(table)
    assert len(json.dumps(packed)) < 0.85 * len(json.dumps(table))
    assert unpack_operations(packed) == table


def test_two_leaders_evidence_lists_what_each_acknowledged_while_both_led(bad_run):
    from reports.data import unpack_operations

    data = report_data(load_run(bad_run))
    a = next(a for a in data["anomalies"] if a["type"] == "two-leaders-one-term")
    lo, hi = a["focus"]
    ops = unpack_operations(data["ops"])
    served = [r for lst in a["served"].values() for r in lst]
    assert served and set(served) <= set(a["rows"])
    for node, lst in a["served"].items():
        for r in lst:
            assert ops["nodes"][ops["n"][r]] == node and ops["s"][r] == 0 and ops["c"][r] <= hi and ops["r"][r] >= lo


def test_set_lost_adds_from_a_real_run_loop_get_a_report_written_by_the_run_itself(tmp_path):
    from test_run_loop_command import spec

    from harness.commands.run import execute
    from harness.memory import MemoryCluster, memory_parts

    out = io.StringIO()
    code = execute(spec(tmp_path), None, quiet=True, out=out, parts=memory_parts(MemoryCluster(lose_writes=True)))
    assert code == 1
    run = (tmp_path / "store" / "latest").resolve()
    html = (run / "report.html").read_text()
    assert "acknowledged add" in html and "lost" in html
    assert "not rendered" not in out.getvalue() and str(run / "report.html") in out.getvalue()
    data = page_data(html)
    lost = next(a for a in data["anomalies"] if a["type"] == "lost")
    assert lost["rows"], "the lost adds are highlighted on the axis"
    index = (tmp_path / "store" / "index.html").read_text()
    assert run.name in index, "the store's index is refreshed after the run"


# ------------------------------------------------------------------ logs


def test_log_lines_are_mapped_to_run_time_by_each_nodes_own_wall_clock():
    h = history([
        {"type": "ok", "process": "observer", "f": "status", "node": "n1", "time": 1_000_000_000,
         "value": {"role": "leader", "term": 1, "wall_time": 1_800_000_010.0}},
        # n2's clock runs 5 s ahead (a bumped clock): its log lines are 5 s ahead too.
        {"type": "ok", "process": "observer", "f": "status", "node": "n2", "time": 1_000_000_000,
         "value": {"role": "follower", "term": 1, "wall_time": 1_800_000_015.0}},
    ])
    offsets = clock_offsets(h)
    assert offsets == {"n1": 1_800_000_009.0, "n2": 1_800_000_014.0}
    from datetime import UTC, datetime
    stamp = datetime.fromtimestamp(1_800_000_012.5, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    stamp2 = datetime.fromtimestamp(1_800_000_017.5, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    entries = log_entries({"n1": [f"{stamp} n1 INFO x", "no time here"], "n2": [f"{stamp2} n2 INFO y"]}, offsets, None)
    assert [(e[0], e[1]) for e in entries] == [(3500.0, "n1"), (3500.0, "n2")]
    assert logs_near(entries, 5000, 6000) == entries
    assert logs_near(entries, 90000, 95000) == entries, "far from every line: the nearest ones"
    many = [[float(t), "n1", f"line {t}"] for t in range(0, 100000, 100)]
    near = logs_near(many, 50000, 50000)
    assert near[0][0] == 48000 and near[-1][0] == 52000 and len(near) == 41


# ------------------------------------------------------------------ files and commands


def test_the_page_is_self_contained_and_a_value_cannot_close_its_script(tmp_path):
    assert "</script>" not in embed_json({"v": "</script><script>alert(1)</script>"})
    run = tmp_path / "s" / "t" / "20261127T120000.000Z"
    write_synthetic_run(run, 300, rate=100, check=False)
    (run / "results.json").write_text(json.dumps({"test": "t", "valid": True, "checkers": {}}))
    html = render_html(run)
    assert not re.search(r'(src|href)="(https?:)?//', html), "no network: nothing linked from elsewhere"
    assert "<script src" not in html and '<link rel="stylesheet"' not in html


def test_report_command_writes_the_report_and_refuses_a_folder_that_is_not_a_run(bad_run, tmp_path, capsys):
    (bad_run / "report.html").unlink(missing_ok=True)
    assert main(["report", str(bad_run)]) == 0
    assert (bad_run / "report.html").is_file()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a run folder" in err[0]
    assert main(["report", "--index", str(tmp_path / "nope")]) == 2


def test_index_lists_every_run_newest_first_with_anomaly_counts_and_a_trend_per_test(tmp_path, bad_run):
    store = tmp_path / "store"
    for i, valid in enumerate([True, False, True]):
        run = store / "t1" / f"2026112{i}T000000.000Z"
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps({
            "test": "t1", "valid": valid, "seed": i, "timings": {"run_s": 12.34},
            "checkers": {"set": {"valid": valid, "lost": [] if valid else [{}], "lost_count": 0 if valid else 2}}}))
    (store / "latest").symlink_to("t1/20261122T000000.000Z")
    rows = index_rows(store)
    assert [r["seed"] for r in rows] == [2, 1, 0], "newest first, latest not listed twice"
    assert rows[1]["verdict"] == "anomaly" and rows[1]["anomalies"] == 2 and rows[1]["duration_s"] == 12.3
    [trend] = trends(rows)
    assert [r["verdict"] for r in trend["runs"]] == ["valid", "anomaly", "valid"] and trend["anomalies"] == 1
    html = write_index(store).read_text()
    assert "t1" in html and "anomaly" in html and 'id="filter"' in html
    assert main(["report", "--index", str(store)]) == 0


def test_a_100k_op_report_embeds_every_operation(tmp_path):
    run = write_synthetic_run(tmp_path / "big", 20_000, processes=20, rate=2000, check=False)
    (run / "results.json").write_text(json.dumps({"test": "big", "valid": True, "checkers": {}}))
    out = render_run(run, index=False)
    data = page_data(out.read_text())
    assert len(data["ops"]["c"]) == 20_000, "no cap hides operations"
    # About 80 bytes per operation keeps 100,000 well under 10 MB.
    assert out.stat().st_size < 20_000 * 100


def test_a_run_killed_mid_write_still_gets_a_report(tmp_path):
    run = tmp_path / "s" / "t" / "20261127T120000.000Z"
    write_synthetic_run(run, 200, rate=100, check=False)
    with open(run / "history.jsonl", "a") as f:
        f.write('{"index": 99999, "type": "invo')  # torn last line
    (run / "results.json").write_text(json.dumps({"test": "t", "valid": "unknown", "status": "running"}))
    data = page_data(render_html(run))
    assert len(data["ops"]["c"]) == 200 and data["valid"] == "unknown"


def test_an_empty_history_renders(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "history.jsonl").write_text("")
    assert page_data(render_html(run))["ops"]["c"] == []


def test_dual_serving_names_both_leaders_and_highlights_what_each_acknowledged_in_the_overlap():
    h = history([
        {"type": "invoke", "process": 0, "f": "write", "key": "k", "value": 1, "time": 1_000_000_000, "node": "n1"},
        {"type": "ok", "process": 0, "f": "write", "key": "k", "value": 1, "time": 1_100_000_000, "node": "n1"},
        {"type": "invoke", "process": 1, "f": "write", "key": "k", "value": 2, "time": 1_050_000_000, "node": "n2"},
        {"type": "ok", "process": 1, "f": "write", "key": "k", "value": 2, "time": 1_150_000_000, "node": "n2"},
        {"type": "invoke", "process": 2, "f": "read", "key": "k", "value": None, "time": 5_000_000_000, "node": "n2"},
        {"type": "ok", "process": 2, "f": "read", "key": "k", "value": 2, "time": 5_100_000_000, "node": "n2"},
        # Asked before the overlap and answered in it: the checker does not count it, nor does the page.
        {"type": "invoke", "process": 3, "f": "write", "key": "k", "value": 3, "time": 800_000_000, "node": "n1"},
        {"type": "ok", "process": 3, "f": "write", "key": "k", "value": 3, "time": 950_000_000, "node": "n1"},
    ])
    table, rows = operations_table(h)
    results = {"checkers": {"split-brain": {"valid": False, "anomalies": [{
        "type": "dual-serving", "nodes": ["n1", "n2"], "terms": [3, 4], "start": 900_000_000, "end": 1_200_000_000,
        "operations": {"n1": [{"index": 0}], "n2": [{"index": 2}]},
        "summary": "n1 (term 3) and n2 (term 4) both led and both acknowledged client operations between 0.900s and 1.200s"}]}}}
    [a] = anomalies(results, rows, table["c"], table["r"])
    assert a["sentence"].startswith("n1 (term 3) and n2 (term 4) both led")
    assert a["focus"] == [900.0, 1200.0] and a["nodes"] == ["n1", "n2"] and a["rows"] == [rows[0], rows[2]]
    from reports.data import served_during
    assert served_during(table, ["n1", "n2"], 900.0, 1200.0) == {"n1": [rows[0]], "n2": [rows[2]]}
