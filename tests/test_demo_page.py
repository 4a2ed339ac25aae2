"""`layerguard demo --keep-open`: the demo's page stays up with the address and password it
printed, until Ctrl-C or SIGTERM, which end the demo with exit 0."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading

import httpx
import pytest

# A stop ends the agent and the simulated world: about a second here, sized for a loaded machine.
STOP_S = 60


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop",
    [
        # Started as a shell starts a background job, with SIGINT ignored (a CI script did: the
        # demo never heard the Ctrl-C), and then given one.
        pytest.param(signal.SIGINT, id="ctrl-c-in-a-background-job"),
        pytest.param(signal.SIGTERM, id="sigterm"),  # docker stop, kill
    ],
)
def test_the_demo_keeps_its_page_open_until_stopped(stop: signal.Signals) -> None:
    # -X faulthandler: a demo that does not stop is ended with SIGABRT, which makes it print
    # where each of its threads was; that goes into the assertion's message.
    command = [sys.executable, "-X", "faulthandler", "-m", "agent", "demo", "--keep-open"]
    demo = subprocess.Popen(
        ["sh", "-c", "trap '' INT; exec \"$@\"", "sh", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    page = threading.Event()

    def read() -> None:  # all along: a demo whose pipe is full would block in its next log line
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if "The page: " in line:
                page.set()
        page.set()  # the demo ended without it

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        page.wait(timeout=300)  # the demo's own deadlines end it well before
        found = next(
            (m for line in lines if (m := re.search(r"The page: (http://\S+)  password: (\S+)", line))), None
        )
        assert found, f"the demo never printed its page: {''.join(lines)[-3000:]}"
        base, password = found.group(1).rstrip("/"), found.group(2)
        with httpx.Client(base_url=base, timeout=20) as client:
            login = client.post("/login", data={"password": password}, headers={"Origin": base})
            assert login.status_code == 303 and login.headers["location"] == "/"
            state = client.get("/api/history").json()["prints"][0]
            assert state["file"] == "benchy.gcode" and state["outcome"] == "paused_by_agent"
        demo.send_signal(stop)
        try:
            code = demo.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            demo.send_signal(signal.SIGABRT)
            demo.wait(timeout=30)
            reader.join(timeout=10)
            raise AssertionError(
                f"{stop.name} did not stop the demo in {STOP_S} s:\n{''.join(lines)[-6000:]}"
            ) from None
        assert code == 0, "".join(lines)[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
