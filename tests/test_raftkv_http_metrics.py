"""GET /metrics speaks the Prometheus text format: elections, leader changes, term, role, commit, bad MACs, fsync."""

import re

from targets.raftkv.metrics import Histogram, render

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$')


def rendered():
    fsync = Histogram()
    for s in (0.0004, 0.003, 0.003, 0.2):
        fsync.observe(s)
    node = {"elections_started": 3, "leader_changes": 2, "term": 7, "commit_index": 41,
            "is_leader": True, "odd name-with.dots": 1.5, "role": "leader"}
    return render(node, "leader", {"http_requests": 9}, {"bad_mac": 4, "unknown_peer": 1}, fsync)


def samples(text):
    out = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            assert SAMPLE.match(line), line
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_every_figure_the_issue_names_is_exported():
    s = samples(rendered())
    assert s["raftkv_elections_started_total"] == 3
    assert s["raftkv_leader_changes_total"] == 2
    assert s["raftkv_term"] == 7
    assert s["raftkv_commit_index"] == 41
    assert s['raftkv_role{role="leader"}'] == 1 and s['raftkv_role{role="follower"}'] == 0
    assert s['raftkv_frames_rejected_total{reason="bad_mac"}'] == 4
    assert s["raftkv_http_requests_total"] == 9
    assert s["raftkv_is_leader"] == 1
    assert s["raftkv_odd_name_with_dots"] == 1.5  # unknown names are sanitised, not dropped


def test_fsync_latency_is_a_cumulative_histogram():
    s = samples(rendered())
    assert s['raftkv_fsync_seconds_bucket{le="0.0005"}'] == 1
    assert s['raftkv_fsync_seconds_bucket{le="0.005"}'] == 3
    assert s['raftkv_fsync_seconds_bucket{le="0.25"}'] == 4
    assert s['raftkv_fsync_seconds_bucket{le="+Inf"}'] == s["raftkv_fsync_seconds_count"] == 4
    assert abs(s["raftkv_fsync_seconds_sum"] - 0.2064) < 1e-9


def test_each_metric_has_help_and_type_once():
    text = rendered()
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    names = [n for n, _ in types]
    assert len(names) == len(set(names))
    assert ("raftkv_elections_started_total", "counter") in types
    assert ("raftkv_fsync_seconds", "histogram") in types
    assert text.count("# HELP") == len(types)
