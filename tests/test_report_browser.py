"""The HTML report in a real headless Chromium (Debian's chromium, driven by playwright).

Screenshots are test artifacts: they go to $SPLITBRAIN_TEST_ARTIFACTS if set
(CI collects that folder), else to pytest's temporary directory; the path is
printed (pytest -s shows it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from reports.index import write_index
from reports.render import render_run
from reports.synthetic import write_synthetic_run

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SPLITBRAIN_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("no chromium: scripts/setup installs Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("no playwright: scripts/setup installs it with the dev extra")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    path = Path(os.environ.get("SPLITBRAIN_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nreport screenshots in {path}")
    return path


@pytest.fixture(scope="module")
def failing_report(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    run = write_synthetic_run(store / "synthetic-register" / "20261127T120000.000Z", 3000, rate=150,
                              dual_leader=True, seed=1)
    render_run(run)
    return run / "report.html"


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_function("document.body.dataset.drawn === '1'", timeout=10_000)
    return page, errors, requests


def test_a_failing_runs_report_loads_without_errors_or_network_and_shows_its_verdict(browser, failing_report, artifacts):
    page, errors, requests = open_page(browser, failing_report)
    assert errors == []
    assert [u for u in requests if not u.startswith("file:")] == [], "self-contained: no network requests"
    verdict = page.locator("#verdict")
    assert verdict.is_visible() and "anomaly found" in verdict.inner_text()
    assert page.locator(".anomaly-link").count() >= 2
    assert int(page.locator("#timeline").get_attribute("data-drawn-ops")) > 2900, "every operation is drawn"
    page.screenshot(path=str(artifacts / "report-top.png"))
    page.close()


def test_clicking_the_first_anomaly_brings_its_operations_into_view(browser, failing_report, artifacts):
    page, errors, _ = open_page(browser, failing_report)
    first = page.locator(".anomaly-link").first
    first.click()
    page.wait_for_timeout(200)
    state = page.evaluate("""() => {
        const D = JSON.parse(document.getElementById('report-data').textContent);
        const a = D.anomalies[0], v = window.sbView, O = window.sbOps;
        const inView = a.rows.filter(i => O.c[i] <= v.t1 && (O.r[i] < 0 || O.r[i] >= v.t0)).length;
        const span = (D.end - 0);
        return {chosen: v.anomaly, inView, rows: a.rows.length, zoomed: (v.t1 - v.t0) < span / 2};
    }""")
    assert state["chosen"] == 0 and state["rows"] > 0 and state["inView"] > 0 and state["zoomed"]
    box = page.locator("#timeline").bounding_box()
    assert box is not None and box["y"] < 1000 and box["y"] + box["height"] > 0, "the timeline is on screen"
    page.check("#only-anomaly")
    page.wait_for_timeout(200)
    drawn = int(page.locator("#timeline").get_attribute("data-drawn-ops"))
    assert 0 < drawn <= state["rows"], "only the anomaly's operations are drawn"
    assert errors == []
    page.screenshot(path=str(artifacts / "report-first-anomaly.png"))
    page.locator("article.anomaly").first.screenshot(path=str(artifacts / "report-first-evidence.png"))
    page.close()


def test_zoom_and_pan_move_the_shared_axis(browser, failing_report):
    page, errors, _ = open_page(browser, failing_report)
    before = page.evaluate("({...window.sbView})")
    page.locator("#timeline").hover(position={"x": 700, "y": 300})
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(100)
    zoomed = page.evaluate("({...window.sbView})")
    assert zoomed["t1"] - zoomed["t0"] < before["t1"] - before["t0"]
    box = page.locator("#timeline").bounding_box()
    x, y = box["x"] + 700, box["y"] + 300
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 200, y, steps=4)
    page.mouse.up()
    panned = page.evaluate("({...window.sbView})")
    assert panned["t0"] > zoomed["t0"], "dragging left moves later in time"
    page.click("#zoom-fit")
    page.wait_for_timeout(100)
    assert page.evaluate("window.sbView.t0") == pytest.approx(before["t0"])
    assert errors == []
    page.close()


def test_index_filters_and_sorts_runs(browser, tmp_path, artifacts):
    store = tmp_path / "store"
    write_synthetic_run(store / "bad" / "20261127T120000.000Z", 600, rate=100, seed=1)
    write_synthetic_run(store / "good" / "20261127T130000.000Z", 600, rate=100, seed=2, stale_read=False)
    index = write_index(store)
    page, errors, _ = open_page(browser, index)
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 2
    page.select_option("#verdict-filter", "anomaly")
    assert rows.count() == 1 and "bad" in rows.first.inner_text()
    page.select_option("#verdict-filter", "")
    page.click("#runs th[data-key=test]")
    assert "bad" in rows.first.inner_text()
    page.click("#runs th[data-key=test]")
    assert "good" in rows.first.inner_text()
    page.fill("#filter", "good")
    assert rows.count() == 1
    assert errors == []
    page.screenshot(path=str(artifacts / "index.png"))
    page.close()
