"""The page's refusals, as real HTTP requests to the real agent in the simulated world."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_end_to_end import until
from web_harness import PASSWORD, page_agent

from agent.web.guard import cookie_name
from sim.world import SimWorld, sim_world

ROUTES_GET = [
    "/",
    "/live",
    "/history",
    "/history/1",
    "/health",
    "/static/app.js",
    "/api/session",
    "/api/stream",
    "/api/frame.jpg",
    "/api/live.jpg",
    "/api/history",
    "/api/history/1",
    "/api/history/1/report.png",
    "/api/history/1/frame/1.jpg",
    "/api/health",
    "/api/framing",
]
ROUTES_POST = [
    "/api/command/pause",
    "/api/command/resume",
    "/api/command/monitoring",
    "/api/notify-test",
    "/api/framing",
    "/api/history/1/label",
    "/logout",
]
NOTIFY_URL = "json://127.0.0.1:9/hook-token-s3cr3t"


@pytest.fixture
def world() -> Iterator[SimWorld]:
    with sim_world(
        file="cube.gcode",
        failure_at=0.3,
        print_duration_s=60.0,
        interval_s=1,
        heat_duration_s=0.3,
        frame_size=(320, 240),
        broker=None,
    ) as made:
        yield made


async def test_every_route_without_a_session_is_refused(world: SimWorld, tmp_path: Path) -> None:
    async with page_agent(world, tmp_path) as pa, pa.client() as client:
        for path in ROUTES_GET:
            answer = await client.get(path)
            expected = 401 if path.startswith("/api/") else 303
            assert answer.status_code == expected, path
            assert PASSWORD not in answer.text
        for path in ROUTES_POST:
            answer = await client.post(path, json={}, headers={"Origin": pa.base})
            assert answer.status_code == 401, path
        # The login page and its style are all a stranger gets.
        assert (await client.get("/login")).status_code == 200
        async with pa.client(cookies={cookie_name("web"): "9999999999.abc.0123"}) as forged:
            assert (await forged.get("/api/session")).status_code == 401


async def test_state_changes_need_the_csrf_token_and_this_origin(world: SimWorld, tmp_path: Path) -> None:
    async with page_agent(world, tmp_path) as pa:
        client, csrf = await pa.logged_in()
        async with contextlib.aclosing(client):
            url = "/api/command/monitoring"
            body = {"payload": "OFF"}
            no_token = await client.post(url, json=body, headers={"Origin": pa.base})
            assert no_token.status_code == 403 and "CSRF" in no_token.text
            wrong = await client.post(url, json=body, headers={"Origin": pa.base, "X-CSRF-Token": "0" * 64})
            assert wrong.status_code == 403
            foreign = await client.post(
                url, json=body, headers={"Origin": "http://evil.example", "X-CSRF-Token": csrf}
            )
            assert foreign.status_code == 403 and "Origin" in foreign.text
            no_origin = await client.post(url, json=body, headers={"X-CSRF-Token": csrf})
            assert no_origin.status_code == 403
            assert pa.agent.state.monitoring is True  # none of them reached the agent
            ok = await client.post(url, json=body, headers={"Origin": pa.base, "X-CSRF-Token": csrf})
            assert ok.status_code == 200 and ok.json()["result"] == "done"
            await until(pa.agent, lambda s: not s.monitoring)
            # A login from a foreign page (login CSRF) is refused too.
            login = await pa.client().post(
                "/login", data={"password": PASSWORD}, headers={"Origin": "http://evil.example"}
            )
            assert login.status_code == 403


async def test_a_foreign_host_is_refused_dns_rebinding(world: SimWorld, tmp_path: Path) -> None:
    async with page_agent(world, tmp_path) as pa:
        client, _ = await pa.logged_in()
        async with contextlib.aclosing(client):
            for host in ("evil.example", "attacker.example:80", "printer.evil.example"):
                answer = await client.get("/api/session", headers={"Host": host})
                assert answer.status_code == 421, host
            own = await client.get("/api/session", headers={"Host": f"localhost:{pa.page.port}"})
            assert own.is_success


async def test_a_burst_of_wrong_passwords_is_rate_limited(world: SimWorld, tmp_path: Path) -> None:
    async with page_agent(world, tmp_path) as pa, pa.client() as client:
        statuses = []
        for n in range(8):
            answer = await client.post("/login", data={"password": f"guess-{n}"}, headers={"Origin": pa.base})
            statuses.append(answer.status_code)
        assert statuses[:5] == [303] * 5 and set(statuses[5:]) == {429}
        # Even the right password waits now: a burst cannot find it.
        right = await client.post("/login", data={"password": PASSWORD}, headers={"Origin": pa.base})
        assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0


async def test_path_traversal_in_history_and_static_urls_finds_nothing(
    world: SimWorld, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    async with page_agent(world, tmp_path) as pa:
        client, _ = await pa.logged_in()
        async with contextlib.aclosing(client):
            for path in (
                "/static/../../settings.py",
                "/static/..%2F..%2Fsettings.py",
                "/static/%2e%2e/%2e%2e/app.py",
                "/api/history/1/frame/..%2F..%2Fsecret.txt",
                "/api/history/..%2Fsecret.txt/report.png",
                "/api/history/1/frame/1.jpg/../../../secret.txt",
                "/api/history/99999999999999999999",
            ):
                answer = await client.get(path)
                assert answer.status_code == 404, path
                assert "top secret" not in answer.text and "import" not in answer.text


async def test_an_oversized_body_is_refused(world: SimWorld, tmp_path: Path) -> None:
    async with page_agent(world, tmp_path) as pa:
        client, csrf = await pa.logged_in()
        async with contextlib.aclosing(client):
            headers = {"Origin": pa.base, "X-CSRF-Token": csrf, "Content-Type": "application/json"}
            body = b"{" + b" " * 100_000 + b"}"
            answer = await client.post("/api/command/pause", content=body, headers=headers)
            assert answer.status_code == 413


async def test_slow_and_idle_connections_are_cut_off_and_inspections_stay_on_schedule(
    world: SimWorld, tmp_path: Path
) -> None:
    from agent.web import listener

    async with page_agent(world, tmp_path) as pa:
        world.printer.panel_start("cube.gcode")
        await until(pa.agent, lambda s: s.score is not None)
        calls = len(world.service.calls)
        started = time.monotonic()
        # Idle sockets that never send a byte, and one that sends its headers a byte at a time.
        idle = [await asyncio.open_connection("127.0.0.1", pa.page.port) for _ in range(40)]
        reader, writer = await asyncio.open_connection("127.0.0.1", pa.page.port)
        assert pa.page.listener.open <= listener.MAX_CONNECTIONS
        for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.3)
            if reader.at_eof():
                break
        async with asyncio.timeout(listener.HEADERS_DEADLINE_S + 10):
            assert await reader.read() == b""  # cut off: no answer, the connection closed
            for r, _ in idle:
                assert await r.read() == b""
        # Meanwhile the print went on being inspected, about once a second.
        elapsed = time.monotonic() - started
        assert len(world.service.calls) - calls >= elapsed / 3, (len(world.service.calls) - calls, elapsed)
        for _, w in [*idle, (reader, writer)]:
            w.close()


async def test_no_secret_in_any_page_or_answer(world: SimWorld, tmp_path: Path) -> None:
    from agent.settings import SecretStr

    async with page_agent(world, tmp_path) as pa:
        pa.agent.settings.notify.urls = [SecretStr(NOTIFY_URL)]
        pa.agent.settings.mqtt.password = SecretStr("mqtt-pass-s3cr3t")
        world.printer.panel_start("cube.gcode")
        await until(pa.agent, lambda s: s.score is not None)
        client, csrf = await pa.logged_in()
        secrets = [PASSWORD, world.api_key, "hook-token-s3cr3t", "mqtt-pass-s3cr3t", csrf]
        async with contextlib.aclosing(client):
            seen = []
            for path in [p for p in ROUTES_GET if p != "/api/stream"] + ["/login", "/static/style.css"]:
                answer = await client.get(path)
                seen.append(answer.text if "image" not in answer.headers.get("content-type", "") else "")
            async with client.stream("GET", "/api/stream") as stream:
                seen.append((await anext(stream.aiter_text()))[:100_000])
        for text in seen:
            for secret in secrets[:4]:
                assert secret not in text
        assert any("********" in text for text in seen)  # the health page shows that they are set
        assert (await pa.client().get("/login")).headers["X-Frame-Options"] == "DENY"
        csp = (await pa.client().get("/login")).headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_password_command_shows_resets_and_hashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main
    from agent.web.login import check_password

    config = tmp_path / "layerguard.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[web]\nlisten = "127.0.0.1:8080"\n')
    assert main(["password", "--config", str(config)]) == 0
    first = capsys.readouterr().out.split("password: ")[1].split()[0]
    assert main(["password", "--config", str(config)]) == 0
    assert first in capsys.readouterr().out  # kept, not made again
    stored = tmp_path / "state" / "web-password"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert main(["password", "--config", str(config), "--reset"]) == 0
    second = capsys.readouterr().out.split("password: ")[1].split()[0]
    assert second != first and stored.read_text().strip() == second
    line = _hash_line(main, capsys)
    assert check_password("a-long-password", line) and not check_password("another", line)


def _hash_line(main: object, capsys: pytest.CaptureFixture[str]) -> str:
    import io
    import sys

    stdin, sys.stdin = sys.stdin, io.StringIO("a-long-password\n")
    try:
        assert main(["password", "--hash"]) == 0  # type: ignore[operator]
    finally:
        sys.stdin = stdin
    return capsys.readouterr().out.split('"')[1]


async def test_auth_none_opens_the_page_and_says_so_at_every_start(
    world: SimWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agent.web.server")
    async with page_agent(world, tmp_path, auth="none") as pa, pa.client() as client:
        assert (await client.get("/api/session")).json()["auth"] == "none"
        # Still refused: a foreign page's state change (Origin) and a foreign Host.
        foreign = await client.post("/api/command/pause", json={}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert (await client.get("/", headers={"Host": "evil.example"})).status_code == 421
    assert any("WITHOUT a login" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "web-password").exists()  # no password was made for nobody to use
