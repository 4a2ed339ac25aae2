"""Notification rules, wording and naming, as plain data: episodes, rate limit, reminder, labels."""

from __future__ import annotations

from typing import Any

import pytest

from agent.notify.episodes import EpisodeRules
from agent.notify.message import compose, redact, trial_message
from agent.notify.services import label, url_secrets
from agent.settings import NOTIFY_EVENTS, NotifySection

DEFAULTS = NotifySection().events
PRINTING = {"print_state": "printing", "monitoring": True}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "at": "2026-11-29T12:00:00Z", **fields}


def sent(rules: EpisodeRules, *events: dict[str, Any], state: dict[str, Any] = PRINTING) -> list[str]:
    return [d.kind for e in events if (d := rules.on_event(e, state)).kind]


def test_defaults_are_the_alerts_that_need_a_person() -> None:
    assert list(NOTIFY_EVENTS[:8]) == DEFAULTS
    assert "print_started" not in DEFAULTS and "detection_error" not in DEFAULTS


def test_one_notification_per_episode_and_a_new_episode_after_resume() -> None:
    rules = EpisodeRules(DEFAULTS, 0, clock=Clock())
    warnings = [ev("failure_warning", score=60)] * 20  # a warning that persists (or flickers)
    first = sent(rules, ev("print_started", file="a.gcode"), *warnings, ev("failure_paused", score=80))
    assert first == ["failure_warning", "failure_paused"]
    again = sent(rules, ev("print_resumed"), *warnings, ev("failure_paused"), ev("failure_paused"))
    assert again == ["failure_warning", "failure_paused"]
    assert sent(rules, ev("print_started", file="b.gcode"), ev("failure_warning")) == ["failure_warning"]


def test_the_same_print_found_again_after_a_restart_is_not_told_again() -> None:
    clock = Clock()
    rules = EpisodeRules(DEFAULTS, 0, clock=clock)
    assert sent(rules, ev("print_started", file="a.gcode"), ev("failure_warning")) == ["failure_warning"]
    assert rules.changed
    restarted = EpisodeRules(DEFAULTS, 0, record=dict(rules.record), clock=clock)
    assert sent(restarted, ev("print_started", file="a.gcode"), ev("failure_warning")) == []
    # Once that print ended, the same file again is a new print.
    assert sent(restarted, ev("print_finished"), ev("print_started", file="a.gcode"), ev("failure_warning"))


def test_a_resume_unseen_across_a_restart_still_starts_a_new_episode() -> None:
    rules = EpisodeRules(DEFAULTS, 0, clock=Clock())
    sent(rules, ev("print_started", file="a.gcode"), ev("failure_warning"), ev("failure_paused"))
    restarted = EpisodeRules(DEFAULTS, 0, record=dict(rules.record))
    restarted.on_state({"print_state": "unknown"})
    assert sent(restarted, ev("print_started", file="a.gcode"), ev("failure_warning")) == []
    restarted.on_state({"print_state": "printing"})  # resumed on the printer's panel meanwhile
    assert sent(restarted, ev("failure_warning")) == ["failure_warning"]


def test_what_is_not_an_alert() -> None:
    rules = EpisodeRules([*DEFAULTS, "detection_error"], 0, clock=Clock())
    sent(rules, ev("print_started", file="a.gcode"))
    # The user's own pause that failed: they asked and see the outcome.
    assert sent(rules, ev("pause_failed", by="user"), ev("pause_failed", by="user", resume=True)) == []
    # Monitoring off: nothing at all.
    assert sent(rules, ev("failure_warning"), state={**PRINTING, "monitoring": False}) == []
    # Events not chosen.
    assert sent(rules, ev("print_paused"), ev("print_finished")) == []
    # A stop that needs a person is detection_stopped; a retrying error is detection_error (opted in).
    assert sent(rules, ev("detection_error", stopped=True), ev("detection_error", stopped=False)) == [
        "detection_stopped",
        "detection_error",
    ]


