"""Unit tests for the pure parts of the printer link: framing, line kinds, reports, dialects, follower."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hardware.printer.dialects import (
    KLIPPER,
    MARLIN,
    PRUSA,
    Dialect,
    choose_dialect,
    detect_dialect,
    parse_capability,
    parse_firmware_info,
)
from hardware.printer.events import PrinterEventKind as K
from hardware.printer.events import PrintState
from hardware.printer.evidence import PauseEvidence
from hardware.printer.follower import PrintFollower
from hardware.printer.protocol import LineKind, LineNumbers, checksum, classify, frame, resend_number
from hardware.printer.reports import (
    Busy,
    CurrentFile,
    DonePrinting,
    FatalError,
    FileOpened,
    HostAction,
    JobTime,
    NotSdPrinting,
    PausedForUser,
    PercentDone,
    PrinterReset,
    SdPaused,
    SdProgress,
    Temperatures,
    parse_report,
)
from hardware.printer.transport import LineSplitter

# --- framing ---------------------------------------------------------------------------------


def test_frame_matches_known_lines() -> None:
    # Lines as OctoPrint and Pronterface send them to Marlin.
    assert frame(0, "M110 N0") == "N0 M110 N0*125"
    assert frame(1, "M115") == "N1 M115*39"


def test_checksum_is_xor_of_payload() -> None:
    assert checksum("N1 M115") == 39
    assert checksum("") == 0


def test_line_numbers_count_from_reset_and_resend_only_the_line_in_flight() -> None:
    numbers = LineNumbers()
    assert numbers.frame("M110 N0").startswith("N0 ")
    assert numbers.frame("M27") == frame(1, "M27")
    second = numbers.frame("M105")
    assert numbers.resend(2) == [second]
    assert numbers.resend(1) == [frame(1, "M27"), second]  # a swallowed line, and all after it
    for command in ("M105", "M105", "M105", "M105"):
        numbers.frame(command)
    assert numbers.resend(1) is None  # too old: the firmware lost track; renumber, never replay
    numbers.reset()
    assert numbers.frame("M110 N0") == "N0 M110 N0*125"


# --- line kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("ok", LineKind.OK),
        ("ok T:20.0 /0.0 B:20.0 /0.0 @:0 B@:0", LineKind.OK),
        ("ok N12 P15 B3", LineKind.OK),
        ("Resend: 5", LineKind.RESEND),
        ("rs N5", LineKind.RESEND),
        ("echo:busy: processing", LineKind.BUSY),
        ("echo:busy: paused for user", LineKind.BUSY),
        ("Error:checksum mismatch, Last Line: 4", LineKind.LINE_ERROR),
        ("Error:Line Number is not Last Line Number+1, Last Line: 3", LineKind.LINE_ERROR),
        ("Error:No Checksum with line number, Last Line: 3", LineKind.LINE_ERROR),
        ("Error:Printer halted. kill() called!", LineKind.ERROR),
        ("!! Lost communication with MCU 'mcu'", LineKind.ERROR),
        ("okay then", LineKind.OTHER),
        ('echo:Unknown command: "M999"', LineKind.OTHER),
    ],
)
def test_classify(line: str, kind: LineKind) -> None:
    assert classify(line) is kind


def test_resend_number() -> None:
    assert resend_number("Resend: 17") == 17
    assert resend_number("rs N3") == 3
    assert resend_number("ok") is None


def test_line_splitter_tolerates_garbage_and_partial_lines() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"\x00\xff\xfestart\r\nok T:2") == ["\ufffd\ufffdstart"]
    assert splitter.feed(b"x" * 5000) == ["ok T:2" + "x" * 5000]  # no newline in sight: flushed


def test_line_splitter_joins_partial_reads() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"ok T:2") == []
    assert splitter.feed(b"1.0 /0.0\n\nok\n") == ["ok T:21.0 /0.0", "ok"]


# --- reports ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "report"),
    [
        ("File opened: BENCHY~1.GCO Size: 1234567", FileOpened("BENCHY~1.GCO", 1234567)),
        ("File opened:benchy.gcode Size:42", FileOpened("benchy.gcode", 42)),
        ("Current file: BENCHY~1.GCO", CurrentFile("BENCHY~1.GCO")),
        ("Current file: (no file)", CurrentFile(None)),
        ("SD printing byte 2048/1234567", SdProgress(2048, 1234567)),
        ("Not SD printing", NotSdPrinting()),
        ("SD print paused", SdPaused()),
        ("Done printing file", DonePrinting()),
        ("//action:paused", HostAction("paused")),
        ("// action:cancel", HostAction("cancel")),
        ("start", PrinterReset()),
        ("Error:Printer halted. kill() called!", FatalError("Printer halted. kill() called!")),
        (
            "Error:Thermal Runaway, system stopped! Heater_ID: 0",
            FatalError("Thermal Runaway, system stopped! Heater_ID: 0"),
        ),
        (
            "Error:MAXTEMP triggered, system stopped! Heater_ID: E0",
            FatalError("MAXTEMP triggered, system stopped! Heater_ID: E0"),
        ),
        ("Error: MINTEMP triggered", FatalError("MINTEMP triggered")),
        ("!! Lost communication with MCU 'mcu'", FatalError("Lost communication with MCU 'mcu'")),
        ("T:205.0 /205.0 B:60.0 /60.0 @:127 B@:0", Temperatures(205.0, 205.0, 60.0, 60.0)),
        ("ok T:21.3 /0.0 B:20.9 /0.0 T0:21.3 /0.0 @:0 B@:0", Temperatures(21.3, 0.0, 20.9, 0.0)),
        (" T0:200.0 /210.0 @:0", Temperatures(200.0, 210.0)),
        ("NORMAL MODE: Percent done: 35; print time remaining in mins: 12", PercentDone(35.0)),
        ("// Klipper state: Ready", PrinterReset()),
        ("Not SD printing.", NotSdPrinting()),
        ("echo:busy: paused for user", PausedForUser()),
        ("echo:busy: paused for input", PausedForUser()),
        ("echo:busy: processing", Busy()),
        ("echo:Print time: 1h 2m 3s", JobTime(3723)),
        ("echo:Print time: 45s", JobTime(45)),
        ("echo:Print time: 1d 0h 0m 1s", JobTime(86401)),
        ("//action:pause", HostAction("pause")),
        ("T:21.30/ 60.00 B:20.00/ 0.00", Temperatures(21.3, 60.0, 20.0, 0.0)),
        ("Error:checksum mismatch, Last Line: 4", None),
        ("ok", None),
        ("echo:SD card ok", None),
    ],
)
def test_parse_report(line: str, report: object) -> None:
    assert parse_report(line) == report


def test_temperatures_as_dict_uses_event_keys() -> None:
    assert Temperatures(200.0, 205.0, 59.0, 60.0).as_dict() == {
        "hotend": 200.0,
        "hotend_target": 205.0,
        "bed": 59.0,
        "bed_target": 60.0,
    }


# --- dialects --------------------------------------------------------------------------------

MARLIN_M115 = [
    "FIRMWARE_NAME:Marlin 2.1.2.1 (Github) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin "
    "PROTOCOL_VERSION:1.0 MACHINE_TYPE:Ender-3 V2 EXTRUDER_COUNT:1 UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff",
    "Cap:SERIAL_XON_XOFF:0",
    "Cap:AUTOREPORT_TEMP:1",
    "Cap:AUTOREPORT_SD_STATUS:1",
    "Cap:HOST_ACTION_COMMANDS:0",
    "ok",
]
PRUSA_M115 = [
    "FIRMWARE_NAME:Prusa-Firmware 3.13.2 based on Marlin "
    "FIRMWARE_URL:https://github.com/prusa3d/Prusa-Firmware "
    "PROTOCOL_VERSION:1.0 MACHINE_TYPE:Prusa i3 MK3S EXTRUDER_COUNT:1 UUID:00000000-0000-0000-0000-0000",
    "Cap:AUTOREPORT_TEMP:1",
    "ok",
]
KLIPPER_M115 = ["ok FIRMWARE_NAME:Klipper FIRMWARE_VERSION:v0.12.0-85-gd785b396"]


def test_parse_firmware_info_reads_name_and_capabilities() -> None:
    info = parse_firmware_info(MARLIN_M115)
    assert info.name == "Marlin 2.1.2.1 (Github)"
    assert info.has("AUTOREPORT_SD_STATUS")
    assert not info.has("HOST_ACTION_COMMANDS")
    assert not info.has("EMERGENCY_PARSER")  # not reported at all


def test_parse_capability() -> None:
    assert parse_capability("Cap:EMERGENCY_PARSER:1") == ("EMERGENCY_PARSER", True)
    assert parse_capability("Cap:EEPROM:0") == ("EEPROM", False)
    assert parse_capability("ok") is None


@pytest.mark.parametrize(
    ("reply", "dialect"),
    [(MARLIN_M115, MARLIN), (PRUSA_M115, PRUSA), (KLIPPER_M115, KLIPPER), (["ok"], MARLIN)],
)
def test_detect_dialect(reply: list[str], dialect: object) -> None:
    assert detect_dialect(parse_firmware_info(reply).name) == dialect


def test_dialect_setting_overrides_detection() -> None:
    assert choose_dialect("klipper", "Marlin 2.1") is KLIPPER
    assert choose_dialect("auto", "Prusa-Firmware 3.13") is PRUSA
    with pytest.raises(ValueError, match="unknown printer dialect"):
        choose_dialect("repetier", "Marlin")


def test_dialect_commands() -> None:
    assert (MARLIN.pause, MARLIN.resume) == ("M25", "M24")
    assert (PRUSA.pause, PRUSA.resume) == ("M601", "M602")
    assert (KLIPPER.pause, KLIPPER.resume) == ("PAUSE", "RESUME")


# --- follower --------------------------------------------------------------------------------


def connected(
    dialect: Dialect = MARLIN, clock: Callable[[], float] | None = None, **kw: float
) -> PrintFollower:
    follower = PrintFollower(dialect, clock=clock or (lambda: 0.0), **kw)
    follower.connected("test firmware", dialect)
    return follower


def kinds(follower: PrintFollower, *reports: object) -> list[K]:
    return [event.kind for report in reports for event in follower.apply(report)]  # type: ignore[arg-type]


def test_follower_reports_each_transition_once() -> None:
    now = [0.0]
    follower = connected(clock=lambda: now[0])
    assert kinds(follower, FileOpened("a.gcode", 100)) == []
    assert kinds(follower, SdProgress(10, 100), SdProgress(10, 100)) == [K.PRINT_STARTED, K.PROGRESS]
    assert kinds(follower, SdProgress(50, 100)) == [K.PROGRESS]
    assert kinds(follower, HostAction("pause")) == [], "a request to the host, not a confirmation"
    assert kinds(follower, HostAction("paused"), NotSdPrinting()) == [K.PAUSED]
    assert kinds(follower, HostAction("resume"), SdProgress(50, 100)) == [], "a request; the byte stands"
    assert kinds(follower, SdProgress(60, 100)) == [K.RESUMED, K.PROGRESS]
    assert kinds(follower, DonePrinting(), DonePrinting()) == [K.FINISHED]
    assert follower.state is PrintState.IDLE


def test_events_carry_the_state_after_them_and_end_events_name_the_print() -> None:
    follower = connected()
    follower.apply(FileOpened("a.gcode", 200))
    started, progress = follower.apply(SdProgress(50, 200))
    assert (started.state, started.file, started.found) == (PrintState.PRINTING, "a.gcode", False)
    assert (progress.progress, progress.sd_position, progress.sd_size) == (25.0, 50, 200)
    (finished,) = follower.apply(DonePrinting())
    assert (finished.state, finished.file, finished.progress) == (PrintState.IDLE, "a.gcode", 25.0)


def test_marlin_2_1_1_not_sd_printing_is_resolved_by_the_open_file() -> None:
    follower = connected()
    kinds(follower, FileOpened("a.gcode", 100), SdProgress(10, 100))
    assert kinds(follower, NotSdPrinting()) == []
    assert follower.queries() == ["M27 C", "M31"]
    assert kinds(follower, CurrentFile("a.gcode")) == [K.PAUSED]
    assert kinds(follower, SdProgress(10, 100)) == []  # frozen position: still paused
    assert kinds(follower, SdProgress(11, 100)) == [K.RESUMED, K.PROGRESS]
    kinds(follower, NotSdPrinting())
    assert kinds(follower, CurrentFile(None)) == [K.CANCELLED]


def test_marlin_2_1_2_panel_pause_is_proven_by_the_job_timer_not_by_the_byte() -> None:
    now = [0.0]
    follower = connected(clock=lambda: now[0], window_s=0.5)
    kinds(follower, FileOpened("a.gcode", 100), SdProgress(10, 100))
    assert kinds(follower, SdProgress(10, 100)) == []  # a slow move, or a pause?
    assert follower.queries() == ["M31"]
    assert kinds(follower, JobTime(100)) == []
    now[0] = 0.9
    assert kinds(follower, JobTime(100)) == [], "M31 counts seconds: under 1 s proves nothing"
    now[0] = 1.3
    assert kinds(follower, JobTime(101)) == [], "the timer runs: printing (a long move)"
    now[0] = 1.5
    # A busy line says the printer is moving (agent.stillness hears it), nothing about a pause.
    assert kinds(follower, Busy(), JobTime(101)) == [K.BUSY]
    now[0] = 2.8
    assert kinds(follower, JobTime(101)) == [K.PAUSED]
    assert follower.queries() == []


def test_prusa_paused_report_and_found_paused_print() -> None:
    follower = connected(PRUSA)
    follower.apply(FileOpened("a.gcode", 100))
    assert kinds(follower, SdPaused()) == [K.PRINT_STARTED, K.PAUSED]


def test_fatal_error_and_reset_end_the_print() -> None:
    follower = connected()
    kinds(follower, FileOpened("a.gcode", 100), SdProgress(10, 100))
    halted = FatalError("Printer halted. kill() called!")
    assert kinds(follower, halted, halted) == [K.ERROR]
    assert follower.state is PrintState.ERROR
    assert kinds(follower, NotSdPrinting()) == [] and follower.state is PrintState.ERROR
    assert K.PRINT_STARTED in kinds(follower, SdProgress(10, 100), SdProgress(12, 100))
    assert kinds(follower, PrinterReset()) == [K.ERROR]
    assert kinds(follower, PrinterReset()) == []  # a reset while idle is no news


def test_temperature_only_on_change() -> None:
    follower = connected()
    reading = Temperatures(20.0, 0.0, 20.0, 0.0)
    assert kinds(follower, reading, reading) == [K.TEMPERATURE]
    assert kinds(follower, Temperatures(25.0, 205.0, 20.0, 60.0)) == [K.TEMPERATURE]
    assert follower.heating


def test_klipper_frozen_position_is_a_pause_once_it_lasts() -> None:
    now = [0.0]
    follower = connected(KLIPPER, clock=lambda: now[0], stall_s=10.0)
    follower.apply(FileOpened("a.gcode", 100))
    assert kinds(follower, SdProgress(10, 100)) == [K.PRINT_STARTED, K.PROGRESS]
    assert kinds(follower, SdProgress(10, 100)) == []
    now[0] = 9.0
    assert kinds(follower, SdProgress(10, 100)) == []  # a long move, not yet a pause
    follower.apply(Temperatures(150.0, 205.0))
    now[0] = 30.0
    assert kinds(follower, SdProgress(10, 100)) == []  # heating (an M109 in the file) is no pause
    follower.apply(Temperatures(205.0, 205.0))
    kinds(follower, SdProgress(10, 100))
    now[0] = 40.0
    assert kinds(follower, SdProgress(10, 100)) == [K.PAUSED]
    assert kinds(follower, SdProgress(12, 100)) == [K.RESUMED, K.PROGRESS]


def test_klipper_not_printing_is_a_stop_marlin_needs_the_file() -> None:
    klipper = connected(KLIPPER)
    kinds(klipper, FileOpened("a.gcode", 100), SdProgress(10, 100))
    assert kinds(klipper, NotSdPrinting()) == [K.CANCELLED]
    marlin = connected(MARLIN)
    kinds(marlin, FileOpened("a.gcode", 100), SdProgress(10, 100))
    assert kinds(marlin, NotSdPrinting()) == [] and marlin.needs_file_check
    assert [e.kind for e in marlin.file_check_unanswered()] == [K.UNKNOWN]
    (lost,) = marlin.apply(CurrentFile(None))
    assert (lost.kind, lost.file, lost.state) == (K.LOST, "a.gcode", PrintState.IDLE)


def test_an_idle_printer_at_connect_says_idle_and_nothing_else() -> None:
    # OctoPrint's virtual printer answers `M27 C` like `M27`: `Not SD printing`, no `Current file`.
    follower = connected(MARLIN)
    assert follower.state is PrintState.IDLE
    assert kinds(follower, NotSdPrinting()) == [] and follower.needs_file_check
    assert kinds(follower, NotSdPrinting()) == []
    assert follower.file_check_unanswered() == []
    assert kinds(follower, NotSdPrinting(), CurrentFile(None)) == []
    assert follower.state is PrintState.IDLE
    assert kinds(follower, FileOpened("b.gcode", 100), SdProgress(1, 100)) == [K.PRINT_STARTED, K.PROGRESS]
    prusa = connected(PRUSA)
    assert kinds(prusa, NotSdPrinting()) == [] and prusa.state is PrintState.IDLE


def test_a_print_found_at_connect_is_announced_once_its_byte_moves() -> None:
    follower = connected(MARLIN)
    (unknown,) = follower.apply(SdProgress(10, 100))
    assert unknown.kind is K.UNKNOWN and unknown.state is PrintState.UNKNOWN
    assert kinds(follower, SdProgress(10, 100)) == []  # paused, or busy: not yet said
    started, _ = follower.apply(SdProgress(20, 100))
    assert (started.kind, started.found, started.sd_position, started.sd_size) == (
        K.PRINT_STARTED,
        True,
        20,
        100,
    )
    found = connected(MARLIN)
    kinds(found, SdProgress(10, 100))
    assert kinds(found, NotSdPrinting(), CurrentFile(None)) == [K.IDLE], "never seen running: no end event"


def test_a_print_held_over_a_disconnect_goes_on_or_is_lost() -> None:
    follower = connected(MARLIN)
    kinds(follower, FileOpened("a.gcode", 100), SdProgress(10, 100))
    (gone,) = follower.disconnected("unplugged")
    assert (gone.state, gone.unseen_print, gone.file) == (PrintState.OFFLINE, True, "a.gcode")
    (back,) = follower.connected("fw", MARLIN)
    assert back.state is PrintState.UNKNOWN and not back.unseen_print
    assert kinds(follower, SdProgress(30, 100)) == [K.CONTINUED, K.PROGRESS]
    assert follower.state is PrintState.PRINTING
    follower.disconnected("unplugged")
    follower.connected("fw", MARLIN)
    assert kinds(follower, NotSdPrinting()) == [] and follower.needs_file_check
    assert kinds(follower, CurrentFile(None)) == [K.LOST]


def test_a_held_print_reported_before_the_handshake_ends_is_not_started_again() -> None:
    # The race behind a flaky test_unplug_and_replug: auto-reports arrive on the reopened port
    # before the link's handshake (M110, M115) is over and it says connected.
    follower = connected(MARLIN)
    kinds(follower, FileOpened("a.gcode", 100), SdProgress(10, 100))
    follower.disconnected("unplugged")
    assert kinds(follower, SdProgress(30, 100)) == [K.CONTINUED, K.PROGRESS]
    (back,) = follower.connected("fw", MARLIN)
    assert back.state is PrintState.PRINTING
    assert kinds(follower, SdProgress(40, 100)) == [K.PROGRESS], "the same print, not a new one"


def test_silence_makes_the_state_unknown_and_the_print_goes_on_when_it_answers() -> None:
    follower = connected(MARLIN)
    kinds(follower, FileOpened("a.gcode", 100), SdProgress(10, 100))
    (silent,) = follower.silent("nothing for 12 s")
    assert (silent.kind, silent.state, silent.unseen_print) == (K.SILENT, PrintState.UNKNOWN, True)
    assert follower.silent("again") == []
    assert [e.kind for e in follower.heard()] == [K.RESPONDING]
    assert kinds(follower, SdProgress(40, 100)) == [K.CONTINUED, K.PROGRESS]
    paused = connected(MARLIN)
    kinds(paused, FileOpened("a.gcode", 100), SdProgress(10, 100), HostAction("paused"))
    paused.silent("nothing")
    paused.heard()
    assert kinds(paused, SdProgress(10, 100)) == [K.CONTINUED] and paused.state is PrintState.PAUSED


def test_percent_done_wins_over_bytes_and_short_prints_are_seen() -> None:
    follower = connected(PRUSA)
    follower.apply(FileOpened("a.gcode", 100))
    assert kinds(follower, DonePrinting()) == [K.PRINT_STARTED, K.FINISHED]
    assert kinds(follower, DonePrinting()) == []  # no file opened since: no phantom print
    assert kinds(follower, PercentDone(0.0), SdProgress(50, 100)) == [K.PRINT_STARTED, K.PROGRESS]
    assert [e.progress for e in follower.apply(PercentDone(40.0))] == [40.0]


def test_one_fault_is_one_error() -> None:
    follower = connected()
    kinds(follower, FileOpened("a.gcode", 100), SdProgress(10, 100))
    runaway = FatalError("Thermal Runaway, system stopped!")
    assert kinds(follower, runaway, FatalError("Printer halted. kill() called!")) == [K.ERROR]
    kinds(follower, PrinterReset())
    assert kinds(follower, runaway) == [K.ERROR]


# --- evidence of a pause ---------------------------------------------------------------------


def evidence(dialect: Dialect, now: list[float], **kw: bool) -> PauseEvidence:
    return PauseEvidence(dialect.pause_evidence, 2.0, lambda: now[0], **kw)


def test_a_frozen_byte_proves_a_pause_only_after_the_drain_over_the_window() -> None:
    now = [0.0]
    seen = evidence(MARLIN, now)
    assert seen.note(SdProgress(10, 100)) is None
    now[0] = 5.0
    assert seen.note(SdProgress(10, 100)) is None, "before M400 the planner may just be full"
    assert seen.drained() is None
    assert seen.note(SdProgress(10, 100)) is None
    now[0] = 6.0
    assert seen.note(SdProgress(10, 100)) is None, "within the window"
    seen.note(Busy())  # executing something: a stall, not a pause
    now[0] = 7.5
    assert seen.note(SdProgress(10, 100)) is None
    seen.note(Temperatures(180.0, 205.0))  # heating: an M109 after the drain
    now[0] = 10.0
    assert seen.note(SdProgress(10, 100)) is None
    seen.note(Temperatures(205.0, 205.0))
    assert seen.note(SdProgress(10, 100)) is None
    now[0] = 12.0
    assert seen.note(SdProgress(10, 100)) == "SD byte 10 unchanged over 2.0 s"


def test_host_actions_and_busy_lines_as_evidence() -> None:
    now = [0.0]
    requested = evidence(MARLIN, now)
    assert requested.note(HostAction("pause")) is None and requested.drained() is None
    paused = evidence(MARLIN, now)
    assert paused.note(HostAction("paused")) is None, "printed before the head stops"
    assert paused.drained() == "//action:paused after the queue drained"
    parked = evidence(MARLIN, now)
    assert parked.note(PausedForUser()) == "echo:busy: paused for user"
    prusa = evidence(PRUSA, now, drained=True)
    assert prusa.note(SdProgress(10, 100)) is None
    now[0] = 9.0
    assert prusa.note(SdProgress(10, 100)) is None, "Prusa says paused in words; a byte is not its proof"
    assert prusa.note(SdPaused()) == "M27 says SD print paused"
    legacy = evidence(MARLIN, now, drained=True)
    assert legacy.note(CurrentFile("a.gcode")) is None
    assert legacy.note(NotSdPrinting()) is None and legacy.note(CurrentFile("a.gcode")) is not None
    klipper = evidence(KLIPPER, now, drained=True)
    klipper.note(JobTime(5))
    now[0] = 20.0
    assert klipper.note(JobTime(5)) is None, "Klipper has no M31"
