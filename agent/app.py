"""The agent: wires printer, camera, detector, guard and MQTT on one event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agent import labels
from agent.commands import CommandDesk
from agent.detection.base import Detector
from agent.detection.context import PrintKey
from agent.detection.verdict import DetectionError, Verdict
from agent.guard import Guard
from agent.health import Heartbeat
from agent.lifecycle import PrintState, PrintTracker, Transition
from agent.monitor import InspectionSession
from agent.outputs import Outputs, Sink
from agent.settings import Settings
from agent.state import AgentState, event_payload, iso_now, to_iso
from agent.stillness import StillWatch
from hardware.camera.base import Camera, CameraError
from hardware.camera.motion import thumbnail
from hardware.printer.base import EventSink, PauseFailed, Printer
from hardware.printer.events import PrinterEvent, PrinterEventKind
from hardware.quiet_log import LastingCondition

log = logging.getLogger("agent")


StatePredicate = Callable[[AgentState], bool]
# How often a still print's scene is looked at (no upload) to see whether it moves again.
SCENE_PROBE_S = 10.0


class Agent:
    def __init__(
        self,
        settings: Settings,
        camera: Camera,
        detector: Detector,
        make_printer: Callable[[EventSink], Printer],
        sinks: list[Sink] | None = None,
    ) -> None:
        self.settings = settings
        self.camera = camera
        self.detector = detector
        self.printer = make_printer(self._on_printer_event)
        self.outputs = Outputs(sinks or ())  # MQTT, notifications, history: one stream
        self.tracker = PrintTracker()
        self.state = AgentState(
            api_calls_budget=detector.usage.budget or None, api_calls_budget_scope=detector.usage.scope
        )
        self._count_calls()
        self.heartbeat = Heartbeat()  # read by agent.health.supervise for the watchdog
        self.guard = Guard(settings.detection.action, settings.detection.resume_grace_s)
        self.motion = StillWatch()  # is the print still moving?
        self._scene_task: asyncio.Task[None] | None = None
        self._session: InspectionSession | None = None
        self._session_task: asyncio.Task[None] | None = None
        self._pausing = False
        self._resuming = False
        self._waiters: list[tuple[StatePredicate, asyncio.Future[None]]] = []
        self._published: dict[str, Any] | None = None
        # A broken camera or detection link is retried every few seconds for as long as it lasts.
        self._camera_trouble = LastingCondition(log, "Camera")
        self._detection_trouble = LastingCondition(log, "Detection")
        self.commands = CommandDesk(self)  # MQTT and the page: one path in, every command answered

    async def run(self) -> None:
        """Run until cancelled; on the way out, MQTT says `offline` and devices are released."""
        self.outputs.start(asyncio.get_running_loop())
        self._state_changed()
        try:
            await self.printer.run()
        finally:
            session = self._session_task
            scene = self._scene_task
            self._stop_session()
            await self.commands.close()
            await asyncio.gather(*(t for t in (session, scene) if t is not None), return_exceptions=True)
            await self.detector.aclose()
            await asyncio.to_thread(self.camera.close)
            await self.outputs.stop()

    async def wait_for(self, predicate: StatePredicate) -> None:
        """Wait until the published state satisfies `predicate`; bound it with asyncio.timeout()."""
        if predicate(self.state):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        await future

    # -- printer ---------------------------------------------------------------------------

    def _on_printer_event(self, event: PrinterEvent) -> None:
        if event.kind is PrinterEventKind.DISCONNECTED:
            log.warning("Printer link lost%s; reconnecting", f": {event.message}" if event.message else "")
        if event.kind is PrinterEventKind.HEATERS_OFF:
            log.warning("Long pause: %s", event.message)
            self._emit("heaters_off", message=event.message, file=self.tracker.file)
        if event.kind is PrinterEventKind.SILENT:
            log.warning("Printer silent: %s; print state unknown until it answers", event.message)
            self._emit("printer_silent", message=event.message, file=event.file)
        if event.kind is PrinterEventKind.RESPONDING:
            log.warning("Printer answers again")
            self._emit("printer_responding", file=event.file)
        self.detector.note_position(event.sd_position)  # what finds this print again after a restart
        self.motion.printer(event)
        was_waiting = self._waiting_for_heat()
        was_unseen = self.tracker.unseen_print
        transition = self.tracker.apply(event)
        if transition is not None or was_unseen != self.tracker.unseen_print:
            self.motion.restart()
        if self._waiting_for_heat() != was_waiting:
            log.info("Printer %s", "heating: inspections wait" if not was_waiting else "at temperature")
        self.state.print_state = self.tracker.state.value
        self.state.file = self.tracker.file
        self.state.progress = None if self.tracker.progress is None else round(self.tracker.progress, 1)
        if transition is not None:
            self._on_transition(transition, event)
        self._check_still()
        self._update_activity()
        self._state_changed()

    def _waiting_for_heat(self) -> bool:
        return self.tracker.in_print and self.tracker.heating

    def _on_transition(self, transition: Transition, event: PrinterEvent) -> None:
        extra: dict[str, Any] = {"file": self.tracker.file}
        if transition is Transition.STARTED:
            log.info("Print started: %s", self.tracker.file)
            self._begin_session(PrintKey(self.tracker.file, event.sd_size, event.sd_position))
        elif transition is Transition.PAUSED:
            log.info("Print paused")
            # A pause we did not send came from the printer: its panel, a runout, an M600.
            self.state.paused_by = None if self._pausing else "printer"
        elif transition is Transition.RESUMED:
            log.info("Print resumed")
            self.guard.note_resume(asyncio.get_running_loop().time())
        elif transition is Transition.ERROR:
            log.error("Printer error: %s", event.message)
            extra["message"] = event.message
            self._stop_session()
        else:
            log.info("Print %s", transition.value.removeprefix("print_"))  # finished, cancelled, lost
            self._stop_session()
        if transition in (Transition.FINISHED, Transition.CANCELLED, Transition.LOST, Transition.ERROR):
            self.detector.end_context()
        if transition is not Transition.PAUSED:
            self.state.paused_by = None
        self.state.pause_failed = False
        self._emit(transition.value, **extra)

    # -- inspections -----------------------------------------------------------------------

    def _begin_session(self, print_key: PrintKey) -> None:
        self._stop_session()
        self.guard.reset()
        self.state.alerts_muted = None
        self.state.clear_inspection()
        self.state.monitoring = True  # switching it off over MQTT holds for one print only
        self.state.detection = "starting"
        self.heartbeat.begin()
        self._session = InspectionSession(
            self.camera, self.detector, print_key, self._on_verdict, self._on_failure
        )
        self._session_task = asyncio.create_task(self._session.run(), name="inspection-session")

    def _stop_session(self) -> None:
        if self._session_task is not None:
            self._session_task.cancel()
        if self._scene_task is not None:
            self._scene_task.cancel()
        self.state.print_still = False
        self._session = self._session_task = None
        self.state.next_inspection = None
        self.heartbeat.finished()

    def _update_activity(self) -> None:
        if self._session is None:
            return
        # A print the link lost sight of (silent, unplugged) goes on from the SD card: keep
        # inspecting it, so a failure still reaches the user; a pause then reports pause_failed.
        active = (
            (self.tracker.state is PrintState.PRINTING or self.tracker.unseen_print)
            and self.state.monitoring
            and not self.tracker.heating
            and not self._pausing
            and not self.state.print_still
        )
        self._session.set_active(active)
        self.heartbeat.set_active(active)

    async def _on_verdict(self, verdict: Verdict, jpeg: bytes, next_at: float) -> None:
        s = self.state
        s.score, s.print_quality = verdict.score, verdict.print_quality
        s.warning, s.pause_suggested = verdict.warning, verdict.pause
        s.last_inspection, s.next_inspection = iso_now(), to_iso(next_at)
        self.heartbeat.scheduled(next_at)
        s.detection = s.camera = "ok"
        self._count_calls()
        self._camera_trouble.recovered()
        self._detection_trouble.recovered()
        log.info(
            "Inspection: score %d/100, quality %d/10%s%s; next in %.0f s (call %d this month)",
            verdict.score,
            verdict.print_quality,
            ", WARNING suggested" if verdict.warning else "",
            ", PAUSE suggested" if verdict.pause else "",
            verdict.next_interval_s,
            s.api_calls_month,
        )
        self.outputs.on_inspection(
            jpeg,
            {
                "at": s.last_inspection,
                "file": self.tracker.file,
                "progress": s.progress,
                "score": verdict.score,
                "print_quality": verdict.print_quality,
                "warning": verdict.warning,
                "pause_suggested": verdict.pause,
                "next_inspection": s.next_inspection,
            },
        )
        decision = self.guard.decide(verdict, asyncio.get_running_loop().time())
        s.alerts_muted = self.guard.muted  # a false alarm's quiet ends when the score climbs
        if decision.warn:
            log.warning("Failure warning: score %d", verdict.score)
            self._emit(
                "failure_warning",
                score=verdict.score,
                print_quality=verdict.print_quality,
                pause_suggested=verdict.pause,
                action=self.settings.detection.action,
            )
        self._state_changed()
        if decision.pause:
            await self._pause(by="agent", score=verdict.score)
        self.motion.frame(await asyncio.to_thread(thumbnail, jpeg))
        self._check_still()

    # -- a print that stopped moving (agent.stillness) --------------------------------------------

    def _check_still(self) -> None:
        """Stop inspections of an unseen print whose picture stands still; say once when a print
        the printer calls running stands still in position and picture."""
        still_s, stalled_s = self.settings.detection.still_after_s, self.settings.detection.stalled_after_s
        still = self.tracker.unseen_print and self.state.monitoring and self.motion.scene_still(still_s)
        if still != self.state.print_still:
            self.state.print_still = still
            if still:
                log.warning(
                    "Print still: the printer is out of reach and the picture has not moved for %.0f s;"
                    " inspections stop until either comes back",
                    still_s,
                )
                self._emit("print_still", file=self.tracker.file, still_for_s=still_s)
                if self._scene_task is None or self._scene_task.done():
                    self._scene_task = asyncio.create_task(self._watch_scene(), name="scene-watch")
            else:
                log.warning("Print no longer still: the printer or the picture came back")
            self._update_activity()
            self._state_changed()
        stalled = (
            self.tracker.state is PrintState.PRINTING
            and self._session is not None
            and self._session.active  # inspecting: the picture is known to stand still
            and not self.tracker.heating
            and not self._pausing
            and self.motion.printer_still(stalled_s)
            and self.motion.scene_still(stalled_s)
        )
        if stalled and not self.motion.stall_reported:
            self.motion.stall_reported = True
            log.warning(
                "Print stalled: printing, but neither position nor picture moved for %.0f s",
                stalled_s,
            )
            self._emit("print_stalled", file=self.tracker.file, still_for_s=stalled_s)

    async def _watch_scene(self) -> None:
        """While inspections are stopped for a still print, look (without paying) whether the
        scene moves again."""
        while self.state.print_still:
            await asyncio.sleep(min(SCENE_PROBE_S, self.settings.detection.still_after_s / 4))
            try:
                jpeg = await asyncio.to_thread(self.camera.capture)
            except CameraError:
                continue
            if self.motion.frame(await asyncio.to_thread(thumbnail, jpeg)):
                self._check_still()

    def _count_calls(self) -> None:
        usage = self.detector.usage
        self.state.api_calls_month, self.state.api_calls_month_pi = usage.calls, usage.pi_calls

    def _on_failure(self, exc: DetectionError | CameraError, next_at: float | None) -> None:
        self.state.next_inspection = to_iso(next_at)
        self._count_calls()
        if next_at is None or (isinstance(exc, DetectionError) and exc.stopped):
            self.heartbeat.finished()
        else:
            self.heartbeat.scheduled(next_at)
        if isinstance(exc, CameraError):
            self._camera_trouble.failed(str(exc))
            self.state.camera = f"error: {exc}"
        else:
            self._camera_trouble.recovered()  # it took the frame the service refused
            verb = "stopped" if exc.stopped else "retrying"
            if exc.stopped:
                log.error("Detection stopped: %s", exc)
            else:
                self._detection_trouble.failed(f"retrying: {exc}")
            self.state.detection = f"{verb}: {exc.error_type}"
            self._emit("detection_error", error_type=exc.error_type, message=exc.message, stopped=exc.stopped)
        self._state_changed()

    # -- pause and resume --------------------------------------------------------------------

    async def _pause(self, by: str, score: int | None = None) -> str | None:
        """Pause and wait for the printer's confirmation; the reason it failed, or None."""
        if self._pausing:
            return "a pause is already under way"
        self._pausing = True
        self._update_activity()
        log.warning("Pausing the print (%s)", "failure detected" if by == "agent" else "requested")
        try:
            await self.printer.pause()
        except PauseFailed as exc:
            log.error("Pause NOT confirmed: %s", exc)
            self.state.pause_failed = True
            self._emit("pause_failed", message=str(exc), by=by)
            return str(exc)
        else:
            log.warning("Pause confirmed by the printer")
            self.state.paused_by = by
            if by == "agent":
                self._emit("failure_paused", score=score, file=self.tracker.file)
            return None
        finally:
            self._pausing = False
            self._update_activity()
            self._state_changed()
            self.commands.printer_free()

    async def _resume(self) -> str | None:
        log.info("Resuming the print (requested)")
        self._resuming = True
        try:
            await self.printer.resume()
        except PauseFailed as exc:
            log.error("Resume NOT confirmed: %s", exc)
            self._emit("pause_failed", message=str(exc), by="user", resume=True)
            return str(exc)
        finally:
            self._resuming = False
            self.commands.printer_free()
        return None

    # -- commands (agent/commands.py decides what runs when; these are its CommandTarget) ----

    def on_command(self, name: str, payload: str, source: str = "mqtt") -> dict[str, Any]:
        """A command from any interface, on the event loop: its first answer (also published)."""
        return self.commands.submit(name, payload, source)

    @property
    def print_state(self) -> PrintState:
        return self.tracker.state

    @property
    def printer_busy(self) -> str | None:
        return "pause" if self._pausing else "resume" if self._resuming else None

    async def pause_print(self, by: str) -> str | None:
        return await self._pause(by=by)

    async def resume_print(self) -> str | None:
        return await self._resume()

    def set_monitoring(self, on: bool) -> None:
        self.state.monitoring = on
        self._update_activity()
        self._state_changed()

    def answer(self, payload: dict[str, Any]) -> None:
        self._emit("command_answer", **payload)

    @property
    def in_print(self) -> bool:
        return self.tracker.in_print

    def label_last_alert(self, label: str) -> bool:
        muted, resume = labels.apply_label(self.guard, self.tracker, self.state, label)
        self._emit(
            "alert_labelled",
            label=label,
            file=self.tracker.file,
            score=self.guard.episode_peak if muted else None,
            muted=muted,
            resumed=resume,
        )
        self._state_changed()
        return resume

    def snooze(self) -> None:
        labels.snooze(self.guard, self.state)
        self._emit("alerts_snoozed", file=self.tracker.file)
        self._state_changed()

    # -- publishing --------------------------------------------------------------------------

    def set_notify_status(self, status: str) -> None:
        """The notification sink's delivery health becomes the state's `notify` field."""
        self.state.notify = status
        self._state_changed()

    def _emit(self, event_type: str, **fields: Any) -> None:
        self.outputs.on_event(event_payload(event_type, **fields))

    def _state_changed(self) -> None:
        payload = self.state.as_payload()
        if payload != self._published:
            self._published = payload
            self.outputs.on_state(payload)
        for waiter in list(self._waiters):
            predicate, future = waiter
            if future.done():
                self._waiters.remove(waiter)
            elif predicate(self.state):
                future.set_result(None)
                self._waiters.remove(waiter)
