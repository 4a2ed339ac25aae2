// The framing view: masks and the crop drawn over the live (unmasked) picture with pointer events
// (a finger or a mouse), saved to the agent (POST /api/framing), which applies them from the next
// inspection on. A key the config file sets is shown, locked: the page does not offer to change it.
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";
const MIN_SIDE = 0.01;  // a drag smaller than this is a tap, not a rectangle
const framing = { masks: [], crop: null, locked: [], saved: null, draft: null };

function clamp01(v) { return Math.min(1, Math.max(0, v)); }
function round(r) { return r.map((v) => Math.round(v * 1000) / 1000); }
function span(a, b) { return `${Math.round(a * 100)}–${Math.round(b * 100)}%`; }
function locked(key) { return framing.locked.includes(key); }
function tool() { return document.querySelector("input[name=tool]:checked").value; }

function shape(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}
function box([x0, y0, x1, y1], cls) { return shape("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: cls }); }

function drawOverlay() {
  const svg = $("overlay");
  svg.replaceChildren();
  const c = framing.crop;
  if (c) {  // what the crop cuts away, dimmed
    svg.append(shape("path", { class: "cut", "fill-rule": "evenodd", d: `M0 0H1V1H0Z M${c[0]} ${c[1]}V${c[3]}H${c[2]}V${c[1]}Z` }));
    svg.append(box(c, "crop"));
  }
  for (const m of framing.masks) svg.append(box(m, "mask"));
  if (framing.draft) svg.append(box(framing.draft.rect, "draft " + framing.draft.kind));
}

function listRects() {
  const rows = framing.masks.map((m, i) => ["mask", m, () => { framing.masks.splice(i, 1); changed(); }]);
  if (framing.crop) rows.push(["crop", framing.crop, () => { framing.crop = null; changed(); }]);
  $("rects").replaceChildren(...rows.map(([kind, r, remove]) => {
    const li = el("li", {}, el("span", { class: "swatch " + kind }), `${kind}: ${span(r[0], r[2])} across, ${span(r[1], r[3])} down`);
    if (!locked(kind === "mask" ? "masks" : "crop")) {
      const b = el("button", { type: "button" }, "Remove");
      b.addEventListener("click", remove);
      li.append(b);
    } else li.append(el("span", { class: "muted" }, " (config file)"));
    return li;
  }));
}

function changed() {
  drawOverlay(); listRects();
  const dirty = JSON.stringify([framing.masks, framing.crop]) !== framing.saved;
  $("framing-save").disabled = !dirty;
  $("framing-undo").disabled = !dirty;
  if (dirty) $("framing-result").textContent = "Not saved yet.";
}

function take(d) {
  framing.masks = d.masks.map(round); framing.crop = d.crop && round(d.crop); framing.locked = d.locked;
  framing.saved = JSON.stringify([framing.masks, framing.crop]);
  const lockedWords = d.locked.map((k) => `camera.${k}`).join(" and ");
  $("framing-locked").hidden = !d.locked.length;
  $("framing-locked").textContent = d.locked.length ? `${lockedWords} ${d.locked.length > 1 ? "are" : "is"} set in the config file: change ${d.locked.length > 1 ? "them" : "it"} there, not here.` : "";
  for (const input of document.querySelectorAll("input[name=tool]")) {
    input.disabled = locked(input.value === "mask" ? "masks" : "crop");
    if (input.disabled) input.checked = false;
  }
  const free = document.querySelector("input[name=tool]:not(:disabled)");
  if (free && !document.querySelector("input[name=tool]:checked")) free.checked = true;
  $("overlay").classList.toggle("off", !free);
  changed();
}

function point(svg, e) {
  const r = svg.getBoundingClientRect();
  return [clamp01((e.clientX - r.left) / r.width), clamp01((e.clientY - r.top) / r.height)];
}

function startDrawing() {
  const svg = $("overlay");
  svg.addEventListener("pointerdown", (e) => {
    if (!document.querySelector("input[name=tool]:checked:not(:disabled)")) return;
    e.preventDefault();
    svg.setPointerCapture(e.pointerId);
    const [x, y] = point(svg, e);
    framing.draft = { kind: tool(), from: [x, y], rect: [x, y, x, y] };
  });
  svg.addEventListener("pointermove", (e) => {
    if (!framing.draft) return;
    const [x, y] = point(svg, e), [fx, fy] = framing.draft.from;
    framing.draft.rect = [Math.min(fx, x), Math.min(fy, y), Math.max(fx, x), Math.max(fy, y)];
    drawOverlay();
  });
  const finish = () => {
    const d = framing.draft;
    framing.draft = null;
    if (d && d.rect[2] - d.rect[0] >= MIN_SIDE && d.rect[3] - d.rect[1] >= MIN_SIDE) {
      if (d.kind === "mask") framing.masks.push(round(d.rect)); else framing.crop = round(d.rect);
    }
    changed();
  };
  svg.addEventListener("pointerup", finish);
  svg.addEventListener("pointercancel", () => { framing.draft = null; drawOverlay(); });
}

async function startFraming() {
  startDrawing();
  $("framing-undo").addEventListener("click", async () => { take(await getJSON("/api/framing")); $("framing-result").textContent = ""; });
  $("framing-save").addEventListener("click", async () => {
    const body = {};
    if (!locked("masks")) body.masks = framing.masks;
    if (!locked("crop")) body.crop = framing.crop;
    $("framing-result").textContent = "saving…";
    const r = await post("/api/framing", body);
    if (!r.ok) { $("framing-result").textContent = "Not saved: " + (await r.text()).replace(/^Not saved: /, ""); return; }
    take(await r.json());
    $("framing-result").textContent = "Saved; inspections use it from the next frame on.";
  });
  take(await getJSON("/api/framing"));
}

document.addEventListener("DOMContentLoaded", () => { if (document.body.dataset.page === "live") startFraming(); });
