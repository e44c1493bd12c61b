"""The HTML report at 100,000 operations: file size, time to render in Python, time to draw in Chromium.

Writes a synthetic run folder (register workload, partitions, a stale read,
so there is an anomaly to draw), checks it with the real checkers, renders
report.html, then opens it in Debian's headless chromium through playwright
and measures from the start of navigation to the moment the page's script
has drawn the timeline, latency and throughput for the first time (it sets
document.body.dataset.drawn). Then once more after clicking the first
anomaly (zoom + redraw). Median of --repeat loads.

Targets (issue 6): file < 10 MB, drawn < 2 s.

Usage: python bench/report_bench.py [--ops 100000] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reports.render import render_run  # noqa: E402
from reports.synthetic import write_synthetic_run  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def measure(report: Path, repeat: int) -> tuple[list[float], list[float], int, list[float]]:
    from playwright.sync_api import sync_playwright

    loads, clicks, in_page = [], [], []
    drawn_ops = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for _ in range(repeat):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            started = time.perf_counter()
            page.goto(report.as_uri(), wait_until="commit")
            page.wait_for_function("document.body && document.body.dataset.drawn === '1'", timeout=60_000, polling=10)
            loads.append(time.perf_counter() - started)
            # The page's own clock too: navigation start to the end of the first drawing.
            in_page.append(page.evaluate("window.sbDrawn") / 1000)
            parts = page.evaluate("window.sbTimings")
            print("  script (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()), file=sys.stderr)
            drawn_ops = int(page.locator("#timeline").get_attribute("data-drawn-ops") or 0)
            if errors:
                raise SystemExit(f"page errors: {errors}")
            if page.locator(".anomaly-link").count():
                t = time.perf_counter()
                page.locator(".anomaly-link").first.click()
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                clicks.append(time.perf_counter() - t)
            page.close()
        browser.close()
    return loads, clicks, drawn_ops, in_page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="write the run folder here and keep it (default: a temporary dir)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        run_dir = base / "report-bench" / "20261127T000000.000Z"
        t = time.perf_counter()
        # 20 clients at 1,000 ops/s: 100 s of history, 10 partitions.
        write_synthetic_run(run_dir, args.ops, processes=20, keys=200, rate=1000.0, seed=7)
        gen_s = time.perf_counter() - t
        t = time.perf_counter()
        report = render_run(run_dir, index=False)
        render_s = time.perf_counter() - t
        size = report.stat().st_size
        loads, clicks, drawn, in_page = measure(report, args.repeat)
        load = statistics.median(loads)
        print(f"report bench: {args.ops} operations ({drawn} drawn), run folder written and checked in {gen_s:.1f} s")
        print(f"  report.html        {size / 1e6:.2f} MB  (target < 10 MB: {'ok' if size < 10e6 else 'MISSED'})")
        print(f"  render (Python)    {render_s:.2f} s")
        print(f"  load + first draw  {load:.2f} s median of {len(loads)} in chromium "
              f"({', '.join(f'{x:.2f}' for x in loads)}) (target < 2 s: {'ok' if load < 2 else 'MISSED'})")
        print(f"  by the page clock  {statistics.median(in_page):.2f} s median (navigation start to first full drawing)")
        if clicks:
            print(f"  click 1st anomaly  {statistics.median(clicks) * 1000:.0f} ms median (zoom + redraw)")
        if args.keep:
            print(f"  kept               {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
