// The Pi's overview (/pi): a poll of /api/pi every few seconds (see agent/web/overview.py);
// each thumbnail is fetched again only when its file changed. Uses app.js's helpers.
"use strict";
const PI_POLL_MS = 5000;
const piCards = new Map();

function piLink(p) {
  if (!p.page) return null;
  if (!p.page.any_host) return /^https?:\/\//.test(p.page.url) ? p.page.url : null;
  const port = p.page.port === 80 ? "" : `:${p.page.port}`;  // the address the user typed, this printer's port
  return `${location.protocol}//${location.hostname}${port}/`;
}

function piAge(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : when(iso);
}

function piCard(p, here) {
  let card = piCards.get(p.printer_id);
  if (!card) {
    card = el("a", { class: "card pi-card", "data-printer": p.printer_id },
      el("img", { class: "thumb", alt: `${p.printer_id}: last inspected frame` }),
      el("div", { class: "row split" }, el("span", {}, el("span", { class: "name" }, p.printer_id), p.printer_id === here ? el("small", { class: "muted" }, " (here)") : ""), el("span", { class: "badge" })),
      el("div", { class: "progress" }, el("div", { class: "bar" })),
      el("div", { class: "muted facts" }));
    piCards.set(p.printer_id, card);
  }
  const link = piLink(p);
  if (link) card.href = link; else card.removeAttribute("href");
  const state = p.online ? (p.print_state || "unknown") : "offline";
  card.className = `card pi-card ${state}` + (p.printer_id === here ? " here" : "");
  const badge = card.querySelector(".badge");
  badge.className = `badge ${state}`;
  badge.textContent = state;
  card.querySelector(".bar").style.width = (p.progress || 0) + "%";
  const score = p.score == null ? "–" : String(p.score);
  const facts = card.querySelector(".facts");
  facts.replaceChildren(
    el("span", { class: "score" + (p.pause_suggested ? " bad" : p.warning ? " warn" : "") }, `score ${score}`),
    ` · ${p.file || "no file"}` + (p.progress == null ? "" : ` · ${p.progress}%`),
    el("br"),
    p.online ? `inspected ${piAge(p.last_inspection) || "not yet"}` : `agent stopped · last heard ${piAge(p.updated)}, ${p.print_state || "unknown"}`);
  const img = card.querySelector(".thumb");
  const src = p.frame ? `/api/pi/${encodeURIComponent(p.printer_id)}.jpg?v=${p.frame}` : "";
  if (src && img.getAttribute("src") !== src) img.src = src;
  return card;
}

async function startPi() {
  const load = async () => {
    const d = await getJSON("/api/pi");
    $("pi-grid").replaceChildren(...d.printers.map((p) => piCard(p, d.this)));
    $("pi-none").hidden = d.printers.length > 0;
  };
  await load();
  setInterval(() => { if (!document.hidden) load().catch(() => {}); }, PI_POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => { if (document.body.dataset.page === "pi") startPi(); });
