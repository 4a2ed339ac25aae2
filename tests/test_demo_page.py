"""`layerguard demo --keep-open`: the demo's page stays up with the address and password it
printed, until Ctrl-C, which ends the demo with exit 0."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import pytest


@pytest.mark.slow
def test_the_demo_keeps_its_page_open_until_ctrl_c() -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "agent", "demo", "--keep-open"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        found = None
        for line in demo.stdout:  # ends when the demo does: no line is waited for forever
            if found := re.search(r"The page: (http://\S+)  password: (\S+)", line):
                break
        assert found, "the demo never printed its page"
        base, password = found.group(1).rstrip("/"), found.group(2)
        with httpx.Client(base_url=base, timeout=20) as client:
            login = client.post("/login", data={"password": password}, headers={"Origin": base})
            assert login.status_code == 303 and login.headers["location"] == "/"
            state = client.get("/api/history").json()["prints"][0]
            assert state["file"] == "benchy.gcode" and state["outcome"] == "paused_by_agent"
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
