// splitbrain store index: sort by any column, filter by text and verdict. The rows are rendered
// server-side (the page works without script); this re-renders them from the embedded JSON.
(function () {
  "use strict";
  const rows = JSON.parse(document.getElementById("index-data").textContent);
  const tbody = document.querySelector("#runs tbody");
  const filter = document.getElementById("filter");
  const vfilter = document.getElementById("verdict-filter");
  const shown = document.getElementById("shown");
  let sortKey = "time", desc = true;

  function cell(text, cls) { const td = document.createElement("td"); td.textContent = text == null ? "" : String(text); if (cls) td.className = cls; return td; }

  function render() {
    const q = filter.value.trim().toLowerCase();
    const v = vfilter.value;
    const out = rows.filter((r) => (!v || r.verdict === v) &&
      (!q || [r.test, r.run, r.seed, r.verdict, r.time].join(" ").toLowerCase().includes(q)));
    out.sort((a, b) => {
      const x = a[sortKey], y = b[sortKey];
      const c = x == null ? -1 : y == null ? 1 : (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y)));
      return desc ? -c : c;
    });
    tbody.textContent = "";
    for (const r of out) {
      const tr = document.createElement("tr");
      const by = Object.entries(r.by_checker).filter(([, n]) => n).map(([k, n]) => ` · ${k} ${n}`).join("");
      tr.append(cell(r.time), cell(r.test), cell(r.verdict, "verdict-" + r.verdict), cell(r.anomalies + by),
        cell(r.duration_s == null ? "" : r.duration_s + " s"), cell(r.ops), cell(r.seed));
      const td = document.createElement("td"); const a = document.createElement("a"); a.href = r.href; a.textContent = r.run; td.append(a); tr.append(td);
      tbody.append(tr);
    }
    shown.textContent = `${out.length} of ${rows.length} shown`;
    document.querySelectorAll("#runs th[data-key]").forEach((th) => {
      th.classList.toggle("sorted-asc", th.dataset.key === sortKey && !desc);
      th.classList.toggle("sorted-desc", th.dataset.key === sortKey && desc);
    });
  }
  document.querySelectorAll("#runs th[data-key]").forEach((th) => th.addEventListener("click", () => {
    if (sortKey === th.dataset.key) desc = !desc; else { sortKey = th.dataset.key; desc = sortKey === "time"; }
    render();
  }));
  filter.addEventListener("input", render);
  vfilter.addEventListener("change", render);
  render();
  document.body.dataset.drawn = "1";
})();
