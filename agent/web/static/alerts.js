// Alerts and the user's verdict on them: the printer page's "False alarm" / "Real failure" /
// "Snooze" (sent through the one command path, like pause and resume: app.js wires every
// [data-command] button), and each print's alerts in the history, with a label for the last one.
"use strict";
const ALERT_EVENTS = ["failure_warning", "failure_paused"];
const LABEL_WORDS = { false_alarm: "false alarm", real_failure: "real failure" };

function alertWords(list) {
  if (!list || !list.length) return "–";
  return list.map((a) => LABEL_WORDS[a.label] || (a.paused ? "pause, unlabelled" : "warning, unlabelled")).join("; ");
}

// -- the printer page: the current print's alert ------------------------------------------------
const current = { state: {}, alerted: false };

function showAlert() {
  const s = current.state, card = $("alert-card");
  const inPrint = s.print_state === "printing" || s.print_state === "paused";
  card.hidden = !(inPrint && (current.alerted || s.warning || s.pause_suggested || s.paused_by === "agent"));
  const what = s.paused_by === "agent" ? "LayerGuard paused this print: is it failing?" : "LayerGuard raised an alert on this print.";
  const muted = { snoozed: " Alerts are snoozed for the rest of this print.",
    false_alarm: " Labelled a false alarm: alerts stay quiet for this print unless the score climbs clearly higher." }[s.alerts_muted] || "";
  $("alert-text").textContent = what + muted;
  $("snooze").hidden = s.alerts_muted === "snoozed";
}

function noteAlert(line, result) {
  $("alert-answers").prepend(el("li", { class: result || "" }, `${new Date().toLocaleTimeString()} ${line}`));
  while ($("alert-answers").children.length > 4) $("alert-answers").lastChild.remove();
}

document.addEventListener("layerguard:stream", (e) => {
  const events = e.detail;
  events.addEventListener("hello", (m) => {
    const d = JSON.parse(m.data);
    current.state = d.state;
    current.alerted = d.marks.some((x) => ALERT_EVENTS.includes(x.type));
    showAlert();
  });
  events.addEventListener("state", (m) => { current.state = JSON.parse(m.data); showAlert(); });
  events.addEventListener("event", (m) => {
    const ev = JSON.parse(m.data);
    if (ev.type === "print_started") current.alerted = false;
    if (ALERT_EVENTS.includes(ev.type)) current.alerted = true;
    if (ev.type === "command_answer" && (ev.command === "label" || ev.command === "snooze")) {
      noteAlert(`${ev.command}: ${ev.result}${ev.reason ? " – " + ev.reason : ""}`, ev.result);
    }
    if (ev.type === "alert_labelled") noteAlert(`last alert labelled ${LABEL_WORDS[ev.label] || ev.label}${ev.resumed ? "; resuming the print" : ""}`, "done");
    if (ev.type === "alerts_snoozed") noteAlert("alerts snoozed for the rest of this print", "done");
    showAlert();
  });
});

// -- a history entry: its alerts, and a label for the last one ----------------------------------
function showEntryAlerts(p) {
  $("alerts").replaceChildren(...p.alerts.map((a) => el("li", {},
    `${when(a.at)} · ${a.paused ? "paused" : "warned"} · score ${a.score ?? "–"} · ${LABEL_WORDS[a.label] || "not labelled"}`)));
  $("no-alerts").hidden = p.alerts.length > 0;
  $("label-controls").hidden = p.alerts.length === 0;
}

async function startEntryAlerts() {
  const id = location.pathname.split("/").pop();
  showEntryAlerts((await getJSON(`/api/history/${id}`)).print);
  for (const b of document.querySelectorAll("[data-label]")) {
    b.addEventListener("click", async () => {
      if (!confirm(b.dataset.confirm)) return;
      const r = await post(`/api/history/${id}/label`, { label: b.dataset.label });
      if (!r.ok) { $("label-answer").textContent = "Not labelled: " + await r.text(); return; }
      const d = await r.json();
      if (d.answer) {  // the print is running: the agent took it as a command
        $("label-answer").textContent = `Sent to the agent: ${d.answer.result}${d.answer.reason ? " – " + d.answer.reason : ""}. The printer page shows what follows.`;
        setTimeout(async () => showEntryAlerts((await getJSON(`/api/history/${id}`)).print), 2000);
      } else {
        $("label-answer").textContent = `Labelled ${LABEL_WORDS[b.dataset.label]}.`;
        showEntryAlerts(d.print);
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => { if (document.body.dataset.page === "entry") startEntryAlerts(); });
