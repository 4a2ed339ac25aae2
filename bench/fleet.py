"""Figure 6, many agents: N `layerguard run` processes with distinct printer ids, each with its own
virtual printer, against one Mosquitto and one detection stand-in, all on this machine.

Processes rather than agents in one interpreter: on a farm each agent has a Pi of its own, and
one interpreter would put all of them behind one GIL and one event loop, which is a bottleneck
no farm has. Here the N processes share two cores, so the figures are an upper bound on what
contention does to the schedule. Prints start spread over one interval, as on a farm where they
start whenever someone presses the button; a window is missed when a Process call comes a whole
interval or more later than the service allowed.

`one_pi`: the same agents as the printers of one Pi (layerguard@<name>): one shared call count,
whose total must equal the sum of the agents' own counts; RSS per agent says what each costs.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from agent.assembly import USAGE_FILE
from agent.detection.pi_usage import PI_USAGE_FILE
from agent.store import JsonRecord
from bench import procstat
from bench.launch import API_KEY, AgentProcess, state_is, write_camera_frames
from bench.report import Goal, Row
from bench.slack import slack_by_context
from sim.broker import MosquittoBroker
from sim.gadget_service import GadgetStandIn
from sim.mqtt_probe import MqttProbe
from sim.virtual_printer import VirtualPrinter, default_gcode

FILE = "fleet.gcode"
INTERVAL_S = 5
NONE_MISSED = Goal("none", lambda median, low, high: high == 0)


def measure(broker: MosquittoBroker, agents: int, window_s: float, one_pi: bool = False) -> list[Row]:
    label = f"{agents} printer{'s' if agents > 1 else ''} on one Pi" if one_pi else f"{agents} agents"
    counts: list[int] = []  # one Pi: its shared count, then each agent's own, once all stopped
    processes: list[AgentProcess] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="layerguard-bench-")))
        stack.callback(lambda: counts.extend(_calls(tmp / "pi" / PI_USAGE_FILE, processes)))
        service = stack.enter_context(GadgetStandIn(api_key=API_KEY, interval=INTERVAL_S))
        probe = MqttProbe(broker.host, broker.port)
        stack.callback(probe.close)
        probe.subscribe("#")
        frames = write_camera_frames(tmp / "frames")
        printers = [
            stack.enter_context(
                VirtualPrinter(files={FILE: default_gcode()}, print_duration_s=3600, heat_duration_s=0.5)
            )
            for _ in range(agents)
        ]
        for index, printer in enumerate(printers):
            agent = AgentProcess(
                tmp / f"agent{index}",
                printer_id=f"fleet-{index}",
                printer_port=printer.port,
                camera=f"dir:{frames}",
                api_url=service.base_url,
                broker=broker,
                shared_state_dir=tmp / "pi" if one_pi else None,
            )
            stack.callback(agent.stop)
            processes.append(agent)
        stack.callback(lambda: [agent.terminate() for agent in processes])  # all at once, then wait
        for agent in processes:
            agent.wait_for_state(probe, state_is("print_state", "idle"), timeout_s=15 + agents)
        for printer in printers:
            printer.panel_start(FILE)
            time.sleep(INTERVAL_S / agents)  # pacing the starts, not waiting for anything
        _wait_first_calls(service, agents, timeout_s=30 + agents)

        probe.clear()
        before = [procstat.sample(agent.pid) for agent in processes]
        started = time.monotonic()
        time.sleep(window_s)  # the measuring window
        elapsed = time.monotonic() - started
        after = [procstat.sample(agent.pid) for agent in processes]
        messages = probe.messages()
        slack = [s for per_context in slack_by_context(service.calls).values() for s in per_context]
    per_second = Counter(int(m.timestamp - started) for m in messages if m.timestamp - started < int(elapsed))
    rates = [float(per_second.get(second, 0)) for second in range(int(elapsed))]
    kib_s = sum(len(m.payload) for m in messages) / elapsed / 1024
    missed = sum(1 for s in slack if s >= INTERVAL_S)
    cpu = [procstat.cpu_percent(b, a, elapsed) for b, a in zip(before, after, strict=True)]
    rss = [sample.rss_mb for sample in after]
    rows = [
        Row(
            f"{label}: broker messages/s",
            "msg/s",
            rates,
            note=f"per second of a {window_s:g} s window: mean {len(messages) / elapsed:.1f} msg/s, "
            f"{kib_s:.0f} KiB/s (snapshots are most of it)",
            digits=0,
        ),
        Row(
            f"{label}: schedule slack",
            "ms",
            [1000 * s for s in slack],
            note=f"all agents, {INTERVAL_S} s interval; below 0: the previous call reached the stand-in late",
            digits=0,
        ),
        Row(
            f"{label}: missed inspection windows",
            "",
            [float(missed)],
            NONE_MISSED,
            f"of {len(slack)} gaps between Process calls",
            digits=0,
        ),
        Row(f"{label}: CPU per agent", "% core", cpu, note=f"{INTERVAL_S} s interval", digits=2),
        Row(
            f"{label}: RSS per agent",
            "MB",
            rss,
            note=f"all agents: {sum(rss):.0f} MB RSS, {sum(cpu):.1f} % of one core",
        ),
    ]
    if one_pi:
        shared, own = counts[0], counts[1:]
        rows.append(
            Row(
                f"{label}: shared call count minus the sum of their own",
                "",
                [float(shared - sum(own))],
                NONE_MISSED,
                f"the Pi's count {shared}, the agents' own {' + '.join(map(str, own))}",
                digits=0,
            )
        )
    return rows


def _calls(pi_file: Path, agents: list[AgentProcess]) -> list[int]:
    """The Pi's shared count, then each agent's own (its gadget-usage.json)."""
    records = [JsonRecord(pi_file), *(JsonRecord(agent.state_dir / USAGE_FILE) for agent in agents)]
    return [int((record.load() or {}).get("calls", 0)) for record in records]


def _wait_first_calls(service: GadgetStandIn, agents: int, timeout_s: float) -> None:
    """Until every agent's context has made its first Process call."""
    deadline = time.monotonic() + timeout_s
    while (inspected := len(_inspecting_contexts(service))) < agents:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"only {inspected} of {agents} agents inspected within {timeout_s:g} s")
        service.wait_for_calls(len(service.calls) + 1, timeout=remaining)


def _inspecting_contexts(service: GadgetStandIn) -> set[str]:
    return {c.context_id for c in service.calls if c.endpoint == "process" and c.context_id is not None}