def test_no_burst_exceeds_the_rate_limit() -> None:
    clock = Clock()
    rules = EpisodeRules(DEFAULTS, 0, max_sent=3, window_s=600, clock=clock)
    sent(rules, ev("print_started", file="a.gcode"))
    burst = [ev("print_resumed"), ev("failure_warning")] * 10
    assert len(sent(rules, *burst)) == 3
    decision = rules.on_event(ev("failure_paused"), PRINTING)
    assert decision.kind is None and "3 notifications" in decision.why
    clock.now += 601
    assert sent(rules, ev("print_resumed"), ev("failure_warning")) == ["failure_warning"]


def test_reminder_once_for_an_unattended_pause_that_layerguard_made() -> None:
    clock = Clock()
    rules = EpisodeRules(DEFAULTS, 900, clock=clock)
    sent(rules, ev("print_started", file="a.gcode"), ev("failure_paused"))
    paused = {"print_state": "paused", "monitoring": True}
    assert rules.reminder_at() == clock.now + 900
    assert rules.on_reminder(paused).kind is None  # not yet
    clock.now += 900
    assert rules.on_reminder(paused).kind == "pause_reminder"
    assert rules.reminder_at() is None and rules.on_reminder(paused).kind is None
    # Resumed in time: no reminder.
    sent(rules, ev("print_resumed"), ev("failure_paused"))
    sent(rules, ev("print_resumed"))
    clock.now += 1000
    assert rules.reminder_at() is None
    # No reminder for a pause that is over by the time it is due, nor with reminder_after_s = 0.
    sent(rules, ev("failure_paused"))
    clock.now += 1000
    assert rules.on_reminder({"print_state": "printing", "monitoring": True}).kind is None
    assert EpisodeRules(DEFAULTS, 0, record=rules.record).reminder_at() is None


def test_the_message_names_printer_file_progress_score_and_what_was_done() -> None:
    state = {"file": "benchy.gcode", "progress": 23.4}
    paused = compose("failure_paused", ev("failure_paused", score=81), state, "mk3")
    assert paused.title == "mk3: print PAUSED, failure detected"
    assert paused.body.splitlines()[0] == "benchy.gcode, 23 % done, failure score 81/100"
    assert "LayerGuard paused the printer" in paused.body
    warned = compose("failure_warning", ev("failure_warning", score=60, action="warn"), state, "mk3")
    assert "only warns" in warned.body
    failed = compose("pause_failed", ev("pause_failed", message="no confirmation"), state, "mk3")
    assert "could NOT pause" in failed.title and "no confirmation" in failed.body
    reminder = compose("pause_reminder", ev("pause_reminder", paused_for_s=1800), state, "mk3")
    assert "30 min ago" in reminder.body
    assert compose("printer_error", ev("printer_error"), {}, "mk3").body.startswith("unknown file")
    assert "placeholder" in trial_message("mk3", "no camera").body


def test_no_secret_in_a_message() -> None:
    message = compose("printer_error", ev("printer_error", message="bad key sk-0123456789"), {}, "mk3")
    assert "sk-0123456789" not in redact(message, ["sk-0123456789"]).body


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("json://127.0.0.1:8080/hook?token=abcdef", "json://127.0.0.1"),
        ("mailto://user:pw@127.0.0.1:2525?from=a@example.com&to=b@example.com", "mailto://127.0.0.1"),
        ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/1234567", "tgram://1...9"),
        ("ntfys://ntfy.sh/secret-topic", "ntfys://ntfy.sh"),
        ("ntfy://secret-topic", "ntfy://s...c"),
        ("nonsense", "(not a URL)"),
    ],
)
def test_a_service_is_named_by_scheme_and_host_only(url: str, shown: str) -> None:
    assert label(url) == shown


def test_url_secrets_cover_tokens_but_not_plain_hosts() -> None:
    found = url_secrets("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/1234567")
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" in found
    assert "127.0.0.1" not in url_secrets("json://user:hunter22@127.0.0.1/x")
    assert "hunter22" in url_secrets("json://user:hunter22@127.0.0.1/x")
