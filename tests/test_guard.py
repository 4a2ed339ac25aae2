"""The pause policy: warnings once per episode, pauses only when allowed."""

from __future__ import annotations

from agent.detection.verdict import Verdict
from agent.guard import Decision, Guard


def v(warning: bool = False, pause: bool = False) -> Verdict:
    return Verdict(score=50, print_quality=5, warning=warning, pause=pause, next_interval_s=20)


def test_warning_is_raised_once_per_episode() -> None:
    g = Guard("pause")
    assert g.decide(v(), 0) == Decision()
    assert g.decide(v(warning=True), 1) == Decision(warn=True)
    assert g.decide(v(warning=True), 2) == Decision()
    assert g.decide(v(), 3) == Decision()
    assert g.decide(v(warning=True), 4) == Decision(warn=True)


def test_pause_suggested_pauses_with_action_pause() -> None:
    g = Guard("pause")
    assert g.decide(v(warning=True, pause=True), 0) == Decision(warn=True, pause=True)
    assert g.decide(v(warning=True, pause=True), 1) == Decision(pause=True)


def test_action_warn_never_pauses_and_says_it_once() -> None:
    g = Guard("warn")
    assert g.decide(v(pause=True), 0) == Decision(warn=True)
    assert g.decide(v(pause=True), 1) == Decision()
    assert g.decide(v(), 2) == Decision()
    assert g.decide(v(pause=True), 3) == Decision(warn=True)


def test_no_auto_pause_within_the_grace_after_a_resume() -> None:
    g = Guard("pause", resume_grace_s=100)
    g.note_resume(now=1000)
    assert g.decide(v(warning=True, pause=True), 1050).pause is False
    assert g.decide(v(warning=True, pause=True), 1100).pause is True
    g.reset()
    assert g.decide(v(pause=True), 0).pause is True


def scored(score: int, warning: bool = True, pause: bool = True) -> Verdict:
    return Verdict(score=score, print_quality=5, warning=warning, pause=pause, next_interval_s=20)


def test_a_false_alarm_mutes_until_the_score_climbs_clearly_above_it() -> None:
    g = Guard("pause")
    assert g.note_false_alarm() is False  # no alert yet in this print: nothing to label
    assert g.decide(scored(60), 0) == Decision(warn=True, pause=True)
    assert g.decide(scored(72), 1).pause
    g.note_resume(2)  # the label resumed it (grace 0 here)
    assert g.note_false_alarm() and g.muted == "false_alarm"
    # The clutter goes on scoring as before, and even a little higher: silence.
    for t, score in enumerate((72, 75, 81, 70, 82, 90, 75, 85, 88)):
        assert g.decide(scored(score), 10 + t) == Decision(), score
    # The third inspection in a row at the peak (72) + 10 or more: the guard listens again.
    assert g.decide(scored(95), 21) == Decision(warn=True, pause=True)
    assert g.muted is None


def test_a_snooze_mutes_the_rest_of_the_print_and_a_new_print_is_heard() -> None:
    g = Guard("pause")
    g.snooze()
    assert g.muted == "snoozed"
    assert all(g.decide(scored(100), t) == Decision() for t in range(10))
    g.reset()
    assert g.decide(scored(100), 11).pause
