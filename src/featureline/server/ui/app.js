// Featureline web UI: plain JS, no dependencies. Every page reads the JSON API under /ui/api.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const app = document.getElementById("app");

// h("tag", {attr: value, onclick: fn}, child, ...): an element; strings become text nodes
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

async function api(path) {
  const r = await fetch("/ui/api/" + path, { headers: { accept: "application/json" } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    return Math.abs(v) >= 1000 || Math.abs(v) < 0.001 ? v.toExponential(3) : v.toFixed(4);
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function table(headers, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => (c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c)))))));
}

function kv(obj) {
  return table(["name", "value"], Object.entries(obj || {}).map(([k, v]) => [k, fmt(v)]));
}

function link(hash, text) { return h("a", { href: "#/" + hash }, text); }

// -- charts ------------------------------------------------------------------------------------
function histogram(hist, width = 240, height = 80) {
  const max = Math.max(1, ...hist.counts);
  const bw = width / hist.counts.length;
  const svg = s("svg", { width, height: height + 14, class: "histogram", role: "img" });
  hist.counts.forEach((c, i) => {
    const bh = (c / max) * height;
    const r = s("rect", { x: i * bw + 0.5, y: height - bh, width: Math.max(1, bw - 1), height: bh, fill: "#54aeff" });
    r.append(s("title", {}, `${fmt(hist.lo + i * hist.width)} – ${fmt(hist.lo + (i + 1) * hist.width)}: ${c}`));
    svg.append(r);
  });
  svg.append(s("text", { x: 0, y: height + 12 }, fmt(hist.lo)));
  svg.append(s("text", { x: width, y: height + 12, "text-anchor": "end" }, fmt(hist.hi)));
  return svg;
}

// stored rows per hour/day/month of event time
function timeBars(series, width = 900, height = 90) {
  const b = series.buckets;
  const max = Math.max(1, ...b.map((x) => x.rows));
  const bw = width / Math.max(1, b.length);
  const svg = s("svg", { width, height: height + 14, id: "rows-by-time", role: "img" });
  b.forEach((x, i) => {
    const bh = (x.rows / max) * height;
    const r = s("rect", { x: i * bw, y: height - bh, width: Math.max(1, bw - 1), height: bh, fill: "#54aeff" });
    r.append(s("title", {}, `${x.start}: ${x.rows} rows`));
    svg.append(r);
  });
  if (b.length) {
    svg.append(s("text", { x: 0, y: height + 12 }, String(b[0].start).slice(0, 16)));
    svg.append(s("text", { x: width, y: height + 12, "text-anchor": "end" }, String(b[b.length - 1].start).slice(0, 16)));
  }
  return svg;
}

function duration(sec) {
  if (sec === null || sec === undefined) return "–";
  if (sec < 120) return `${sec.toFixed(1)} s`;
  if (sec < 7200) return `${(sec / 60).toFixed(1)} min`;
  if (sec < 172800) return `${(sec / 3600).toFixed(1)} h`;
  return `${(sec / 86400).toFixed(1)} days`;
}

// a feature's values over event time, with a vertical mark at time `mark`
function line(title, pts, mark, width = 260, height = 90) {
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs, mark), x1 = Math.max(...xs, mark), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const X = (x) => ((x - x0) / Math.max(1, x1 - x0)) * width;
  const Y = (y) => 14 + (1 - (y - y0) / Math.max(1e-12, y1 - y0)) * (height - 14);
  const svg = s("svg", { width, height: height + 4, class: "line", "data-feature": title });
  svg.append(s("text", { x: 0, y: 10 }, title));
  svg.append(s("polyline", { points: pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" "), fill: "none", stroke: "#0969da", "stroke-width": 1.2 }));
  svg.append(s("line", { x1: X(mark), x2: X(mark), y1: 12, y2: height, stroke: "#cf222e", "stroke-dasharray": "3 2" }));
  return svg;
}

