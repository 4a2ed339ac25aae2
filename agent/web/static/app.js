// LayerGuard's page: plain JavaScript, no build step, nothing from the internet.
"use strict";
const $ = (id) => document.getElementById(id);
let csrf = "";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}
function when(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }
function duration(s) { if (s == null) return "–"; const h = Math.floor(s / 3600), m = Math.round((s % 3600) / 60); return h ? `${h} h ${m} min` : `${m} min`; }
async function post(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
  if (r.status === 401) location.href = "/login";
  return r;
}
async function getJSON(url) {
  const r = await fetch(url);
  if (r.status === 401) { location.href = "/login"; throw new Error("logged out"); }
  if (!r.ok) throw new Error(await r.text());
  return r.json();
}

// -- the printer page -----------------------------------------------------------------------
const printer = { series: [], marks: [], started: null };

function showState(s) {
  const state = $("state");
  state.textContent = s.print_state + (s.paused_by ? ` (by ${s.paused_by})` : "") + (s.pause_failed ? " – pause NOT confirmed" : "");
  state.className = "badge " + s.print_state;
  $("file").textContent = s.file || "";
  $("progress-bar").style.width = (s.progress || 0) + "%";
  $("progress-text").textContent = s.progress == null ? "" : `${s.progress}%` + (s.monitoring ? "" : " · monitoring off for this print");
  const score = s.score;
  const arc = $("gauge-arc");
  arc.setAttribute("stroke-dasharray", `${score || 0} 100`);
  arc.setAttribute("class", "arc" + (s.pause_suggested ? " bad" : s.warning ? " warn" : ""));
  $("gauge-text").textContent = score == null ? "–" : String(score);
  $("verdict").textContent = score == null ? "no inspection yet" :
    `quality ${s.print_quality ?? "–"}/10 · ${s.pause_suggested ? "pause suggested" : s.warning ? "warning" : "looks fine"} · detection ${s.detection}`;
}

function drawChart() {
  const chart = $("chart");
  chart.replaceChildren();
  for (const y of [0, 50, 100]) chart.append(svg("line", { x1: 0, x2: 600, y1: 195 - y * 1.9, y2: 195 - y * 1.9, class: "grid" }));
  const pts = printer.series.filter((p) => p.at);
  if (!pts.length) return;
  const times = [...pts.map((p) => Date.parse(p.at)), ...printer.marks.map((m) => Date.parse(m.at))];
  const t0 = Date.parse(pts[0].at), t1 = Math.max(...times, t0 + 20000);
  const x = (iso) => ((Date.parse(iso) - t0) / (t1 - t0)) * 590 + 5;
  const y = (score) => 195 - score * 1.9;
  chart.append(svg("polyline", { class: "line", points: pts.map((p) => `${x(p.at).toFixed(1)},${y(p.score).toFixed(1)}`).join(" ") }));
  for (const p of pts) if (p.warning || p.pause_suggested) chart.append(svg("circle", { cx: x(p.at), cy: y(p.score), r: 4, class: "warn" }));
  // One line per pause the printer confirmed; a dashed one where a pause was NOT confirmed.
  for (const m of printer.marks) {
    if (m.type !== "print_paused" && m.type !== "pause_failed") continue;
    const mx = Math.min(595, Math.max(5, x(m.at)));
    const attrs = { x1: mx, x2: mx, y1: 0, y2: 200, class: "pause" };
    if (m.type === "pause_failed") attrs["stroke-dasharray"] = "6 4";
    chart.append(svg("line", attrs));
  }
}

function showFrame(n) {
  if (n == null) return;
  const img = $("frame");
  img.src = `/api/frame.jpg?n=${n}`;
  img.hidden = false;
  $("no-frame").hidden = true;
}

function showAnswer(a) {
  const li = el("li", { class: a.result }, `${new Date().toLocaleTimeString()} ${a.command}${a.source === "web" ? "" : ` (from ${a.source})`}: ${a.result}${a.reason ? " – " + a.reason : ""}`);
  $("answers").prepend(li);
  while ($("answers").children.length > 8) $("answers").lastChild.remove();
}

function startPrinter() {
  for (const b of document.querySelectorAll("[data-command]")) {
    b.addEventListener("click", async () => {
      if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
      const r = await post(`/api/command/${b.dataset.command}`, { payload: b.dataset.payload || "" });
      if (!r.ok) showAnswer({ command: b.dataset.command, result: "refused", reason: await r.text(), source: "web" });
    });
  }
  const events = new EventSource("/api/stream");
  document.dispatchEvent(new CustomEvent("layerguard:stream", { detail: events }));  // alerts.js listens too
  events.addEventListener("hello", (e) => {
    const d = JSON.parse(e.data);
    printer.series = d.series; printer.marks = d.marks;
    showState(d.state); drawChart(); showFrame(d.frame);
  });
  events.addEventListener("state", (e) => showState(JSON.parse(e.data)));
  events.addEventListener("inspection", (e) => {
    const p = JSON.parse(e.data);
    printer.series.push(p); drawChart(); showFrame(p.frame);
  });
  events.addEventListener("event", (e) => {
    const ev = JSON.parse(e.data);
    if (ev.type === "print_started") { printer.series = []; printer.marks = []; drawChart(); }
    if (["failure_warning", "failure_paused", "pause_failed", "print_paused", "print_resumed"].includes(ev.type)) { printer.marks.push(ev); drawChart(); }
    if (ev.type === "command_answer") showAnswer(ev);
  });
  events.onerror = () => { $("state").textContent = "reconnecting…"; };
}

