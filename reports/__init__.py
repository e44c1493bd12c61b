"""The HTML reports: a run's report.html and the store's index.html, each one self-contained page.

    reports.data       run folder -> the JSON the page draws (ops as columns, fault bands,
                       leader lanes, anomalies with one sentence each, node log lines)
    reports.render     render_run(RUN_DIR) writes RUN_DIR/report.html (and refreshes the index)
    reports.index      write_index(STORE) writes STORE/index.html (runs, verdicts, trend per test)
    reports.page       what both pages share: the templates, inlined static files, JSON safe in a page
    reports.synthetic  a synthetic run folder of any size, for the tests and bench/report_bench.py
    templates/, static/  Jinja2 templates, and the page's own script and styles (inlined)

Plots are our own <canvas> drawing, no library: the page must open from file://
with no network (no CDN), and canvas draws 100,000 operations in well under a
second where one SVG element per operation would not.
`splitbrain report RUN_DIR` and `splitbrain report --index STORE` run them by hand.
"""