// one bar per label (a metric by run or by version)
function bars(title, labels, values) {
  const width = 40 + labels.length * 60, height = 150, top = 34;
  const nums = values.map((v) => (typeof v === "number" ? v : 0));
  const max = Math.max(...nums.map(Math.abs), 1e-12);
  const svg = s("svg", { width: Math.max(width, 200), height: height + 22, class: "chart", "data-metric": title });
  svg.append(s("text", { x: 0, y: 12 }, title));
  labels.forEach((label, i) => {
    const v = values[i];
    const bh = typeof v === "number" ? (Math.abs(v) / max) * (height - top) : 0;
    const x = 30 + i * 60;
    svg.append(s("rect", { x, y: height - bh, width: 40, height: bh, fill: "#8250df" }));
    svg.append(s("text", { x: x + 20, y: height - bh - 3, "text-anchor": "middle", class: "value" }, v === undefined ? "–" : fmt(v)));
    svg.append(s("text", { x: x + 20, y: height + 14, "text-anchor": "middle" }, String(label).slice(-8)));
  });
  return svg;
}

// -- pages -------------------------------------------------------------------------------------
async function catalogPage(params) {
  const q = params.get("q") || "";
  const input = h("input", { id: "search", name: "q", value: q, placeholder: "name, description, owner, tag", size: 40, autofocus: true });
  const form = h("form", { class: "bar", onsubmit: (e) => { e.preventDefault(); location.hash = "#/?q=" + encodeURIComponent(input.value); } },
    input, h("button", { type: "submit" }, "Search"));
  app.replaceChildren(h("h1", {}, "Catalog"), form);
  const res = await api("search?q=" + encodeURIComponent(q));
  const target = (r) => {
    if (r.kind === "feature_view") return link("view/" + encodeURIComponent(r.view), r.name);
    if (r.kind === "model") return link("model/" + encodeURIComponent(r.name), r.name);
    if (r.kind === "on_demand_feature_view") return link("view/" + encodeURIComponent(r.name), r.name);
    return r.name;
  };
  app.append(h("p", { class: "muted", id: "search-total" }, `${res.total} result${res.total === 1 ? "" : "s"}`),
    table(["object", "kind", "description"], res.results.map((r) => [target(r), h("span", { class: "kind" }, r.kind.replaceAll("_", " ")), r.description || ""]), { id: "search-results" }));
}

async function viewPage(name) {
  const v = await api("views/" + encodeURIComponent(name));
  app.replaceChildren(h("h1", {}, v.name));
  const d = v.definition;
  if (v.on_demand) {
    app.append(h("p", { class: "muted" }, "On-demand view, computed at read time from " + d.sources.join(", ")),
      table(["feature", "type"], d.schema.map((f) => [f.name, f.dtype])));
    return;
  }
  app.append(h("p", {}, d.description || "", " ", h("span", { class: "muted" }, `owner ${d.owner || "–"} · entities ${d.entities.join(", ")} · ttl ${fmt(d.ttl_seconds)} s · ${d.online ? "online" : "offline only"}`)),
    h("p", { class: "muted" }, `${fmt(v.rows)} stored rows in ${v.commits} commits · events ${v.first_event || "–"} → ${v.last_event || "–"} · superseded ${fmt(v.superseded_rows)}`),
    h("p", {}, link("pit?view=" + encodeURIComponent(v.name), "Explore a key over time →")));
  const f = v.freshness || {};
  app.append(h("p", { class: "muted", id: "freshness" }, `staleness ${duration(f.staleness_seconds)}` +
    (f.objective_seconds ? ` (objective ${duration(f.objective_seconds)})` : "") +
    ` · last ingested ${f.last_ingested || "–"}` +
    (f.latency_p50_seconds !== null && f.latency_p50_seconds !== undefined ? ` · event-to-servable p50 ${duration(f.latency_p50_seconds)}, p99 ${duration(f.latency_p99_seconds)}` : "") +
    (f.quarantined ? ` · ${fmt(f.quarantined)} rows quarantined` : "")));
  app.append(h("h2", {}, "Schema (v" + d.version + ")"),
    table(["field", "type", "description", "tags"], d.schema.map((f) => [f.name, f.dtype, f.description || "", fmt(f.tags && Object.keys(f.tags).length ? f.tags : "")])));
  app.append(h("h2", {}, "Statistics"));
  const stats = Object.entries(v.features);
  app.append(table(["feature", "type", "null rate", "distinct", "min", "p25", "median", "p75", "max", "mean", "histogram"],
    stats.map(([f, st]) => [f, st.dtype, fmt(st.null_rate), fmt(st.distinct), fmt(st.min), fmt(st.percentiles && st.percentiles.p25),
      fmt(st.percentiles && st.percentiles.p50), fmt(st.percentiles && st.percentiles.p75), fmt(st.max), fmt(st.mean),
      st.histogram ? histogram(st.histogram) : ""]), { id: "stats" }));
  if (v.rows_by_time && v.rows_by_time.buckets.length) app.append(h("h2", {}, `Stored rows by ${v.rows_by_time.unit} of event time`), timeBars(v.rows_by_time));
  if (v.preview && v.preview.length) {
    const cols = Object.keys(v.preview[0]);
    app.append(h("h2", {}, "Preview (newest rows)"), h("div", { class: "scroll" }, table(cols, v.preview.map((r) => cols.map((c) => (Number.isInteger(r[c]) ? String(r[c]) : fmt(r[c])))), { id: "preview" })));
  }
  app.append(h("h2", {}, "Versions"), table(["version", "fields", "owner"], v.versions.map((x) => ["v" + x.version, x.definition.schema.map((f) => f.name).join(", "), x.definition.owner])));
  if (v.diffs.length) {
    app.append(h("h2", {}, "Changes between versions"), table(["from → to", "added", "removed", "retyped", "settings"],
      v.diffs.map((x) => [`v${x.from} → v${x.to}`, x.added.join(", "), x.removed.join(", "), x.changed.map((c) => `${c.field}: ${c.from} → ${c.to}`).join("; "),
        x.settings.map((c) => `${c.key}: ${fmt(c.from)} → ${fmt(c.to)}`).join("; ")])));
  }
  app.append(h("h2", {}, "Registry history"), table(["registry version", "applied", "message", "change"],
    v.history.map((x) => ["" + x.registry_version, x.applied_at, x.message || "", x.changes.map((c) => c.op + (c.version ? " v" + c.version : "") + (c.breaking ? " (breaking)" : "")).join(", ")])));
}

