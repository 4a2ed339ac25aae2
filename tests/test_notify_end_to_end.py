"""Notifications over whole simulated prints: real pty, real HTTP, a webhook and an SMTP server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import test_end_to_end
from test_end_to_end import TIMING, print_until_paused, running, until

from agent.assembly import build_agent
from agent.notify.sink import RECORD_FILE, NotifySink
from agent.settings import HistorySection, NotifySection, Settings
from sim.loopback import free_port
from sim.mail_server import MailServer
from sim.webhook_server import WebhookServer
from sim.world import SimWorld

WARNING, PAUSED, REMINDER = "possible print failure", "print PAUSED, failure detected", "print still paused"
REMINDER_AFTER_S = 2.0
REPORT_PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)  # the bytes are passed through, never decoded
REMINDER_FILES = ["layerguard-report.png", "layerguard.jpg"]
world = test_end_to_end.world  # the same simulated print that fails, watched over MQTT too


def with_notify(settings: Settings, *urls: str, reminder_after_s: float = 0) -> Settings:
    """The history is off: its report would race the one these tests hand over (on_report)."""
    settings.notify = NotifySection(urls=list(urls), reminder_after_s=reminder_after_s)
    settings.history = HistorySection(enabled=False)
    return settings


def kinds(titles: list[str]) -> list[str]:
    return [title.removeprefix("e2e: ") for title in titles]


async def test_a_failing_print_notifies_warning_pause_and_one_reminder_with_the_frame(
    world: SimWorld, tmp_path: Path
) -> None:
    with WebhookServer() as hook, MailServer() as mail:
        settings = world.settings(tmp_path, printer_id="e2e")
        agent = build_agent(
            with_notify(settings, hook.url(), mail.url(), reminder_after_s=REMINDER_AFTER_S), timing=TIMING
        )
        sink = agent.outputs.find(NotifySink)
        assert isinstance(sink, NotifySink)
        async with running(agent):
            await print_until_paused(agent, world)
            sink.on_report(REPORT_PNG, "1")  # as the history sink does after a pause
            hooks = await asyncio.to_thread(hook.wait_for, 3, 60)
            mails = await asyncio.to_thread(mail.wait_for, 3, 60)
            assert sink.rules.reminder_at() is None  # the one reminder is spent: none is planned
            await asyncio.sleep(REMINDER_AFTER_S)  # waiting for something that must NOT happen
            assert agent.state.notify == "ok"
    assert len(hook.received) == 3 and len(mail.mails) == 3
    assert kinds([h.title for h in hooks]) == [WARNING, PAUSED, REMINDER]
    assert kinds([m.subject for m in mails]) == [WARNING, PAUSED, REMINDER]
    for received in (*hooks, *mails):
        assert received.attachments["layerguard.jpg"][:2] == b"\xff\xd8"
    # The reminder also carries the print's timeline picture; the alerts before it came too early.
    assert [sorted(h.attachments) for h in hooks] == [["layerguard.jpg"]] * 2 + [REMINDER_FILES]
    assert sorted(mails[2].attachments) == REMINDER_FILES
    assert hooks[2].attachments["layerguard-report.png"] == REPORT_PNG
    assert hooks[0].attachments != hooks[1].attachments  # each the frame that caused it
    assert hooks[1].body.startswith("benchy.gcode, ") and "failure score" in hooks[1].body
    assert mails[1].attachments == hooks[1].attachments


async def test_warn_pause_resume_restart_fail_again_is_one_per_episode_and_no_storm(
    world: SimWorld, tmp_path: Path
) -> None:
    """A dead service among the URLs neither delays the pauses nor stops the live one."""
    dead = f"json://127.0.0.1:{free_port()}/dead"
    with WebhookServer() as hook:
        settings = with_notify(world.settings(tmp_path, printer_id="e2e", resume_grace_s=0), hook.url(), dead)
        first = build_agent(settings, timing=TIMING)
        async with running(first):
            await print_until_paused(first, world)
            await asyncio.to_thread(hook.wait_for, 2, 60)
        # Restarted while paused: the same print is found again and nothing is told again.
        second = build_agent(settings, timing=TIMING)
        async with running(second):
            await until(second, lambda s: s.print_state in ("paused", "unknown"))
            assert len(hook.received) == 2
            world.printer.panel_resume()  # the user looked and resumed; the print fails again
            await until(second, lambda s: s.paused_by == "agent")
            received = await asyncio.to_thread(hook.wait_for, 4, 60)
            assert second.state.notify == "ok"  # the dead one is still being retried
    assert kinds([r.title for r in received]) == [WARNING, PAUSED, WARNING, PAUSED]
    record = json.loads((tmp_path / RECORD_FILE).read_text())
    assert record["sent"] == ["failure_warning", "failure_paused"] and record["file"] == "benchy.gcode"


async def test_nothing_is_sent_for_a_pause_the_user_made(world: SimWorld, tmp_path: Path) -> None:
    """And an invalid URL is reported in the state at start, while the valid one still works."""
    invalid = "bogus://example.com/sekrit"
    with WebhookServer() as hook:
        settings = world.settings(tmp_path, printer_id="e2e")
        settings = with_notify(settings, hook.url(), invalid, reminder_after_s=0.5)
        settings.notify.events.append("print_started")
        agent = build_agent(settings, timing=TIMING)
        async with running(agent):
            await until(agent, lambda s: s.notify == "error: bogus://example.com")
            await until(agent, lambda s: s.print_state == "idle")
            world.printer.panel_start("benchy.gcode")
            await until(agent, lambda s: s.print_state == "printing")
            agent.on_command("pause", "")
            await until(agent, lambda s: s.paused_by == "user")
            await asyncio.to_thread(hook.wait_for, 1, 60)
            await asyncio.sleep(1.0)  # twice reminder_after_s: no reminder may come
    assert kinds([r.title for r in hook.received]) == ["print started"]


def test_without_urls_apprise_is_never_imported() -> None:
    code = (
        "import sys, agent.app, agent.assembly, agent.cli\n"
        "from agent.settings import Settings\n"
        "assert not Settings().notify.enabled\n"
        "print('apprise' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
