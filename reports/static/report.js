// splitbrain report: draws the timeline, latency and throughput on <canvas> from the embedded JSON.
// Canvas, not SVG: 100,000 operations as DOM nodes would take seconds to lay out; on a canvas
// they are 100,000 rect() calls batched into a few fills per frame. No library: the page must
// work from file:// with no network.
(function () {
  "use strict";
  const T0 = performance.now();
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const timings = { parse: performance.now() - T0 };
  window.sbTimings = timings;  // where the first drawing's time goes (the benchmark prints it)
  const O = D.ops;
  // Undo reports.data.packed_operations: calls and indices were differences, returns latencies.
  if (O.packed) {
    const n = O.c.length;
    const c = new Float64Array(n), r = new Float64Array(n), idx = new Float64Array(n);
    let t = 0, k = 0;
    for (let j = 0; j < n; j++) {
      t += O.c[j]; k += O.i[j];
      c[j] = Math.round(t * 100) / 100; idx[j] = k;
      r[j] = O.r[j] < 0 ? -1 : c[j] + O.r[j];
    }
    O.c = c; O.r = r; O.i = idx; O.packed = false;
  }
  window.sbOps = O;  // the unpacked table, for the browser tests
  const N = O.c.length;
  const COLORS = { ok: "#2e7d32", fail: "#c62828", info: "#ef8f00", lead: "#1565c0", cand: "#8e7cc3",
                   foll: "#b0bec5", down: "#444", other: "#90a4ae", hl: "#ffd600" };
  const ROLE_COLOR = { down: COLORS.down, follower: COLORS.foll, precandidate: COLORS.cand,
                       candidate: COLORS.cand, leader: COLORS.lead, other: COLORS.other };
  const STATUS = ["ok", "fail", "info"];
  const GUTTER = 64;  // px at the left for lane labels

  // The time extent: from the first event to the last, with a little room.
  let tMin = Infinity, tMax = D.end || 0;
  for (let i = 0; i < N; i++) { if (O.c[i] < tMin) tMin = O.c[i]; if (O.r[i] > tMax) tMax = O.r[i]; }
  for (const n in D.leaders) { const s = D.leaders[n]; if (s.length) { tMin = Math.min(tMin, s[0][0]); tMax = Math.max(tMax, s[s.length - 1][1]); } }
  if (!isFinite(tMin)) tMin = 0;
  if (tMax <= tMin) tMax = tMin + 1000;
  const FULL = [tMin - (tMax - tMin) * 0.01, tMax + (tMax - tMin) * 0.01];

  const view = { t0: FULL[0], t1: FULL[1], anomaly: -1, pinned: -1 };
  window.sbView = view;  // read by the browser tests

  // Ops of each process lane, in call order (the table is sorted by call).
  const P = O.processes.length;
  const laneOps = Array.from({ length: P }, () => []);
  for (let i = 0; i < N; i++) laneOps[O.p[i]].push(i);
  const nodes = D.nodes;
  const families = [];
  for (const f of D.faults) if (f.family !== "heal" && !families.includes(f.family)) families.push(f.family);

  // ---------------------------------------------------------------- layout
  const AXIS = 22, FAULT_LANE = 16, NODE_LANE = 16, GAP = 6;
  const layout = { axis: 0, faults: AXIS, nodes: 0, ops: 0, height: 0 };
  layout.nodes = layout.faults + Math.max(1, families.length) * FAULT_LANE + GAP;
  layout.ops = layout.nodes + nodes.length * NODE_LANE + GAP;
  // Which ops are drawn (null: all) and which process lanes: with "only the chosen anomaly's
  // operations" on, the lanes close up around the processes that have them.
  let only = null;
  let laneRow = new Int32Array(P);
  let rowProc = [];
  let opLane = 14;
  function relayout() {
    laneRow.fill(-1);
    rowProc = [];
    const keep = new Uint8Array(P);
    if (only) { for (let i = 0; i < N; i++) if (only[i]) keep[O.p[i]] = 1; } else keep.fill(1);
    for (let p = 0; p < P; p++) if (keep[p]) { laneRow[p] = rowProc.length; rowProc.push(p); }
    const R = rowProc.length;
    opLane = R <= 40 ? 14 : Math.max(2, Math.floor(560 / R));
    layout.height = layout.ops + R * opLane + 4;
  }
  relayout();
  const laneY = (p) => layout.ops + laneRow[p] * opLane;

  function fmtT(ms) {
    const s = ms / 1000;
    const span = (view.t1 - view.t0) / 1000;
    return span < 0.05 ? s.toFixed(4) + "s" : span < 2 ? s.toFixed(3) + "s" : span < 60 ? s.toFixed(2) + "s" : s.toFixed(1) + "s";
  }

  function setup(canvas, cssHeight) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.parentElement.clientWidth || 1000;
    canvas.style.height = cssHeight + "px";
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(cssHeight * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(cssHeight * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { ctx, w, h: cssHeight };
  }

  function scaleX(w) {
    const k = (w - GUTTER) / (view.t1 - view.t0);
    return (t) => GUTTER + (t - view.t0) * k;
  }

  function niceStep(span, px) {
    const raw = span / Math.max(1, px / 90);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  function drawAxis(ctx, w, h, top) {
    const X = scaleX(w);
    const step = niceStep(view.t1 - view.t0, w - GUTTER);
    ctx.fillStyle = "#5f6b76";
    ctx.font = "11px ui-monospace, monospace";
    ctx.strokeStyle = "rgba(0,0,0,0.07)";
    ctx.beginPath();
    for (let t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      const x = Math.round(X(t)) + 0.5;
      if (x < GUTTER) continue;
      ctx.moveTo(x, top); ctx.lineTo(x, h);
      ctx.fillText(fmtT(t), x + 3, top + 12);
    }
    ctx.stroke();
  }

  function drawFaultBands(ctx, w, top, bottom) {
    const X = scaleX(w);
    for (const f of D.faults) {
      const x0 = Math.max(GUTTER, X(f.start)), x1 = Math.min(w, X(f.end));
      if (f.family === "heal") {
        if (x0 >= GUTTER && x0 <= w) { ctx.fillStyle = "rgba(46,125,50,0.5)"; ctx.fillRect(x0, top, 1.5, bottom - top); }
        continue;
      }
      if (x1 < GUTTER || x0 > w) continue;
      ctx.fillStyle = "rgba(229,57,53,0.09)";
      ctx.fillRect(x0, top, Math.max(1, x1 - x0), bottom - top);
    }
  }

  function drawAnomalyBand(ctx, w, top, bottom) {
    if (view.anomaly < 0) return;
    const a = D.anomalies[view.anomaly];
    if (a.start == null) return;
    const X = scaleX(w);
    const x0 = Math.max(GUTTER, X(a.start)), x1 = Math.min(w, X(a.end));
    ctx.fillStyle = "rgba(255,214,0,0.16)";
    ctx.fillRect(x0, top, Math.max(2, x1 - x0), bottom - top);
  }

  // ---------------------------------------------------------------- timeline
  const tl = document.getElementById("timeline");

  function drawTimeline() {
    const { ctx, w, h } = setup(tl, layout.height);
    const X = scaleX(w);
    ctx.clearRect(0, 0, w, h);
    drawFaultBands(ctx, w, AXIS, h);
    drawAnomalyBand(ctx, w, AXIS, h);
    drawAxis(ctx, w, h, 0);
    ctx.font = "11px ui-monospace, monospace";

    // Fault lane(s): one row per fault family, labelled with what and whom.
    families.forEach((fam, row) => {
      const y = layout.faults + row * FAULT_LANE;
      ctx.fillStyle = "#5f6b76";
      ctx.fillText(fam, 4, y + 12);
      for (const f of D.faults) {
        if (f.family !== fam) continue;
        const x0 = Math.max(GUTTER, X(f.start)), x1 = Math.min(w, X(f.end));
        if (x1 < GUTTER || x0 > w) continue;
        ctx.fillStyle = f.status === "info" || f.status === "ok" || f.status == null ? "rgba(229,57,53,0.55)" : "rgba(229,57,53,0.3)";
        ctx.fillRect(x0, y + 2, Math.max(2, x1 - x0), FAULT_LANE - 4);
        const label = f.label + (f.nodes.length ? " → " + f.nodes.join(",") : "");
        if (x1 - x0 > 40) {
          ctx.save(); ctx.beginPath(); ctx.rect(x0, y, x1 - x0, FAULT_LANE); ctx.clip();
          ctx.fillStyle = "#fff"; ctx.fillText(label, x0 + 3, y + 12); ctx.restore();
        }
      }
    });

    // A lane per node: role and term over time; a red line under it while a fault hits the node.
    nodes.forEach((n, row) => {
      const y = layout.nodes + row * NODE_LANE;
      ctx.fillStyle = "#1d2329";
      ctx.fillText(n, 4, y + 12);
      const segs = D.leaders[n] || [];
      for (const s of segs) {
        const x0 = Math.max(GUTTER, X(s[0])), x1 = Math.min(w, X(s[1]));
        if (x1 < GUTTER || x0 > w) continue;
        const role = D.roles[s[2]];
        ctx.fillStyle = ROLE_COLOR[role] || COLORS.other;
        ctx.fillRect(x0, y + 2, Math.max(1, x1 - x0), NODE_LANE - 6);
        if (role === "leader" && x1 - x0 > 26) { ctx.fillStyle = "#fff"; ctx.fillText("T" + s[3], x0 + 3, y + 11); }
      }
      // An election's candidates: amber under the lane while two believed they led, a black tick for
      // each write the fenced resource rejected.
      for (const m of D.marks || []) {
        if (m[0] !== n) continue;
        const x0 = Math.max(GUTTER, X(m[1])), x1 = Math.min(w, X(m[2]));
        if (x1 < GUTTER || x0 > w) continue;
        if (m[3] === "overlap") { ctx.fillStyle = "#ffb300"; ctx.fillRect(x0, y + NODE_LANE - 7, Math.max(2, x1 - x0), 3); }
        else { ctx.fillStyle = "#000"; ctx.fillRect(x0, y + 1, 2, NODE_LANE - 4); }
      }
      for (const f of D.faults) {
        if (f.family === "heal" || !f.nodes.includes(n)) continue;
        const x0 = Math.max(GUTTER, X(f.start)), x1 = Math.min(w, X(f.end));
        if (x1 < GUTTER || x0 > w) continue;
        ctx.fillStyle = "#e53935";
        ctx.fillRect(x0, y + NODE_LANE - 4, Math.max(1, x1 - x0), 2);
      }
    });

    // Client operations, one lane per process, batched into one path per colour.
    const paths = { ok: new Path2D(), fail: new Path2D(), info: new Path2D(), open: new Path2D() };
    const bh = Math.max(1, opLane - (opLane > 6 ? 4 : 1));
    let drawn = 0;
    for (let i = 0; i < N; i++) {
      const c = O.c[i];
      if (c > view.t1 || (only && !only[i])) continue;
      const st = O.s[i];
      const r = O.r[i];
      const y = laneY(O.p[i]) + (opLane > 6 ? 2 : 0);
      const x0 = X(c);
      if (st === 2 || r < 0) {
        // info: solid until the unknown outcome was recorded, then open-ended to the right edge.
        const xr = r >= 0 ? X(r) : x0;
        if (xr >= GUTTER) paths.info.rect(Math.max(GUTTER, x0), y, Math.max(1, xr - Math.max(GUTTER, x0)), bh);
        paths.open.rect(Math.max(GUTTER, xr), y + bh * 0.3, w - Math.max(GUTTER, xr), Math.max(1, bh * 0.4));
        drawn++;
        continue;
      }
      const x1 = X(r);
      if (x1 < GUTTER) continue;
      const xs = Math.max(GUTTER, x0);
      (st === 0 ? paths.ok : paths.fail).rect(xs, y, Math.max(1, x1 - xs), bh);
      drawn++;
    }
    // With an anomaly chosen, everything else fades so its operations stand out.
    ctx.globalAlpha = view.anomaly >= 0 ? 0.3 : 1;
    ctx.fillStyle = "rgba(239,143,0,0.28)"; ctx.fill(paths.open);
    ctx.fillStyle = COLORS.ok; ctx.fill(paths.ok);
    ctx.fillStyle = COLORS.fail; ctx.fill(paths.fail);
    ctx.fillStyle = COLORS.info; ctx.fill(paths.info);
    ctx.globalAlpha = 1;

    // Lane labels (every lane when they fit, else every k-th).
    ctx.fillStyle = "#fafbfc"; ctx.fillRect(0, layout.ops, GUTTER - 2, rowProc.length * opLane);
    ctx.fillStyle = "#5f6b76";
    const every = Math.max(1, Math.ceil(12 / opLane));
    for (let row = 0; row < rowProc.length; row += every) ctx.fillText("p" + O.processes[rowProc[row]], 4, layout.ops + row * opLane + Math.min(opLane, 12) - 1);

    // The chosen anomaly's operations: outlined; the one that cannot be placed, in thick magenta.
    if (view.anomaly >= 0) {
      const a = D.anomalies[view.anomaly];
      const blocked = new Set(a.blocked || []);
      const lastPlaced = a.last_write != null ? a.last_write : -1;
      // Where each op went in the longest linearizable prefix: written on it when there is room.
      const order = new Map((a.prefix || []).map((r, k) => [r, k + 1]));
      const labels = [];
      for (const i of a.rows) {
        if (laneRow[O.p[i]] < 0) continue;
        const y = laneY(O.p[i]) + (opLane > 6 ? 2 : 0);
        const x0 = Math.max(GUTTER, X(O.c[i]));
        const x1 = O.r[i] >= 0 && O.s[i] !== 2 ? X(O.r[i]) : w;
        if (x1 < GUTTER || x0 > w) continue;
        ctx.fillStyle = COLORS[STATUS[O.s[i]]];
        ctx.fillRect(x0, y, Math.max(1, x1 - x0), bh);
        const isBlocked = blocked.has(i);
        ctx.strokeStyle = isBlocked ? "#d500f9" : i === lastPlaced ? "#1565c0" : "#111";
        ctx.lineWidth = isBlocked || i === lastPlaced ? 3 : 1.5;
        ctx.strokeRect(x0 - 1, y - 1, Math.max(2, x1 - x0) + 2, bh + 2);
        if (order.has(i) && bh >= 8 && x1 - x0 > 22) {
          ctx.fillStyle = "#fff"; ctx.font = "10px ui-monospace, monospace";
          ctx.fillText(String(order.get(i)), x0 + 2, y + bh - 1);
        }
        if (isBlocked) labels.push(["cannot be placed: " + O.d[i], x1, y, "#d500f9"]);
        else if (i === lastPlaced) labels.push(["last write placed: " + O.d[i] + (a.state != null ? " → state " + a.state : ""), x1, y, "#1565c0"]);
      }
      // Labels on a white box, after every outline, so nothing draws over them.
      ctx.font = "bold 12px ui-monospace, monospace";
      for (const [text, x1, y, col] of labels) {
        const tw = ctx.measureText(text).width;
        const x = Math.max(GUTTER, Math.min(x1 + 6, w - tw - 8));
        ctx.fillStyle = "rgba(255,255,255,0.92)"; ctx.fillRect(x - 3, y - 2, tw + 6, 15);
        ctx.strokeStyle = col; ctx.lineWidth = 1; ctx.strokeRect(x - 3, y - 2, tw + 6, 15);
        ctx.fillStyle = col; ctx.fillText(text, x, y + 10);
      }
      ctx.font = "11px ui-monospace, monospace";
    }
    if (view.pinned >= 0 && laneRow[O.p[view.pinned]] >= 0) {
      const i = view.pinned;
      const y = laneY(O.p[i]);
      ctx.strokeStyle = "#00b8d4"; ctx.lineWidth = 2;
      const x1 = O.r[i] >= 0 && O.s[i] !== 2 ? X(O.r[i]) : w;
      ctx.strokeRect(X(O.c[i]) - 2, y - 1, Math.max(2, x1 - X(O.c[i])) + 4, opLane + 1);
    }
    tl.dataset.drawnOps = String(drawn);
    document.getElementById("view-range").textContent = fmtT(view.t0) + " – " + fmtT(view.t1);
  }

  // ---------------------------------------------------------------- latency and throughput
  const FCOL = ["#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#4e342e", "#558b2f", "#283593"];
  const lat = document.getElementById("latency");
  const thr = document.getElementById("throughput");
  let latMax = 1, latMin = 1e9;
  for (let i = 0; i < N; i++) {
    if (O.r[i] < 0) continue;
    const l = O.r[i] - O.c[i];
    if (l > latMax) latMax = l;
    if (l > 0 && l < latMin) latMin = l;
  }
  latMin = Math.max(0.01, Math.min(latMin, 1));

  function drawLatency() {
    const { ctx, w, h } = setup(lat, 260);
    ctx.clearRect(0, 0, w, h);
    const X = scaleX(w);
    drawFaultBands(ctx, w, 0, h);
    drawAnomalyBand(ctx, w, 0, h);
    drawAxis(ctx, w, h, 0);
    const lo = Math.log10(latMin), hi = Math.log10(latMax * 1.2);
    const Y = (l) => h - 4 - (Math.log10(Math.max(l, latMin)) - lo) / (hi - lo) * (h - 24);
    ctx.fillStyle = "#5f6b76"; ctx.font = "11px ui-monospace, monospace";
    for (let e = Math.ceil(lo); e <= hi; e++) { const y = Y(Math.pow(10, e)); ctx.fillText((Math.pow(10, e) >= 1 ? Math.pow(10, e) : Math.pow(10, e).toFixed(2)) + " ms", 2, y + 4); ctx.fillRect(GUTTER - 6, y, 4, 1); }
    // One path per (op type, outcome): ok filled squares, fail crosses, info rings.
    const groups = new Map();
    for (let i = 0; i < N; i++) {
      if (O.r[i] < 0) continue;
      const c = O.c[i];
      if (c < view.t0 || c > view.t1) continue;
      const key = O.f[i] * 3 + O.s[i];
      let p = groups.get(key);
      if (!p) { p = new Path2D(); groups.set(key, p); }
      const x = X(c), y = Y(O.r[i] - c), st = O.s[i];
      if (st === 0) p.rect(x - 1.5, y - 1.5, 3, 3);
      else if (st === 1) { p.moveTo(x - 2, y - 2); p.lineTo(x + 2, y + 2); p.moveTo(x - 2, y + 2); p.lineTo(x + 2, y - 2); }
      else { p.moveTo(x + 2.5, y); p.arc(x, y, 2.5, 0, 6.283); }
    }
    for (const [key, p] of groups) {
      const col = FCOL[Math.floor(key / 3) % FCOL.length], st = key % 3;
      if (st === 0) { ctx.fillStyle = col; ctx.fill(p); } else { ctx.strokeStyle = st === 1 ? COLORS.fail : col; ctx.lineWidth = 1; ctx.stroke(p); }
    }
    ctx.fillStyle = "#1d2329"; ctx.fillText("latency (log)", GUTTER + 4, 28);
  }

  function drawThroughput() {
    const { ctx, w, h } = setup(thr, 170);
    ctx.clearRect(0, 0, w, h);
    const X = scaleX(w);
    drawFaultBands(ctx, w, 0, h);
    drawAnomalyBand(ctx, w, 0, h);
    drawAxis(ctx, w, h, 0);
    // Buckets of at least 100 ms, aligned to the run's clock, so a narrow view shows the rate
    // of the buckets it falls in rather than spikes of single completions.
    const width = Math.max(100, (view.t1 - view.t0) / Math.max(4, Math.floor((w - GUTTER) / 5)));
    const first = Math.floor(view.t0 / width) * width;
    const B = Math.max(1, Math.ceil((view.t1 - first) / width));
    const counts = [new Float64Array(B), new Float64Array(B), new Float64Array(B)];
    for (let i = 0; i < N; i++) {
      const t = O.r[i] >= 0 ? O.r[i] : O.c[i];
      if (t < first || t >= first + B * width) continue;
      counts[O.s[i]][Math.floor((t - first) / width)] += 1;
    }
    let max = 1;
    for (const a of counts) for (const v of a) if (v > max) max = v;
    const perS = 1000 / width;
    const Y = (v) => h - 4 - v / max * (h - 40);
    ctx.fillStyle = "#5f6b76"; ctx.font = "11px ui-monospace, monospace";
    ctx.fillText(Math.round(max * perS) + "/s", 2, Y(max) + 4);
    ctx.fillText("0", 2, h - 4);
    ctx.save(); ctx.beginPath(); ctx.rect(GUTTER, 0, w - GUTTER, h); ctx.clip();
    counts.forEach((a, s) => {
      ctx.strokeStyle = COLORS[STATUS[s]]; ctx.lineWidth = 1.5; ctx.beginPath();
      for (let b = 0; b < B; b++) {
        const x0 = X(first + b * width), x1 = X(first + (b + 1) * width), y = Y(a[b]);
        b ? ctx.lineTo(x0, y) : ctx.moveTo(x0, y);
        ctx.lineTo(x1, y);
      }
      ctx.stroke();
    });
    ctx.restore();
    ctx.fillStyle = "#5f6b76"; ctx.fillText(`${width >= 1000 ? (width / 1000).toFixed(1) + " s" : Math.round(width) + " ms"} buckets`, w - 120, 28);
    ctx.fillStyle = "#1d2329"; ctx.fillText("completions per second", GUTTER + 4, 28);
  }

  const legend = document.getElementById("latency-legend");
  if (legend) {
    legend.innerHTML = "";
    O.fs.forEach((f, k) => { const s = document.createElement("span"); s.innerHTML = '<i class="sw"></i>'; s.firstChild.style.background = FCOL[k % FCOL.length]; s.appendChild(document.createTextNode(f)); legend.appendChild(s); });
    const s = document.createElement("span"); s.textContent = "■ ok   ✕ fail   ○ info (latency until the unknown outcome was recorded)"; legend.appendChild(s);
  }

  // ---------------------------------------------------------------- redraw, zoom, pan
  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; drawAll(); });
  }
  function drawAll() {
    let t = performance.now();
    drawTimeline(); timings.timeline = performance.now() - t; t = performance.now();
    drawLatency(); timings.latency = performance.now() - t; t = performance.now();
    drawThroughput(); timings.throughput = performance.now() - t;
  }

  function zoomTo(t0, t1) {
    const minSpan = 0.05;
    if (t1 - t0 < minSpan) { const m = (t0 + t1) / 2; t0 = m - minSpan / 2; t1 = m + minSpan / 2; }
    view.t0 = t0; view.t1 = t1;
    redraw();
  }
  function zoomBy(factor, at) {
    const t = at == null ? (view.t0 + view.t1) / 2 : at;
    zoomTo(t - (t - view.t0) * factor, t + (view.t1 - t) * factor);
  }
  function timeAt(canvas, clientX) {
    const rect = canvas.getBoundingClientRect();
    const x = clientX - rect.left;
    return view.t0 + (x - GUTTER) / (rect.width - GUTTER) * (view.t1 - view.t0);
  }
  window.sbZoomTo = zoomTo;

  for (const c of [tl, lat, thr]) {
    c.addEventListener("wheel", (ev) => { ev.preventDefault(); zoomBy(ev.deltaY > 0 ? 1.25 : 0.8, timeAt(c, ev.clientX)); }, { passive: false });
    let drag = null;
    c.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, t0: view.t0, t1: view.t1, moved: false }; c.style.cursor = "grabbing"; });
    window.addEventListener("mouseup", () => { if (drag) { c.style.cursor = ""; setTimeout(() => { drag = null; }, 0); } });
    window.addEventListener("mousemove", (ev) => {
      if (!drag) return;
      const dx = ev.clientX - drag.x;
      if (Math.abs(dx) > 2) drag.moved = true;
      const dt = dx / (c.getBoundingClientRect().width - GUTTER) * (drag.t1 - drag.t0);
      view.t0 = drag.t0 - dt; view.t1 = drag.t1 - dt; redraw();
    });
    c.addEventListener("click", (ev) => { if (drag && drag.moved) return; if (c === tl) pin(ev); });
  }
  document.getElementById("zoom-fit").onclick = () => zoomTo(FULL[0], FULL[1]);
  document.getElementById("zoom-in").onclick = () => zoomBy(0.5);
  document.getElementById("zoom-out").onclick = () => zoomBy(2);
  window.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT") return;
    if (ev.key === "+" || ev.key === "=") zoomBy(0.5);
    else if (ev.key === "-") zoomBy(2);
    else if (ev.key === "0") zoomTo(FULL[0], FULL[1]);
  });
  window.addEventListener("resize", redraw);

  // ---------------------------------------------------------------- hover and pin
  const tip = document.getElementById("tip");
  function opAt(ev) {
    const rect = tl.getBoundingClientRect();
    const y = ev.clientY - rect.top;
    const t = timeAt(tl, ev.clientX);
    const tol = 4 / (rect.width - GUTTER) * (view.t1 - view.t0);
    if (y >= layout.ops) {
      const p = rowProc[Math.floor((y - layout.ops) / opLane)];
      const lane = laneOps[p];
      if (!lane) return null;
      // Binary search for the last op called before t (+tolerance), then look back a little.
      let lo = 0, hi = lane.length;
      while (lo < hi) { const m = (lo + hi) >> 1; if (O.c[lane[m]] <= t + tol) lo = m + 1; else hi = m; }
      for (let k = lo - 1; k >= 0 && k >= lo - 50; k--) {
        const i = lane[k];
        if (only && !only[i]) continue;
        const end = O.r[i] < 0 || O.s[i] === 2 ? Infinity : O.r[i];
        if (end + tol >= t) return { op: i };
      }
      return null;
    }
    if (y >= layout.nodes) {
      const n = nodes[Math.floor((y - layout.nodes) / NODE_LANE)];
      const marked = (D.marks || []).filter((m) => m[0] === n && m[1] <= t && t <= m[2]).map((m) => m[3]);
      for (const s of D.leaders[n] || []) if (s[0] <= t && t <= s[1]) return { text: `${n}: ${D.roles[s[2]]}, ${(D.claim_nodes || []).includes(n) ? "token" : "term"} ${s[3]}${marked.length ? " (" + marked.join(", ") + ")" : ""}\n${fmtT(s[0])} – ${fmtT(s[1])}` };
      return n ? { text: n } : null;
    }
    if (y >= layout.faults) {
      const fam = families[Math.floor((y - layout.faults) / FAULT_LANE)];
      for (const f of D.faults) if (f.family === fam && f.start <= t && t <= f.end) return { text: `${f.label} (history #${f.index})\nnodes hit: ${f.nodes.join(", ") || "—"}\n${fmtT(f.start)} – ${fmtT(f.end)}` };
    }
    return null;
  }
  function describeOp(i) {
    const st = STATUS[O.s[i]];
    const key = O.k[i] >= 0 ? ` ${O.keys[O.k[i]]}` : "";
    const node = O.n[i] >= 0 ? ` on ${O.nodes[O.n[i]]}` : "";
    const end = O.r[i] < 0 ? "never completed" : (st === "info" ? `unknown outcome recorded at ${(O.r[i] / 1000).toFixed(4)}s` : `returned ${(O.r[i] / 1000).toFixed(4)}s (${(O.r[i] - O.c[i]).toFixed(2)} ms)`);
    return `#${O.i[i]} p${O.processes[O.p[i]]} ${O.fs[O.f[i]]}${key}${node}: ${O.d[i]} [${st}]\ncalled ${(O.c[i] / 1000).toFixed(4)}s, ${end}`;
  }
  tl.addEventListener("mousemove", (ev) => {
    const hit = opAt(ev);
    if (!hit) { tip.hidden = true; return; }
    tip.textContent = hit.op != null ? describeOp(hit.op) : hit.text;
    tip.hidden = false;
    const wrap = tl.parentElement.getBoundingClientRect();
    tip.style.left = Math.min(ev.clientX - wrap.left + 14, wrap.width - 360) + "px";
    tip.style.top = (ev.clientY - wrap.top + tl.parentElement.scrollTop + 14) + "px";
  });
  tl.addEventListener("mouseleave", () => { tip.hidden = true; });
  function pin(ev) {
    const hit = opAt(ev);
    view.pinned = hit && hit.op != null ? hit.op : -1;
    document.getElementById("pinned").textContent = view.pinned >= 0 ? describeOp(view.pinned).replace("\n", " · ") : "";
    redraw();
  }

  // ---------------------------------------------------------------- anomalies and evidence
  const rowOf = new Map();
  for (let i = 0; i < N; i++) rowOf.set(O.i[i], i);

  const onlyBox = document.getElementById("only-anomaly");
  function applyOnly() {
    only = null;
    if (onlyBox && onlyBox.checked && view.anomaly >= 0) {
      only = new Uint8Array(N);
      for (const i of D.anomalies[view.anomaly].rows) only[i] = 1;
    }
    relayout();
    redraw();
  }
  if (onlyBox) onlyBox.addEventListener("change", applyOnly);

  function showAnomaly(k) {
    const a = D.anomalies[k];
    view.anomaly = k;
    if (onlyBox) { onlyBox.disabled = !a.rows.length; applyOnly(); }
    const f = a.focus || [a.start, a.end];
    if (f && f[0] != null) {
      const pad = Math.max((f[1] - f[0]) * 0.35, 20);
      zoomTo(f[0] - pad, f[1] + pad);
    } else redraw();
    document.querySelectorAll("article.anomaly").forEach((el, j) => el.classList.toggle("current", j === k));
    // Scroll the timeline so the anomaly's first operation lane is visible in it.
    const wrap = document.getElementById("timeline-wrap");
    document.getElementById("timeline-section").scrollIntoView({ block: "start" });
    const lanes = (a.blocked && a.blocked.length ? a.blocked : a.rows).map((i) => O.p[i]);
    if (lanes.length) wrap.scrollTop = Math.max(0, Math.min(...lanes.map(laneY)) - wrap.clientHeight / 3);
  }
  window.sbShowAnomaly = showAnomaly;
  document.querySelectorAll(".anomaly-link, .show-on-axis").forEach((el) => {
    el.addEventListener("click", (ev) => { ev.preventDefault(); showAnomaly(Number(el.dataset.anomaly)); });
  });
  document.querySelectorAll("tr[data-index]").forEach((tr) => {
    tr.addEventListener("click", () => {
      const i = rowOf.get(Number(tr.dataset.index));
      if (i == null) return;
      view.pinned = i;
      const end = O.r[i] >= 0 ? O.r[i] : O.c[i] + 50;
      const pad = Math.max((end - O.c[i]) * 2, 50);
      zoomTo(O.c[i] - pad, end + pad);
      document.getElementById("pinned").textContent = describeOp(i).replace("\n", " · ");
      document.getElementById("timeline-section").scrollIntoView({ block: "start" });
      const wrap = document.getElementById("timeline-wrap");
      wrap.scrollTop = Math.max(0, laneY(O.p[i]) - wrap.clientHeight / 3);
    });
  });

  // Hover a latency dot: the op behind it. A linear scan is ~1 ms at 100k ops, cheaper to
  // keep than an index that every zoom would rebuild.
  const ptip = document.createElement("div");
  ptip.id = "perf-tip"; ptip.hidden = true; document.body.appendChild(ptip);
  lat.addEventListener("mousemove", (ev) => {
    const rect = lat.getBoundingClientRect();
    const w = rect.width, h = rect.height;
    const X = scaleX(w);
    const lo = Math.log10(latMin), hi = Math.log10(latMax * 1.2);
    const Y = (l) => h - 4 - (Math.log10(Math.max(l, latMin)) - lo) / (hi - lo) * (h - 24);
    const mx = ev.clientX - rect.left, my = ev.clientY - rect.top;
    let best = -1, bestD = 36;
    for (let i = 0; i < N; i++) {
      if (O.r[i] < 0 || O.c[i] < view.t0 || O.c[i] > view.t1) continue;
      const dx = X(O.c[i]) - mx, dy = Y(O.r[i] - O.c[i]) - my, d = dx * dx + dy * dy;
      if (d < bestD) { bestD = d; best = i; }
    }
    if (best < 0) { ptip.hidden = true; return; }
    ptip.textContent = describeOp(best);
    ptip.hidden = false;
    ptip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 380) + "px";
    ptip.style.top = (ev.clientY + 14) + "px";
  });
  lat.addEventListener("mouseleave", () => { ptip.hidden = true; });

  // The nav's "spec" link opens the resolved spec at the top.
  document.querySelectorAll('a[href="#spec"]').forEach((el) => el.addEventListener("click", () => { document.getElementById("spec").open = true; }));

  // Evidence tables open scrolled to the operation that cannot be placed.
  document.querySelectorAll(".scroll").forEach((box) => {
    const tr = box.querySelector("tr.blocked");
    if (tr) box.scrollTop = Math.max(0, tr.offsetTop - box.clientHeight / 2);
  });

  timings.setup = performance.now() - T0 - timings.parse;
  drawAll();
  timings.total = performance.now() - T0;
  // For the browser tests and the benchmark: the first full drawing is done.
  window.sbDrawn = performance.now();
  document.body.dataset.drawn = "1";
})();