async function runsPage() {
  const res = await api("runs?limit=1000");
  const picked = new Set();
  const compare = h("button", { type: "button", id: "compare", onclick: () => { location.hash = "#/compare/" + [...picked].join(","); } }, "Compare selected");
  app.replaceChildren(h("h1", {}, "Runs"), h("p", {}, compare, " ", link("compare?latest=1000", "Compare the newest runs (up to 1,000)"), " ",
    h("span", { class: "muted" }, `${res.runs.length} runs, newest first`)));
  app.append(table(["", "run", "pipeline", "status", "started", "duration (s)"], res.runs.map((r) => [
    h("input", { type: "checkbox", "data-run": r.run_id, onchange: (e) => { e.target.checked ? picked.add(r.run_id) : picked.delete(r.run_id); } }),
    link("run/" + r.run_id, r.run_id), r.pipeline, h("span", { class: "status-" + r.status }, r.status), r.created_at, fmt(r.duration_seconds)]), { id: "runs" }));
}

async function runPage(id) {
  const r = await api("runs/" + encodeURIComponent(id));
  app.replaceChildren(h("h1", {}, "Run " + r.run_id),
    h("p", {}, `${r.pipeline} · `, h("span", { class: "status-" + r.status }, r.status), ` · ${r.created_at} · ${fmt(r.duration_seconds)} s`));
  if (r.error) app.append(h("p", { class: "run-error" }, r.error));
  const longest = Math.max(1e-9, ...r.steps.map((x) => x.duration_seconds || 0));
  const w = 300;
  const gantt = (x) => s("svg", { width: w, height: 12 }, s("rect", { x: 0, y: 1, width: Math.max(1, ((x.duration_seconds || 0) / longest) * w), height: 10, fill: x.status === "succeeded" ? "#4ac26b" : "#ff8182" }));
  app.append(h("h2", {}, "Step graph"), stepGraph(r.steps, r.edges));
  app.append(h("h2", {}, "Steps"), table(["step", "status", "attempts", "duration (s)", "", "outputs"], r.steps.map((x) => [x.step,
    h("span", { class: "status-" + x.status }, x.status), fmt(x.attempts), fmt(x.duration_seconds), gantt(x),
    Object.entries(x.outputs).map(([k, o]) => `${k}=${o.id ? o.id.slice(0, 12) : o}`).join(", ")])));
  app.append(h("h2", {}, "Parameters"), kv(r.params), h("h2", {}, "Metrics"), kv(r.metrics));
  const logs = r.steps.filter((x) => x.logs || x.error);
  if (logs.length) app.append(h("h2", {}, "Logs"), ...logs.map((x) => h("details", {}, h("summary", {}, x.step), h("pre", {}, (x.logs || "") + (x.error ? "\n" + x.error : "")))));
}

