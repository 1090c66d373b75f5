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

const INTEGER = new Intl.NumberFormat("en-US");  // made once: toLocaleString builds one per call

// text for HTML markup (the many-row tables and charts are built as markup: much faster than nodes)
function esc(v) {
  return String(v).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return INTEGER.format(v);
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
    return objLink(r.kind, r.name);
  };
  app.append(h("p", { class: "muted", id: "search-total" }, `${res.total} result${res.total === 1 ? "" : "s"}`),
    table(["object", "kind", "description"], res.results.map((r) => [target(r), h("span", { class: "kind" }, r.kind.replaceAll("_", " ")), r.description || ""]), { id: "search-results" }));
}

async function viewPage(name) {
  const v = await api("views/" + encodeURIComponent(name));
  app.replaceChildren(h("h1", {}, v.name));
  const d = v.definition;
  if (v.on_demand) {
    renderOdfv(v);
    return;
  }
  app.append(h("p", {}, d.description || "", " ", h("span", { class: "muted" }, `owner ${d.owner || "–"} · entities ${d.entities.join(", ")} · ttl ${fmt(d.ttl_seconds)} s · ${d.online ? "online" : "offline only"}`)),
    h("p", { class: "muted" }, `${fmt(v.rows)} stored rows in ${v.commits} commits · events ${v.first_event || "–"} → ${v.last_event || "–"} · superseded ${fmt(v.superseded_rows)}`),
    h("p", {}, link("pit?view=" + encodeURIComponent(v.name), "Explore a key over time →"), " · ",
      link("view-lineage/" + encodeURIComponent(v.name), "Lineage: training sets, runs, models →")));
  if (v.related) {
    app.append(h("p", { id: "related" }, "Entities: ", ...joined(v.related.entities.map((e) => objLink("entity", e.name, `${e.name} (${e.join_keys.join(", ")})`))),
      v.related.used_by.length ? " · used by: " : "", ...joined(v.related.used_by.map((u) => objLink(u.kind, u.name, u.name + (u.features.length ? ` (${u.features.join(", ")})` : ""))))));
  }
  const f = v.freshness || {};
  app.append(h("p", { class: "muted", id: "freshness" }, `staleness ${duration(f.staleness_seconds)}` +
    (f.objective_seconds ? ` (objective ${duration(f.objective_seconds)})` : "") +
    ` · last ingested ${f.last_ingested || "–"}` +
    (f.latency_p50_seconds !== null && f.latency_p50_seconds !== undefined ? ` · event-to-servable p50 ${duration(f.latency_p50_seconds)}, p99 ${duration(f.latency_p99_seconds)}` : "") +
    (f.quarantined ? ` · ${fmt(f.quarantined)} rows quarantined` : "")));
  app.append(h("h2", {}, "Schema (v" + d.version + ")"),
    table(["field", "type", "description", "tags"], d.schema.map((f) => [f.name, f.dtype, f.description || "", fmt(f.tags && Object.keys(f.tags).length ? f.tags : "")])));
  if (v.governance) app.append(...governanceSection(v.governance, v.name));
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
  app.append(h("h2", {}, "Versions"), table(["version", "fields", "owner", ""], v.versions.map((x) => ["v" + x.version, x.definition.schema.map((f) => f.name).join(", "), x.definition.owner,
    link(`view-lineage/${encodeURIComponent(v.name)}?version=${x.version}`, "lineage")]), { id: "view-versions" }));
  if (v.diffs.length) {
    app.append(h("h2", {}, "Changes between versions"), table(["from → to", "added", "removed", "retyped", "settings"],
      v.diffs.map((x) => [`v${x.from} → v${x.to}`, x.added.join(", "), x.removed.join(", "), x.changed.map((c) => `${c.field}: ${c.from} → ${c.to}`).join("; "),
        x.settings.map((c) => `${c.key}: ${fmt(c.from)} → ${fmt(c.to)}`).join("; ")])));
  }
  app.append(h("h2", {}, "Registry history"), historyTable(v.history));
  app.append(...codeSection(v.code));
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
  const n = Math.max(1, runs.length - 1);
  let marks = `<text x="0" y="12">${esc(`${title}  (${fmt(lo)} – ${fmt(hi)})`)}</text>`;
  runs.forEach((r, i) => {
    const v = r.metrics[metric];
    if (typeof v !== "number") return;
    const cx = (4 + (i / n) * (width - 8)).toFixed(1), cy = (20 + (1 - (v - lo) / Math.max(1e-12, hi - lo)) * (height - 24)).toFixed(1);
    marks += `<circle cx="${cx}" cy="${cy}" r="2.5" fill="#8250df"><title>${esc(r.run_id)}: ${esc(fmt(v))}</title></circle>`;
  });
  marks += `<text x="0" y="${height + 14}">oldest</text><text x="${width}" y="${height + 14}" text-anchor="end">newest</text>`;
  svg.innerHTML = marks;
  return svg;
}