// -- the live view ----------------------------------------------------------------------------
function startLive() {
  const img = $("live");
  let timer = null;
  const next = () => {
    clearTimeout(timer);
    if (document.hidden) return;  // nobody watches: no frames
    timer = setTimeout(() => { img.src = `/api/live.jpg?t=${Date.now()}`; }, 500);
  };
  img.addEventListener("load", () => { $("live-error").hidden = true; next(); });
  img.addEventListener("error", () => { $("live-error").hidden = false; $("live-error").textContent = "The camera did not answer; retrying."; timer = setTimeout(next, 2000); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) next(); });
  img.src = `/api/live.jpg?t=${Date.now()}`;
}

// -- history ----------------------------------------------------------------------------------
async function startHistory() {
  const select = $("outcome");
  const params = new URLSearchParams(location.search);
  const load = async () => {
    const d = await getJSON(`/api/history?outcome=${encodeURIComponent(select.value)}`);
    for (const o of d.outcomes) if (![...select.options].some((x) => x.value === o)) select.append(el("option", { value: o }, o));
    const body = $("prints").tBodies[0];
    body.replaceChildren(...d.prints.map((p) => el("tr", {},
      el("td", {}, el("a", { href: `/history/${p.id}` }, `#${p.id}`)),
      el("td", {}, when(p.started_at)),
      el("td", {}, p.file || "–"),
      el("td", {}, duration(p.ended_at && (Date.parse(p.ended_at) - Date.parse(p.started_at)) / 1000)),
      el("td", {}, p.outcome),
      el("td", {}, p.peak_score ?? "–"),
      el("td", {}, String(p.api_calls)),
      el("td", {}, alertWords(p.alerts)))));
    $("no-prints").hidden = d.prints.length > 0;
  };
  select.addEventListener("change", () => { history.replaceState(null, "", select.value ? `?outcome=${select.value}` : "/history"); load(); });
  if (params.get("outcome")) select.append(el("option", { value: params.get("outcome"), selected: "" }, params.get("outcome")));
  await load();
}

async function startEntry() {
  const id = location.pathname.split("/").pop();
  const d = await getJSON(`/api/history/${id}`);
  const p = d.print;
  $("entry-title").textContent = `Print #${p.id}: ${p.file || "unknown file"}`;
  const facts = { started: when(p.started_at), ended: when(p.ended_at), outcome: p.outcome, "peak score": p.peak_score ?? "–", inspections: p.inspections, "API calls": p.api_calls, warnings: p.warnings, pauses: p.pauses };
  $("entry-facts").replaceChildren(...Object.entries(facts).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  // Drawn on demand in a worker (seconds on a Pi): say so until it arrives, and when it cannot.
  const report = $("report"), note = $("report-note");
  report.onload = () => { note.hidden = true; };
  report.onerror = () => { note.textContent = "The report could not be drawn (see the journal)."; $("report-link").hidden = true; };
  report.src = `/api/history/${id}/report.png`;
  $("report-link").href = report.src;
  const frames = d.inspections.filter((i) => i.frame);
  $("evidence").replaceChildren(...frames.map((i) => el("figure", {},
    el("a", { href: `/api/history/${id}/frame/${i.seq}.jpg` }, el("img", { src: `/api/history/${id}/frame/${i.seq}.jpg`, alt: `inspection ${i.seq}`, loading: "lazy" })),
    el("figcaption", {}, `#${i.seq} · score ${i.score}${i.pause_suggested ? " · pause" : i.warning ? " · warning" : ""}`))));
  $("no-evidence").hidden = frames.length > 0;
}

// -- health -----------------------------------------------------------------------------------
async function startHealth() {
  const load = async () => {
    const d = await getJSON("/api/health");
    $("checks").replaceChildren(...d.checks.map((c) => el("li", { class: c.ok ? "ok" : "fail" }, `${c.name}: ${c.detail}`)));
    $("config").textContent = JSON.stringify(d.config, null, 2);
  };
  $("notify-test").addEventListener("click", async () => {
    $("notify-result").textContent = "sending…";
    const r = await post("/api/notify-test");
    const d = await r.json();
    $("notify-result").textContent = d.message + " " + d.results.map((x) => `${x.service}: ${x.ok ? "ok" : x.detail}`).join(", ");
  });
  await load();
  setInterval(() => { if (!document.hidden) load(); }, 5000);
}

document.addEventListener("DOMContentLoaded", async () => {
  const s = await getJSON("/api/session");
  csrf = s.csrf;
  $("printer-id").textContent = s.printer_id;
  $("logout").hidden = s.auth === "none";
  $("logout").addEventListener("click", async () => { await post("/logout"); location.href = "/login"; });
  const start = { printer: startPrinter, live: startLive, history: startHistory, entry: startEntry, health: startHealth }[document.body.dataset.page];
  if (start) await start();
});
