"""Render one run folder's report.html: a single self-contained page (data, script and styles inline).

The page must open from file:// with no network, so nothing is linked: the
JSON from `reports.data`, reports/static/report.js and report.css go inside
the page. Jinja2 writes the static parts (verdict, sentences, evidence
tables) with autoescaping, since histories carry whatever values a client
wrote; the script draws the timeline and the plots on <canvas>.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from history.events import History
from reports.data import ReportError, load_run, packed_operations, report_data
from reports.index import store_of, write_index
from reports.page import embed_json, environment, static

REPORT = "report.html"

_env = environment(trim_blocks=True, lstrip_blocks=True)


def fmt_s(ns: Any) -> str:
    return "" if not isinstance(ns, (int, float)) else f"{ns / 1e9:.3f}s"


_env.filters["secs"] = fmt_s


def verdict_word(v: Any) -> str:
    return {True: "valid", False: "anomaly found"}.get(v, str(v or "unknown")) if isinstance(v, bool) or v is None \
        else str(v)


def render_html(run_dir: str | os.PathLike[str], history: History | None = None) -> str:
    inputs = load_run(run_dir, history)
    data = report_data(inputs)
    ops = data["ops"]

    def op(row: int) -> dict[str, Any]:
        """One client operation of the table, for the evidence lists."""
        key = ops["keys"][ops["k"][row]] if ops["k"][row] >= 0 else ""
        return {"index": ops["i"][row], "process": ops["processes"][ops["p"][row]],
                "desc": f"{ops['fs'][ops['f'][row]]} {key}: {ops['d'][row]} [{('ok', 'fail', 'info')[ops['s'][row]]}]",
                "call": f"{ops['c'][row] / 1000:.3f}s", "ret": f"{ops['r'][row] / 1000:.3f}s" if ops["r"][row] >= 0 else "never"}

    return _env.get_template("report.html.j2").render(
        d=data,
        op=op,
        r=inputs.results,
        spec_text=inputs.spec_text,
        verdict=verdict_word(data["valid"]),
        # The evidence is drawn into the page's tables above; the script does not need it.
        data_json=embed_json({**data, "ops": packed_operations(data["ops"]),
                              "anomalies": [{k: v for k, v in a.items() if k != "evidence"} for a in data["anomalies"]]}),
        script=static("report.js"),
        style=static("report.css"),
    )


def render_run(run_dir: str | os.PathLike[str], *, index: bool = True,
               history: History | None = None) -> Path:
    """Write RUN_DIR/report.html and return its path; ReportError for a folder that is not a run.

    With `index`, also refresh the store's index.html (the store is two levels
    up, store/<test>/<run>); a failure there never costs the report itself."""
    path = Path(run_dir)
    html = render_html(path, history)
    out = path / REPORT
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(html)
    os.replace(tmp, out)
    if index:
        try:
            store = store_of(path)
            if store is not None:
                write_index(store)
        except Exception:  # the index is a convenience; the run's own report is written
            pass
    return out


__all__ = ["ReportError", "embed_json", "render_html", "render_run"]