// a table of many rows built as markup; cells are text, or {html} for markup made with esc().
// `fill(rows)` replaces its rows (at most `cap`: the browser lays out a 1,000-row table slowly)
function bigTable(headers, rows, id, cap = 200) {
  const t = h("table", { id });
  const cell = (c) => `<td>${c !== null && typeof c === "object" ? c.html : esc(c)}</td>`;
  t.innerHTML = `<thead><tr>${headers.map((x) => `<th>${esc(x)}</th>`).join("")}</tr></thead><tbody></tbody>`;
  const note = h("p", { class: "muted", id: id + "-note" });
  t.fill = (list) => {
    t.tBodies[0].innerHTML = list.slice(0, cap).map((r) => `<tr data-run="${esc(r.run)}">${r.cells.map(cell).join("")}</tr>`).join("");
    note.textContent = list.length > cap ? `The first ${cap} of ${list.length} runs: narrow them down on the chart above.` : `${list.length} run${list.length === 1 ? "" : "s"}`;
  };
  t.note = note;
  t.fill(rows);
  return t;
}

async function comparePage(ids, query) {
  const res = ids.length ? await api("runs?ids=" + encodeURIComponent(ids.join(",")))
    : await api("runs?details=true&limit=" + encodeURIComponent(query.get("latest") || "1000") + (query.get("pipeline") ? "&pipeline=" + encodeURIComponent(query.get("pipeline")) : ""));
  const runs = ids.length ? res.runs : res.runs.reverse();  // oldest first
  app.replaceChildren(h("h1", {}, `Compare ${runs.length} runs`));
  const metrics = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const params = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const varying = params.filter((p) => new Set(runs.map((r) => JSON.stringify(r.params[p]))).size > 1);
  const parallel = runs.length >= 2 && varying.length + metrics.length >= 2
    ? [h("h2", {}, "Parallel coordinates (params that vary, metrics)"), parallelCoordinates(runs, varying, metrics)] : [];
  if (runs.length > 12) {  // many runs: dots per metric, one table row per run
    const charts = h("div", { class: "grid wide", id: "compare-charts" });
    for (const m of metrics) charts.append(h("div", { class: "card" }, dots(m, runs, m)));
    app.append(...parallel, h("h2", {}, "Metric by run"), charts);
    const rowOf = (r) => ({ run: r.run_id, cells: [{ html: `<a href="#/run/${esc(encodeURIComponent(r.run_id))}">${esc(r.run_id)}</a>` },
      r.created_at, ...varying.map((p) => fmt(r.params[p])), ...metrics.map((m) => fmt(r.metrics[m]))] });
    const all = runs.map(rowOf);
    const t = bigTable(["run", "started", ...varying, ...metrics], all, "compare-table");
    if (parallel.length) parallel[1].onselect = (kept) => t.fill(kept.map((i) => all[i]));
    app.append(h("h2", {}, "Runs (params that vary, metrics)"), t.note, h("div", { class: "scroll" }, t));
    return;
  }
  app.append(...parallel);
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
  g.start = g.nodes.filter((n) => n.kind === "model").map((n) => n.id);
  app.replaceChildren(h("h1", {}, "Lineage of " + g.model), h("p", { class: "muted" }, "Upstream of the model: feature view version → training set → run → model version → alias. Click a view version to walk down to every model trained on it."),
    h("p", {}, link("model/" + encodeURIComponent(g.model), "← model " + g.model)));
  app.append(lineageGraph(g));
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

// -- catalog object pages (entity, feature service, on-demand view) ---------------------------
const OBJ_PAGE = { feature_view: "view", entity: "entity", feature_service: "service", on_demand_feature_view: "odfv" };

function objLink(kind, name, text) {
  const page = OBJ_PAGE[kind];
  return page ? link(page + "/" + encodeURIComponent(name), text || name) : h("span", {}, text || name);
}

// items separated by ", " (for inline lists of links)
function joined(items, sep = ", ") {
  return items.flatMap((x, i) => (i ? [sep, x] : [x]));
}

function historyTable(history) {
  return table(["registry version", "applied", "message", "change"], history.map((x) => ["" + x.registry_version, x.applied_at, x.message || "",
    x.changes.map((c) => c.op + (c.version ? " v" + c.version : "") + (c.breaking ? " (breaking)" : "") + (c.details && c.details.length ? ": " + c.details.join("; ") : "")).join(", ")]), { id: "history" });
}

// "the code that defines it": the statement of the repo's definition files, with line numbers
function codeSection(code) {
  const out = [h("h2", {}, "Code that defines it")];
  if (!code) {
    out.push(h("p", { class: "muted", id: "code-missing" }, "Not found in the repo's definition files (defined elsewhere, or removed since the last apply)."));
    return out;
  }
  const notes = [`${code.path}, line${code.line === code.end_line ? "" : "s"} ${code.line}${code.line === code.end_line ? "" : "–" + code.end_line}`];
  if (code.changed_since_apply) notes.push("the file changed after the last apply: the registry may hold another definition");
  if (code.matches_registry === false) notes.push("this function differs from the one applied (run featureline apply)");
  const pre = h("pre", { class: "code", id: "code", "data-path": code.path, "data-line": code.line });
  code.text.replace(/\n$/, "").split("\n").forEach((l, i) => pre.append(h("span", { class: "ln" }, String(code.line + i)), l + "\n"));
  out.push(h("p", { class: "muted" }, notes.join(" · ")), pre);
  return out;
}

// the versions the registry kept of a plain object (one each time its definition changed)
function versionsSection(o) {
  const out = [h("h2", {}, "Versions"), table(["version", "registry version", "applied", "definition"], o.versions.map((x) => ["v" + x.version, "" + x.registry_version, x.applied_at,
    h("details", {}, h("summary", {}, "definition"), h("pre", {}, JSON.stringify(x.definition, null, 2)))]), { id: "versions" })];
  if (o.diffs.length) {
    out.push(h("h2", {}, "Changes between versions"), table(["from → to", "changes"], o.diffs.map((x) => [`v${x.from} → v${x.to}`,
      x.changes.map((c) => (c.added ? `${c.key}: +[${c.added.join(", ")}] −[${c.removed.join(", ")}]` : `${c.key}: ${fmt(c.from) || "(none)"} → ${fmt(c.to) || "(none)"}`)).join("; ")]), { id: "diffs" }));
  }
  out.push(h("h2", {}, "Registry history"), historyTable(o.history));
  return out;
}

function governanceSection(g, view) {
  const q = g.quarantine;
  const out = [h("h2", {}, "Constraints and quarantine")];
  const rules = [...g.field_constraints.map((c) => ({ ...c, on: c.field })), ...g.view_checks.map((c) => ({ ...c, on: "(view)" }))];
  if (!rules.length) {
    out.push(h("p", { class: "muted", id: "governance" }, "No constraints: every row lands (no ingestion gate)."));
    return out;
  }
  const mode = { strict: "strict: a write with a bad row is refused whole", quarantine: "quarantine: good rows land, bad rows are kept with their reasons", warn: "warn: every row lands, violations are reported" }[g.gate] || g.gate;
  out.push(h("p", { id: "governance" }, h("span", { class: "kind", id: "gate" }, "gate " + g.gate), " ", mode + (g.declared_gate ? "" : " (the default)"), " · ",
    h("span", { id: "quarantined", class: q.rows ? "bad" : "" }, `${fmt(q.rows)} row${q.rows === 1 ? "" : "s"} in quarantine`),
    q.rows ? h("span", { class: "muted" }, ` in ${q.batches} batch${q.batches === 1 ? "" : "es"}, quarantined ${String(q.oldest).slice(0, 19)} → ${String(q.newest).slice(0, 19)}`) : ""));
  out.push(table(["on", "constraint", "rule", "rows quarantined"], rules.map((c) => [c.on, c.constraint, c.rule,
    h("td", { class: "num", "data-constraint": c.constraint }, fmt(q.by_constraint[c.constraint] || 0))]), { id: "constraints" }));
  if (q.newest_rows && q.newest_rows.length) {
    const cols = Object.keys(q.newest_rows[0]).filter((c) => !c.startsWith("__"));
    out.push(h("h3", {}, `Newest quarantined rows (${q.newest_rows.length} of ${fmt(q.rows)})`),
      h("p", { class: "muted" }, "Fix them: ", h("code", {}, `featureline quarantine show ${view}`), ", then ", h("code", {}, `featureline quarantine replay ${view} --fixed FILE`), " lands those that pass."),
      h("div", { class: "scroll" }, table(["violates", ...cols, "quarantined"], q.newest_rows.map((r) => [h("td", { class: "bad" }, r.__violations.join(", ")),
        ...cols.map((c) => (Number.isInteger(r[c]) ? String(r[c]) : fmt(r[c]))), String(r.__quarantined_at).slice(0, 19)]), { id: "quarantine-rows" })));
  } else if (q.rows && q.newest_rows === null) {
    out.push(h("p", { class: "muted" }, "The quarantined rows need the read_offline grant to be shown."));
  }
  return out;
}

async function entityPage(name) {
  const o = await api("views/" + encodeURIComponent(name) + "?kind=entity");
  const d = o.definition, r = o.related;
  app.replaceChildren(h("h1", {}, o.name), h("p", {}, h("span", { class: "kind" }, "entity"), " ", d.description || "",
    h("span", { class: "muted" }, ` · join keys ${d.join_keys.join(", ")} · owner ${d.owner || "–"}` + (Object.keys(d.tags).length ? " · tags " + fmt(d.tags) : ""))));
  app.append(h("h2", {}, "Feature views keyed by it"), table(["view", "description", "features"], r.feature_views.map((v) => [objLink("feature_view", v.name, `${v.name} (v${v.version})`), v.description, v.features.join(", ")]), { id: "related-views" }));
  app.append(h("p", { id: "related" }, "Feature services: ", ...(r.feature_services.length ? joined(r.feature_services.map((n) => objLink("feature_service", n))) : ["none"]),
    " · on-demand views: ", ...(r.odfvs.length ? joined(r.odfvs.map((n) => objLink("on_demand_feature_view", n))) : ["none"])));
  app.append(...versionsSection(o), ...codeSection(o.code));
}

async function servicePage(name) {
  const o = await api("views/" + encodeURIComponent(name) + "?kind=feature_service");
  const d = o.definition, r = o.related;
  app.replaceChildren(h("h1", {}, o.name), h("p", {}, h("span", { class: "kind" }, "feature service"), " ", d.description || "",
    h("span", { class: "muted" }, ` · ${d.features.length} features · owner ${d.owner || "–"}` + (Object.keys(d.tags).length ? " · tags " + fmt(d.tags) : ""))));
  app.append(h("h2", {}, "Features it reads"), table(["view", "kind", "pinned version", "features"], r.reads.map((x) => [objLink(x.kind, x.name),
    h("span", { class: "kind" }, x.kind.replaceAll("_", " ")), x.version ? "v" + x.version : "latest", x.features.join(", ")]), { id: "related-views" }));
  app.append(h("p", { id: "related" }, "Entities: ", ...(r.entities.length ? joined(r.entities.map((n) => objLink("entity", n))) : ["none"])));
  app.append(...versionsSection(o), ...codeSection(o.code));
}

async function odfvPage(name) {
  renderOdfv(await api("views/" + encodeURIComponent(name) + "?kind=on_demand_feature_view"));
}

function renderOdfv(o) {
  const d = o.definition, r = o.related;
  app.replaceChildren(h("h1", {}, o.name), h("p", {}, h("span", { class: "kind" }, "on-demand view"), " ", d.description || "",
    h("span", { class: "muted" }, ` · computed at read time (mode ${d.mode}) · owner ${d.owner || "–"} · code ${d.code_hash}`)));
  app.append(h("p", { id: "related" }, "Reads: ", ...joined(r.source_views.map((v) => objLink("feature_view", v.name, v.version ? `${v.name} (v${v.version})` : v.name))),
    d.request_fields.length ? ` · request fields: ${d.request_fields.map((f) => `${f.name} ${f.dtype}`).join(", ")}` : "",
    " · feature services: ", ...(r.feature_services.length ? joined(r.feature_services.map((n) => objLink("feature_service", n))) : ["none"])));
  app.append(h("h2", {}, "Outputs"), table(["feature", "type", "description"], d.schema.map((f) => [f.name, f.dtype, f.description || ""]), { id: "schema" }));
  if (o.versions) app.append(...versionsSection(o));
  app.append(...codeSection(o.code));
}

// -- lineage graphs ----------------------------------------------------------------------------
// nodes in columns by kind; a click follows a node: a view version to its lineage (down), a model
// or alias to the model's (up), a run to its page
function lineageGraph(g) {
  const cols = ORDER.map((k) => g.nodes.filter((n) => n.kind === k));
  const colW = 210, rowH = 56, boxW = 180, boxH = 34;
  const rows = Math.max(1, ...cols.map((c) => c.length));
  const svg = s("svg", { width: ORDER.length * colW, height: rows * rowH + 30, id: "lineage", role: "img" });
  const pos = {}, row = {};
  const sources = {};
  for (const e of g.edges) (sources[e.target] = sources[e.target] || []).push(e.source);
  cols.forEach((c, i) => {
    if (i) {  // each node near the mean row of what feeds it: fewer crossing edges
      const key = (n) => { const r = (sources[n.id] || []).map((x) => row[x]).filter((x) => x !== undefined); return r.length ? r.reduce((a, b) => a + b, 0) / r.length : 1e9; };
      c.sort((a, b) => key(a) - key(b) || (a.label < b.label ? -1 : 1));
    }
    svg.append(s("text", { x: i * colW, y: 12, class: "muted" }, ORDER[i].replace("_", " ")));
    c.forEach((n, j) => { row[n.id] = j; pos[n.id] = { x: i * colW, y: 24 + j * rowH }; });
  });
  for (const e of g.edges) {
    const a = pos[e.source], b = pos[e.target];
    if (!a || !b) continue;
    const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x, y2 = b.y + boxH / 2, mx = (x1 + x2) / 2;
    const p = s("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, fill: "none", stroke: "#8c959f", "stroke-width": 1.5 });
    p.append(s("title", {}, e.relation));
    svg.append(p);
  }
  const target = (n) => {
    const [id] = [n.id.slice(n.kind.length + 1)];
    if (n.kind === "feature_view") { const [v, ver] = id.split("@v"); return "#/view-lineage/" + encodeURIComponent(v) + (ver ? "?version=" + ver : ""); }
    if (n.kind === "model") return "#/lineage/" + encodeURIComponent(id.slice(0, id.lastIndexOf(":")));
    if (n.kind === "alias") return "#/lineage/" + encodeURIComponent(id.slice(0, id.lastIndexOf("@")));
    if (n.kind === "run") return "#/run/" + encodeURIComponent(id);
    return null;
  };
  for (const n of g.nodes) {
    const p = pos[n.id];
    if (!p) continue;
    const grp = s("g", { "data-node": n.id, class: "node" + (g.start && g.start.includes(n.id) ? " start" : "") });
    grp.append(s("rect", { x: p.x, y: p.y, width: boxW, height: boxH, rx: 6 }));
    grp.append(s("text", { x: p.x + 8, y: p.y + 21 }, n.label.length > 26 ? n.label.slice(0, 25) + "…" : n.label));
    grp.append(s("title", {}, n.id));
    const href = target(n);
    if (href) { const a = s("a", { href }); a.append(grp); svg.append(a); } else svg.append(grp);
  }
  return svg;
}

async function viewLineagePage(name, params) {
  const version = params.get("version");
  const g = await api("views/" + encodeURIComponent(name) + "?part=lineage" + (version ? "&version=" + encodeURIComponent(version) : ""));
  g.start = g.versions.map((v) => `feature_view:${g.view}@v${v}`);
  app.replaceChildren(h("h1", {}, "Lineage of " + g.view + (version ? " v" + version : "")),
    h("p", { class: "muted" }, "Downstream of the view: feature view version → training set → run → model version → alias. Click a model to walk back up to every view it was trained on."),
    h("p", {}, objLink("feature_view", g.view, "← " + g.view)));
  if (g.nodes.length <= g.versions.length) app.append(h("p", { class: "muted", id: "lineage-empty" }, "No training set has read this view yet."));
  app.append(lineageGraph(g));
}

// -- parallel coordinates: one line per run across params and metrics ---------------------------
// plain SVG, one <path> per run; drag along an axis to keep the runs in a range (several axes:
// all ranges), double-click an axis to clear its range
function parallelCoordinates(runs, params, metrics) {
  const t0 = performance.now();
  const axes = [...params.map((p) => ({ name: p, kind: "param", get: (r) => r.params[p] })), ...metrics.map((m) => ({ name: m, kind: "metric", get: (r) => r.metrics[m] }))].slice(0, 16);
  const W = axes.length <= 2 ? 560 : 1110, H = 320, top = 46, bottom = 22, left = 50, right = 70;
  const step = (W - left - right) / Math.max(1, axes.length - 1);
  const span = H - top - bottom;
  for (const a of axes) {
    const vals = runs.map(a.get).filter((v) => v !== undefined && v !== null);
    a.numeric = vals.every((v) => typeof v === "number");
    if (a.numeric) { a.lo = Math.min(...vals); a.hi = Math.max(...vals); }
    else a.cats = [...new Set(vals.map((v) => JSON.stringify(v)))].sort();
    a.y = (v) => {
      if (v === undefined || v === null || (typeof v === "number" && Number.isNaN(v))) return null;
      if (a.numeric) return top + (a.hi > a.lo ? 1 - (v - a.lo) / (a.hi - a.lo) : 0.5) * span;
      const i = a.cats.indexOf(JSON.stringify(v));
      return top + (a.cats.length > 1 ? i / (a.cats.length - 1) : 0.5) * span;
    };
  }
  // colour by the rank of the first metric (ranks: a skewed metric still spreads the colours)
  const colorAxis = axes.find((a) => a.kind === "metric" && a.numeric);
  const rank = new Map();
  if (colorAxis) {
    const ranked = runs.filter((r) => typeof colorAxis.get(r) === "number").sort((a, b) => colorAxis.get(a) - colorAxis.get(b));
    ranked.forEach((r, i) => rank.set(r, ranked.length > 1 ? i / (ranked.length - 1) : 0.5));
  }
  const color = (r) => {
    if (!colorAxis) return "#8250df";
    const t = rank.get(r);
    if (t === undefined) return "#8c959f";
    return `hsl(${Math.round(230 - 200 * t)}, 75%, ${Math.round(45 - 5 * t)}%)`;
  };
  const svg = s("svg", { width: W, height: H, id: "parallel", role: "img", "data-runs": runs.length });
  const lines = s("g", { class: "pc-lines", opacity: runs.length > 200 ? 0.35 : runs.length > 50 ? 0.6 : 0.9 });
  const ys = runs.map((r) => axes.map((a) => a.y(a.get(r))));
  lines.innerHTML = runs.map((r, i) => {
    let d = "", pen = false;
    ys[i].forEach((y, j) => {
      if (y === null) { pen = false; return; }
      d += `${pen ? "L" : "M"}${(left + j * step).toFixed(1)},${y.toFixed(1)}`;
      pen = true;
    });
    const tip = r.run_id + (colorAxis ? `: ${colorAxis.name} ${fmt(colorAxis.get(r))}` : "");
    return `<path d="${d}" class="pc-line" stroke="${color(r)}" data-run="${esc(r.run_id)}"><title>${esc(tip)}</title></path>`;
  }).join("");
  const paths = [...lines.children];
  svg.append(lines);
  const count = h("span", { id: "pc-count" }, `${runs.length} of ${runs.length} runs`);
  const box = h("div", { class: "card pc" });  // box.onselect(indices of the runs kept), if set
  const brushes = axes.map(() => null);  // [y0, y1] per axis, in pixels
  let pending = false;
  const apply = () => {  // at most once a frame, however fast the pointer moves
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const kept = [];
      paths.forEach((p, i) => {
        const keep = brushes.every((b, j) => !b || (ys[i][j] !== null && ys[i][j] >= b[0] && ys[i][j] <= b[1]));
        p.classList.toggle("faded", !keep);
        if (keep) kept.push(i);
      });
      count.textContent = `${kept.length} of ${runs.length} runs`;
      if (box.onselect) box.onselect(kept);
    });
  };
  axes.forEach((a, j) => {
    const x = left + j * step;
    const g = s("g", { class: "pc-axis", "data-axis": a.name });
    g.append(s("line", { x1: x, x2: x, y1: top, y2: top + span, stroke: "#57606a" }));
    const label = a.name.length > 18 ? "…" + a.name.slice(-17) : a.name;
    g.append(s("text", { x, y: 12, "text-anchor": "middle", class: a.kind === "metric" ? "metric" : "param" }, label));
    g.append(s("text", { x, y: 25, "text-anchor": "middle", class: "muted" }, a.kind + (a === colorAxis ? " (colour)" : "")));
    if (a.numeric) {
      g.append(s("text", { x: x + 4, y: top - 4, class: "tick" }, fmt(a.hi)));
      g.append(s("text", { x: x + 4, y: top + span + 12, class: "tick" }, fmt(a.lo)));
    } else if (a.cats.length <= 12) {
      a.cats.forEach((c, i) => g.append(s("text", { x: x + 4, y: a.y(JSON.parse(c)) + 4, class: "tick" }, String(JSON.parse(c)).slice(0, 14))));
    }
    const band = s("rect", { class: "pc-brush", x: x - 6, y: top, width: 12, height: 0 });
    const hit = s("rect", { class: "pc-hit", x: x - 10, y: top - 4, width: 20, height: span + 8, "data-axis": a.name });
    hit.append(s("title", {}, `${a.name}: drag to keep a range, double-click to clear`));
    let from = null;
    const at = (e) => Math.max(top, Math.min(top + span, e.clientY - svg.getBoundingClientRect().top));
    hit.addEventListener("pointerdown", (e) => { from = at(e); hit.setPointerCapture(e.pointerId); e.preventDefault(); });
    hit.addEventListener("pointermove", (e) => {
      if (from === null) return;
      const y = at(e), lo = Math.min(from, y), hi = Math.max(from, y);
      band.setAttribute("y", lo); band.setAttribute("height", hi - lo);
      brushes[j] = hi - lo >= 2 ? [lo, hi] : null;
      apply();
    });
    hit.addEventListener("pointerup", () => { from = null; });
    hit.addEventListener("dblclick", () => { brushes[j] = null; band.setAttribute("height", 0); apply(); });
    g.append(band, hit);
    svg.append(g);
  });
  svg.setAttribute("data-draw-ms", (performance.now() - t0).toFixed(1));
  const note = axes.length < params.length + metrics.length ? ` (the first ${axes.length} axes)` : "";
  box.append(h("p", { class: "muted" }, count, ` · colour: ${colorAxis ? colorAxis.name : "–"} (blue low, orange high) · drag along an axis to keep a range, double-click it to clear${note}`), svg);
  return box;
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
    else if (page === "entity") await entityPage(arg);
    else if (page === "service") await servicePage(arg);
    else if (page === "odfv") await odfvPage(arg);
    else if (page === "view-lineage") await viewLineagePage(arg, params);
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
