"""The print lifecycle folds printer events into states and transitions."""

from __future__ import annotations

from agent.lifecycle import PrintState, PrintTracker, Transition
from hardware.printer.events import PrinterEvent
from hardware.printer.events import PrinterEventKind as K


def ev(kind: K, **kw: object) -> PrinterEvent:
    return PrinterEvent(kind, **kw)  # type: ignore[arg-type]


def started(tracker: PrintTracker, file: str = "part.gcode") -> None:
    tracker.apply(ev(K.CONNECTED))
    assert tracker.apply(ev(K.PRINT_STARTED, file=file)) is Transition.STARTED


def test_a_print_from_start_to_finish() -> None:
    t = PrintTracker()
    assert t.state is PrintState.OFFLINE
    started(t)
    assert t.state is PrintState.PRINTING and t.file == "part.gcode" and t.progress == 0
    assert t.apply(ev(K.PROGRESS, progress=42.5)) is None and t.progress == 42.5
    assert t.apply(ev(K.PAUSED)) is Transition.PAUSED
    assert t.apply(ev(K.PAUSED)) is None  # reported again by a later poll
    assert t.apply(ev(K.RESUMED)) is Transition.RESUMED
    assert t.apply(ev(K.FINISHED)) is Transition.FINISHED
    assert t.state is PrintState.IDLE
    assert t.apply(ev(K.FINISHED)) is None


def test_repeated_start_of_the_same_print_is_not_a_new_print() -> None:
    t = PrintTracker()
    started(t)
    assert t.apply(ev(K.PRINT_STARTED, file="part.gcode")) is None
    assert t.apply(ev(K.PRINT_STARTED, file="other.gcode")) is Transition.STARTED


def test_cancel_and_resume_only_where_they_mean_something() -> None:
    t = PrintTracker()
    t.apply(ev(K.CONNECTED))
    assert t.apply(ev(K.RESUMED)) is None
    assert t.apply(ev(K.CANCELLED)) is None
    started(t)
    assert t.apply(ev(K.CANCELLED)) is Transition.CANCELLED
    assert t.state is PrintState.IDLE


def test_the_same_print_found_after_a_reconnect_goes_on_silently() -> None:
    t = PrintTracker()
    started(t)
    t.apply(ev(K.DISCONNECTED))
    assert t.state is PrintState.OFFLINE
    t.apply(ev(K.CONNECTED))
    assert t.apply(ev(K.PRINT_STARTED, file="part.gcode")) is None
    assert t.state is PrintState.PRINTING


def test_errors_stop_the_print() -> None:
    t = PrintTracker()
    started(t)
    assert t.apply(ev(K.ERROR, message="kill() called")) is Transition.ERROR
    assert t.state is PrintState.ERROR and t.error == "kill() called"
    assert t.apply(ev(K.PRINT_STARTED, file="next.gcode")) is Transition.STARTED
    assert t.error == ""


def test_heating_follows_targets() -> None:
    t = PrintTracker()
    t.apply(
        ev(
            K.TEMPERATURE,
            temperatures={"hotend": 25.0, "hotend_target": 210.0, "bed": 60.0, "bed_target": 60.0},
        )
    )
    assert t.heating
    t.apply(
        ev(
            K.TEMPERATURE,
            temperatures={"hotend": 209.0, "hotend_target": 210.0, "bed": 40.0, "bed_target": 60.0},
        )
    )
    assert t.heating
    t.apply(
        ev(
            K.TEMPERATURE,
            temperatures={"hotend": 209.0, "hotend_target": 210.0, "bed": 59.0, "bed_target": 60.0},
        )
    )
    assert not t.heating
    t.apply(ev(K.TEMPERATURE, temperatures={"hotend": 25.0, "hotend_target": 0.0}))
    assert not t.heating


def test_a_print_interrupted_by_a_disconnect_is_unknown_until_the_printer_says() -> None:
    t = PrintTracker()
    started(t)
    t.apply(ev(K.DISCONNECTED))
    t.apply(ev(K.CONNECTED))
    assert t.state is PrintState.UNKNOWN and t.file == "part.gcode"
    assert t.apply(ev(K.PRINT_STARTED, file="part.gcode")) is None  # the same print goes on
    assert t.state is PrintState.PRINTING


def test_a_print_gone_without_a_word_is_lost_not_finished() -> None:
    t = PrintTracker()
    started(t)
    t.apply(ev(K.DISCONNECTED))
    t.apply(ev(K.CONNECTED))
    assert t.apply(ev(K.IDLE)) is Transition.LOST
    assert t.state is PrintState.IDLE
    assert t.apply(ev(K.IDLE)) is None


def test_ambiguous_reports_make_a_followed_print_unknown() -> None:
    t = PrintTracker()
    started(t)
    assert t.apply(ev(K.UNKNOWN, file="part.gcode", message="paused or stopped?")) is None
    assert t.state is PrintState.UNKNOWN and not t.in_print
    assert t.apply(ev(K.PRINT_STARTED)) is None  # Klipper names no file: the same print
    assert t.state is PrintState.PRINTING
    t.apply(ev(K.UNKNOWN))
    assert t.apply(ev(K.PAUSED)) is Transition.PAUSED
    t.apply(ev(K.UNKNOWN))
    assert t.apply(ev(K.IDLE)) is Transition.LOST


def test_an_unknown_print_met_at_start_is_a_new_print_once_it_runs() -> None:
    t = PrintTracker()
    t.apply(ev(K.CONNECTED))
    t.apply(ev(K.UNKNOWN, file="found.gcode"))
    assert t.state is PrintState.UNKNOWN and t.file == "found.gcode"
    assert t.apply(ev(K.PRINT_STARTED, file="found.gcode")) is Transition.STARTED
    t2 = PrintTracker()
    t2.apply(ev(K.CONNECTED))
    t2.apply(ev(K.UNKNOWN, file="found.gcode"))
    assert t2.apply(ev(K.IDLE)) is None, "nothing the agent followed was lost"
    assert t2.state is PrintState.IDLE
