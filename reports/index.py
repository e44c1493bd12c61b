"""The store's index.html: every run (test, time, verdict, anomaly counts, duration), filterable and
sortable, and per test the trend of its recent verdicts, so a nightly suite's drift shows at a glance.

A store is STORE/<test>/<run>/results.json. The page is self-contained like a
run's report: the rows go in as JSON and a few lines of script sort and filter.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from history.bounded import loads_json, read_text
from history.formats import FormatError
from reports.data import ReportError
from reports.page import embed_json, environment, static

INDEX = "index.html"
TREND_RUNS = 20  # verdicts shown per test, newest last

_env = environment()


def store_of(run_dir: str | os.PathLike[str]) -> Path | None:
    """The store a run folder lives in (store/<test>/<run>), or None if it does not look like one."""
    path = Path(run_dir).resolve()
    store = path.parent.parent
    return store if (path / "results.json").is_file() and store != path.parent else None


def _stamp_time(name: str) -> str | None:
    """ISO time from a run folder name like 20261127T122502.983Z (-2 for a second run in that ms)."""
    try:
        t = datetime.strptime(name.split("-")[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def verdict_of(results: dict[str, Any]) -> str:
    v = results.get("valid")
    if results.get("status") == "running":
        return "running"
    return {True: "valid", False: "anomaly"}.get(v, "unknown") if isinstance(v, bool) or v is None else (
        "error" if "error" in str(v) else str(v))


def anomaly_counts(results: dict[str, Any]) -> dict[str, int]:
    """Checker -> how many anomalies it reported (0 for a valid checker)."""
    out = {}
    for name, r in (results.get("checkers") or {}).items():
        if r.get("valid") is not False:
            out[name] = 0
        elif "anomalies" in r:
            out[name] = len(r["anomalies"])
        elif "lost" in r:
            out[name] = int(r.get("lost_count") or 0) + len(r.get("unexpected") or []) + len(r.get("duplicated") or {})
        else:
            out[name] = 1
    return out


def run_row(store: Path, results_path: Path) -> dict[str, Any] | None:
    """The index row of one run; None for a run whose results.json cannot be
    read or is not the shape splitbrain writes (one bad run must not cost the index)."""
    try:
        results = loads_json(read_text(results_path))
        return _run_row(store, results_path, results)
    except (FormatError, ValueError, TypeError, AttributeError, KeyError, IndexError):
        return None


def _run_row(store: Path, results_path: Path, results: Any) -> dict[str, Any] | None:
    run_dir = results_path.parent
    rel = run_dir.relative_to(store).as_posix()
    timings = results.get("timings") or {}
    duration = timings.get("run_s")
    if duration is None:
        phases = (results.get("run") or {}).get("phases") or {}
        duration = phases.get("teardown")
    counts = anomaly_counts(results)
    report = run_dir / "report.html"
    return {
        "test": results.get("test") or run_dir.parent.name,
        "run": run_dir.name,
        "time": _stamp_time(run_dir.name) or datetime.fromtimestamp(results_path.stat().st_mtime, UTC).isoformat(timespec="seconds"),
        "verdict": verdict_of(results),
        "anomalies": sum(counts.values()),
        "by_checker": counts,
        "duration_s": round(duration, 1) if isinstance(duration, (int, float)) else None,
        "ops": (results.get("stats") or {}).get("ops"),
        "seed": results.get("seed"),
        "href": f"{rel}/report.html" if report.is_file() else f"{rel}/results.json",
    }


def index_rows(store: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every run in the store, newest first."""
    root = Path(store).resolve()
    if not root.is_dir():
        raise ReportError(f"{store}: not a store (no such directory)")
    rows = []
    for results_path in root.glob("*/*/results.json"):
        if results_path.parent.is_symlink() or results_path.parent.parent.is_symlink():
            continue  # store/latest and store/<test>/latest point at runs listed anyway
        row = run_row(root, results_path)
        if row is not None:
            rows.append(row)
    rows.sort(key=lambda r: (r["time"], r["run"]), reverse=True)
    return rows


def trends(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per test, its last TREND_RUNS verdicts oldest first, and how many of them found an anomaly."""
    by_test: dict[str, list[dict[str, Any]]] = {}
    for r in rows:  # newest first
        by_test.setdefault(r["test"], [])
        if len(by_test[r["test"]]) < TREND_RUNS:
            by_test[r["test"]].append(r)
    out = []
    for test, runs in sorted(by_test.items()):
        runs = list(reversed(runs))
        out.append({"test": test, "runs": [{"verdict": r["verdict"], "href": r["href"], "time": r["time"]} for r in runs],
                    "anomalies": sum(1 for r in runs if r["verdict"] == "anomaly"), "last": runs[-1]["verdict"]})
    return out


# Where `splitbrain matrix` writes its tables, under the store beside the runs' test folders.
MATRIX_DIR = "_matrix"
MATRICES_SHOWN = 10


def matrices(store: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The store's detection matrices (STORE/_matrix/*/matrix.json), newest first; unreadable ones skipped."""
    out = []
    for path in Path(store).resolve().glob(f"{MATRIX_DIR}/*/matrix.json"):
        try:
            t = loads_json(read_text(path))
            out.append({"name": str(t["name"]), "folder": path.parent.name, "rows": list(t["rows"]),
                        "harness_failure": bool(t.get("harness_failure")), "verdict": _matrix_verdict(t),
                        "command": t.get("command"), "href": f"{MATRIX_DIR}/{path.parent.name}/matrix.md",
                        "mtime": path.stat().st_mtime})
        except (FormatError, ValueError, TypeError, KeyError, OSError):
            continue
    out.sort(key=lambda m: m["mtime"], reverse=True)
    return out[:MATRICES_SHOWN]


def _matrix_verdict(t: dict[str, Any]) -> str:
    n = sum(c.get("seeds_run", 0) for c in t.get("controls", []))
    if t.get("harness_failure"):
        return f"the correct store had an anomaly in {t.get('false_positives')} of its {n} runs"
    caught = sum(1 for r in t["rows"] if r.get("caught"))
    return f"{caught} of {len(t['rows'])} rows caught their bug; the correct store valid in all {n} control runs"


def render_index(store: str | os.PathLike[str]) -> str:
    rows = index_rows(store)
    return _env.get_template("index.html.j2").render(
        store=str(Path(store).resolve()), rows=rows, trends=trends(rows), matrices=matrices(store),
        data_json=embed_json(rows), style=static("report.css"), script=static("index.js"),
    )


def write_index(store: str | os.PathLike[str]) -> Path:
    html = render_index(store)
    out = Path(store) / INDEX
    tmp = out.with_name(f".{INDEX}.{os.getpid()}.tmp")
    tmp.write_text(html)
    os.replace(tmp, out)
    return out
