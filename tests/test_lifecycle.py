"""The agent's lifecycle mirrors the link's print state and names its transitions; it decides nothing."""

from __future__ import annotations

from agent.lifecycle import PrintState, PrintTracker, Transition
from hardware.printer.events import PrinterEvent
from hardware.printer.events import PrinterEventKind as K
from hardware.printer.follower import PrintFollower
from hardware.printer.reports import (
    CurrentFile,
    DonePrinting,
    FatalError,
    FileOpened,
    NotSdPrinting,
    SdProgress,
)


def test_transitions_are_the_mqtt_event_types() -> None:
    t = PrintTracker()
    assert t.state is PrintState.OFFLINE
    started = PrinterEvent(K.PRINT_STARTED, state=PrintState.PRINTING, file="a.gcode", progress=0.0)
    assert t.apply(started) is Transition.STARTED and t.in_print and t.file == "a.gcode"
    assert t.apply(PrinterEvent(K.PROGRESS, state=PrintState.PRINTING, progress=42.5)) is None
    assert t.progress == 42.5
    assert t.apply(PrinterEvent(K.LOST, state=PrintState.IDLE)) is Transition.LOST
    assert t.apply(PrinterEvent(K.CONTINUED, state=PrintState.PRINTING)) is None
    assert t.apply(PrinterEvent(K.ERROR, state=PrintState.ERROR, message="kill() called")) is Transition.ERROR
    assert t.error == "kill() called" and t.state is PrintState.ERROR
    assert {tr.value for tr in Transition} == {
        "print_started",
        "print_paused",
        "print_resumed",
        "print_finished",
        "print_cancelled",
        "print_lost",
        "printer_error",
    }


def test_the_follower_s_events_drive_the_tracker_without_a_second_state_machine() -> None:
    follower, tracker = PrintFollower(), PrintTracker()
    seen = [tracker.apply(e) for e in follower.connected("Marlin", follower.dialect)]
    for report in (NotSdPrinting(), CurrentFile(None), FileOpened("a.gcode", 100), SdProgress(5, 100)):
        seen += [tracker.apply(e) for e in follower.apply(report)]
    assert [s for s in seen if s] == [Transition.STARTED], "idle at connect: no event before the start"
    assert tracker.state is PrintState.PRINTING
    for report in (DonePrinting(), FatalError("MINTEMP triggered")):
        seen += [tracker.apply(e) for e in follower.apply(report)]
    assert [s for s in seen if s][1:] == [Transition.FINISHED, Transition.ERROR]
    assert tracker.state is follower.state is PrintState.ERROR
