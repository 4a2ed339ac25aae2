"""The false-alarm figure of the simulated world: the recorded prints with a cable in view raise
false alarms the labels count; a mask over the cable removes them and keeps every real failure."""

from __future__ import annotations

from hardware.camera.framing import NO_FRAMING
from sim.recorded_prints import MASKED, PRINTS, false_alarm_figures


def test_masks_remove_the_clutters_false_alarms_and_labels_count_them() -> None:
    failing = sum(p.failure_at is not None for p in PRINTS)
    cluttered = sum(p.clutter for p in PRINTS)
    plain, labels = false_alarm_figures(NO_FRAMING)
    # Every print with the cable in view alerts before anything fails: a false alarm each.
    assert plain.false_alarms == cluttered
    assert all(labels[p.name][:1] == ["false_alarm"] for p in PRINTS if p.clutter)
    assert plain.false_alarm_rate is not None and plain.false_alarm_rate > 0.5
    masked, labels = false_alarm_figures(MASKED)
    assert masked.false_alarms == 0 and masked.false_alarm_rate == 0.0
    assert masked.real_failures == failing  # the mask hides the cable, not the failures
    assert all(labels[p.name] == [] for p in PRINTS if p.failure_at is None)