// steps in columns by depth (longest path from a source), edges through artifacts
function stepGraph(steps, edges) {
  const depth = {};
  const preds = {};
  for (const e of edges) (preds[e.target] = preds[e.target] || []).push(e.source);
  const d = (name, seen = new Set()) => {
    if (depth[name] !== undefined) return depth[name];
    if (seen.has(name)) return 0;
    seen.add(name);
    depth[name] = Math.max(-1, ...(preds[name] || []).map((p) => d(p, seen))) + 1;
    return depth[name];
  };
  steps.forEach((x) => d(x.step));
  const colW = 190, rowH = 50, boxW = 160, boxH = 32;
  const rows = {};
  const pos = {};
  for (const x of steps) {
    const c = depth[x.step];
    rows[c] = (rows[c] || 0) + 1;
    pos[x.step] = { x: c * colW, y: (rows[c] - 1) * rowH, status: x.status };
  }
  const width = (Math.max(0, ...Object.values(depth)) + 1) * colW;
  const height = Math.max(1, ...Object.values(rows)) * rowH;
  const svg = s("svg", { width, height, id: "step-graph", role: "img" });
  for (const e of edges) {
    const a = pos[e.source], b = pos[e.target];
    const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x, y2 = b.y + boxH / 2, mx = (x1 + x2) / 2;
    const p = s("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, fill: "none", stroke: "#8c959f", "stroke-width": 1.5 });
    p.append(s("title", {}, e.input));
    svg.append(p);
  }
  for (const [name, p] of Object.entries(pos)) {
    const ok = p.status === "succeeded" || p.status === "cached";
    svg.append(s("rect", { x: p.x, y: p.y, width: boxW, height: boxH, rx: 6, fill: ok ? "#dafbe1" : "#ffebe9", stroke: ok ? "#4ac26b" : "#ff8182" }));
    svg.append(s("text", { x: p.x + 8, y: p.y + 20 }, name.length > 22 ? name.slice(0, 21) + "…" : name));
  }
  return svg;
}

// a metric by run for many runs: one dot per run, oldest to newest
function dots(title, runs, metric, width = 520, height = 150) {
  const vals = runs.map((r) => r.metrics[metric]).filter((v) => typeof v === "number");
  const lo = Math.min(...vals), hi = Math.max(...vals);
  const svg = s("svg", { width, height: height + 16, class: "dots", "data-metric": title });
  svg.append(s("text", { x: 0, y: 12 }, `${title}  (${fmt(lo)} – ${fmt(hi)})`));
  const n = Math.max(1, runs.length - 1);
  runs.forEach((r, i) => {
    const v = r.metrics[metric];
    if (typeof v !== "number") return;
    const c = s("circle", { cx: 4 + (i / n) * (width - 8), cy: 20 + (1 - (v - lo) / Math.max(1e-12, hi - lo)) * (height - 24), r: 2.5, fill: "#8250df" });
    c.append(s("title", {}, `${r.run_id}: ${fmt(v)}`));
    svg.append(c);
  });
  svg.append(s("text", { x: 0, y: height + 14 }, "oldest"));
  svg.append(s("text", { x: width, y: height + 14, "text-anchor": "end" }, "newest"));
  return svg;
}

async function comparePage(ids, query) {
  const res = ids.length ? await api("runs?ids=" + encodeURIComponent(ids.join(",")))
    : await api("runs?details=true&limit=" + encodeURIComponent(query.get("latest") || "1000") + (query.get("pipeline") ? "&pipeline=" + encodeURIComponent(query.get("pipeline")) : ""));
  const runs = ids.length ? res.runs : res.runs.reverse();  // oldest first
  app.replaceChildren(h("h1", {}, `Compare ${runs.length} runs`));
  const metrics = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const params = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  if (runs.length > 12) {  // many runs: dots per metric, one table row per run
    const charts = h("div", { class: "grid wide", id: "compare-charts" });
    for (const m of metrics) charts.append(h("div", { class: "card" }, dots(m, runs, m)));
    app.append(h("h2", {}, "Metric by run"), charts);
    const varying = params.filter((p) => new Set(runs.map((r) => JSON.stringify(r.params[p]))).size > 1);
    app.append(h("h2", {}, "Runs (params that vary, metrics)"), h("div", { class: "scroll" }, table(["run", "started", ...varying, ...metrics],
      runs.map((r) => [link("run/" + r.run_id, r.run_id), r.created_at, ...varying.map((p) => fmt(r.params[p])), ...metrics.map((m) => fmt(r.metrics[m]))]), { id: "compare-table" })));
    return;
  }
  const charts = h("div", { class: "grid", id: "compare-charts" });
  for (const m of metrics) charts.append(h("div", { class: "card" }, bars(m, runs.map((r) => r.run_id), runs.map((r) => r.metrics[m]))));
  app.append(h("h2", {}, "Metric by run"), charts);
  app.append(h("h2", {}, "Side by side"), table(["", ...runs.map((r) => link("run/" + r.run_id, r.run_id))], [
    ...params.map((p) => ["param " + p, ...runs.map((r) => fmt(r.params[p]))]),
    ...metrics.map((m) => ["metric " + m, ...runs.map((r) => h("td", { class: "num", "data-metric": m, "data-run": r.run_id }, fmt(r.metrics[m])))]),
  ], { id: "compare-table" }));
}

async function modelsPage() {
  const res = await api("models");
  app.replaceChildren(h("h1", {}, "Models"), table(["model", "versions", "latest", "aliases", ""], res.models.map((m) => [
    link("model/" + encodeURIComponent(m.name), m.name), fmt(m.versions), "v" + m.latest,
    Object.entries(m.aliases).map(([a, v]) => `${a} → v${v}`).join(", "), link("lineage/" + encodeURIComponent(m.name), "lineage")]), { id: "models" }));
}

async function modelPage(name) {
  const m = await api("models/" + encodeURIComponent(name));
  app.replaceChildren(h("h1", {}, "Model " + m.name), h("p", {}, link("lineage/" + encodeURIComponent(m.name), "Lineage graph →")));
  const metrics = [...new Set(m.versions.flatMap((v) => Object.keys(v.metrics)))].sort();
  const asc = [...m.versions].reverse();
  const charts = h("div", { class: "grid" });
  for (const k of metrics) charts.append(h("div", { class: "card" }, bars(k, asc.map((v) => "v" + v.version), asc.map((v) => v.metrics[k]))));
  app.append(h("h2", {}, "Metrics across versions"), charts);
  app.append(h("h2", {}, "Versions"), table(["version", "aliases", "registered", "run", ...metrics], m.versions.map((v) => [
    "v" + v.version, v.aliases.join(", "), v.created_at, v.run_id ? link("run/" + v.run_id, v.run_id) : "", ...metrics.map((k) => fmt(v.metrics[k]))])));
  for (const v of m.versions) app.append(h("details", {}, h("summary", {}, `Model card v${v.version}`), h("pre", {}, JSON.stringify(v.card, null, 2))));
}

const ORDER = ["feature_view", "training_set", "run", "model", "alias"];
async function lineagePage(name) {
  const g = await api("lineage/" + encodeURIComponent(name));
  app.replaceChildren(h("h1", {}, "Lineage of " + g.model), h("p", { class: "muted" }, "feature view version → training set → run → model version → alias"));
  const cols = ORDER.map((k) => g.nodes.filter((n) => n.kind === k));
  const colW = 210, rowH = 56, boxW = 180, boxH = 34;
  const rows = Math.max(1, ...cols.map((c) => c.length));
  const svg = s("svg", { width: ORDER.length * colW, height: rows * rowH + 30, id: "lineage", role: "img" });
  const pos = {};
  cols.forEach((c, i) => {
    svg.append(s("text", { x: i * colW, y: 12, class: "muted" }, ORDER[i].replace("_", " ")));
    c.forEach((n, j) => { pos[n.id] = { x: i * colW, y: 24 + j * rowH }; });
  });
  for (const e of g.edges) {
    const a = pos[e.source], b = pos[e.target];
    if (!a || !b) continue;
    const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x, y2 = b.y + boxH / 2, mx = (x1 + x2) / 2;
    const p = s("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, fill: "none", stroke: "#8c959f", "stroke-width": 1.5 });
    p.append(s("title", {}, e.relation));
    svg.append(p);
  }
  for (const n of g.nodes) {
    const p = pos[n.id];
    if (!p) continue;
    const grp = s("g", { "data-node": n.id });
    grp.append(s("rect", { x: p.x, y: p.y, width: boxW, height: boxH, rx: 6, fill: "#ddf4ff", stroke: "#54aeff" }));
    grp.append(s("text", { x: p.x + 8, y: p.y + 21 }, n.label.length > 26 ? n.label.slice(0, 25) + "…" : n.label));
    grp.append(s("title", {}, n.id));
    svg.append(grp);
  }
  app.append(svg);
}

async function pitPage(params) {
  const field = (name, label, value, placeholder) => h("label", {}, label, h("input", { id: "pit-" + name, name, value: value || "", placeholder }));
  const form = h("form", { class: "bar", id: "pit-form", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const k of ["view", "key", "at", "as_of"]) { const v = form.elements[k].value.trim(); if (v) q.set(k, v); }
    location.hash = "#/pit?" + q.toString();
  } }, field("view", "view", params.get("view"), "driver_stats"), field("key", "entity key", params.get("key"), "1001"),
  field("at", "at (event time)", params.get("at"), "2025-01-01T12:00:00Z"), field("as_of", "as_of (known at)", params.get("as_of"), "now"),
  h("button", { type: "submit", id: "pit-go" }, "Show"));
  app.replaceChildren(h("h1", {}, "Point-in-time explorer"), form);
  if (!params.get("view") || !params.get("key")) {
    app.append(h("p", { class: "muted" }, "Pick a view and an entity key: its stored values over time, and what get_training_set returns at a time and as_of."));
    return;
  }
  const q = new URLSearchParams(params);
  const r = await api("pit?" + q.toString());
  app.append(h("h2", {}, `get_training_set at ${r.at}` + (r.as_of ? ` as of ${r.as_of}` : "")),
    table(r.features, [r.features.map((f) => h("td", { "data-feature": f }, fmt(r.training_set[f])))], { id: "pit-training" }));
  const charts = h("div", { class: "grid", id: "pit-charts" });
  for (const f of r.features) {
    const pts = r.history.filter((x) => typeof x.values[f] === "number").map((x) => [Date.parse(x.event_timestamp), x.values[f]]);
    if (pts.length > 1) charts.append(h("div", { class: "card" }, line(f, pts, Date.parse(r.at))));
  }
  if (charts.childElementCount) app.append(h("h2", {}, "Values over event time (the line: at)"), charts);
  app.append(h("h2", {}, `Stored values of ${JSON.stringify(r.key)} in ${r.view}`),
    h("p", { class: "muted" }, "Rows ingested after as_of are struck through: a training set as of then could not see them."));
  const t = table(["event time", "created", "ingested", ...r.features], []);
  const body = t.querySelector("tbody");
  for (const x of r.history) {
    body.append(h("tr", { class: x.known_at_as_of ? "" : "unknown" }, h("td", {}, x.event_timestamp), h("td", {}, x.created || ""), h("td", {}, x.ingested_at || ""),
      r.features.map((f) => h("td", { class: "num" }, fmt(x.values[f])))));
  }
  t.id = "pit-history";
  app.append(h("div", { class: "scroll" }, t));
}

// -- router ------------------------------------------------------------------------------------
async function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const params = new URLSearchParams(query || "");
  const [page, arg] = [path.split("/")[0], decodeURIComponent(path.split("/").slice(1).join("/"))];
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#/" + page));
  app.setAttribute("data-page", page || "catalog");
  app.removeAttribute("data-ready");
  try {
    if (!page) await catalogPage(params);
    else if (page === "view") await viewPage(arg);
    else if (page === "runs") await runsPage();
    else if (page === "run") await runPage(arg);
    else if (page === "compare") await comparePage(arg.split(",").filter(Boolean), params);
    else if (page === "models") await modelsPage();
    else if (page === "model") await modelPage(arg);
    else if (page === "lineage") await lineagePage(arg);
    else if (page === "pit") await pitPage(params);
    else app.replaceChildren(h("h1", {}, "Not found"), h("p", {}, link("", "Back to the catalog")));
  } catch (err) {
    app.append(h("p", { class: "error", role: "alert" }, err.message));
  }
  app.setAttribute("data-ready", "1");
}

window.addEventListener("hashchange", route);
route();
