"""Home Assistant itself, reading LayerGuard's MQTT discovery and states: run by
tests/test_home_assistant.py in a separate virtual environment (`.venv-ha*`, made by
`scripts/setup.sh --for-tests`) that has `homeassistant` installed.

Boots a real Home Assistant (its own bootstrap, an empty configuration), adds the MQTT
integration pointed at the test suite's Mosquitto, publishes the plan's discovery configs and then
each scenario's messages through Home Assistant's own MQTT client, and after each scenario
reports every LayerGuard entity's state. Every warning Home Assistant logs is reported too.

Usage: python ha_harness.py PLAN.json  ->  one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

SYNC_TOPIC = "layerguard-harness/sync"
# A deadline for what Home Assistant does next: costs nothing when it comes, so sized for a loaded
# 2-core machine where three releases boot beside the rest of the suite.
WAIT_S = 60.0


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


async def main(plan: dict[str, Any]) -> dict[str, Any]:
    from homeassistant import bootstrap, config_entries, core, loader
    from homeassistant.auth import auth_manager_from_config
    from homeassistant.components import mqtt
    from homeassistant.config_entries import ConfigEntry
    from homeassistant.const import __version__ as ha_version
    from homeassistant.helpers import entity_registry
    from homeassistant.setup import async_setup_component

    host, port = plan["broker"]
    collect = Collect()
    logging.getLogger().addHandler(collect)
    with tempfile.TemporaryDirectory() as config_dir:
        # The core and the MQTT integration only: what Home Assistant's own tests set up.
        await asyncio.to_thread(Path(config_dir, "configuration.yaml").write_text, "")  # MQTT reads it
        hass = core.HomeAssistant(config_dir)
        hass.config_entries = config_entries.ConfigEntries(hass, {})
        loader.async_setup(hass)
        if hasattr(bootstrap, "async_load_base_functionality"):  # 2024.2 on
            await bootstrap.async_load_base_functionality(hass)
        else:
            await bootstrap.load_registries(hass)
            await hass.config_entries.async_initialize()
        hass.auth = await auth_manager_from_config(hass, [], [])
        assert await async_setup_component(hass, "homeassistant", {})
        # MQTT needs `http`: on loopback, on a port the test chose.
        http = {"server_host": "127.0.0.1", "server_port": plan["http_port"]}
        assert await async_setup_component(hass, "http", {"http": http})
        await hass.async_start()

        fields = inspect.signature(ConfigEntry).parameters
        extra = {
            name: value
            for name, value in (("discovery_keys", {}), ("subentries_data", None))
            if name in fields
        }
        entry = ConfigEntry(
            version=1,
            minor_version=1,
            domain="mqtt",
            title="test broker",
            data={"broker": host, "port": port, "discovery": True},
            source="user",
            options={},
            unique_id=None,
            **extra,
        )
        await hass.config_entries.async_add(entry)
        async with asyncio.timeout(WAIT_S):
            assert await mqtt.async_wait_for_mqtt_client(hass), "MQTT did not connect"

        synced: asyncio.Queue[str] = asyncio.Queue()

        async def on_sync(message: Any) -> None:
            synced.put_nowait(message.payload)

        async def subscribed(topic: str) -> None:
            """Subscribe `topic` and return once it works. Home Assistant sends subscriptions in
            batches, in order, after a short debounce: when this one works, so does every
            subscription asked for before it."""
            await mqtt.async_subscribe(hass, topic, on_sync)
            async with asyncio.timeout(WAIT_S):
                while synced.empty():
                    await mqtt.async_publish(hass, topic, "hello", qos=0, retain=False)
                    await asyncio.sleep(0.2)
            while not synced.empty():
                synced.get_nowait()

        await subscribed(SYNC_TOPIC)

        async def publish_all(messages: list[list[Any]], marker: str) -> None:
            for topic, payload, retain in messages:
                await mqtt.async_publish(hass, topic, payload, qos=0, retain=retain)
            await mqtt.async_publish(hass, SYNC_TOPIC, marker, qos=0, retain=False)
            async with asyncio.timeout(WAIT_S):
                while await synced.get() != marker:
                    pass
            await hass.async_block_till_done()

        registry = entity_registry.async_get(hass)
        await publish_all(plan["discovery"], "discovery")
        entities: dict[str, str] = {}
        async with asyncio.timeout(WAIT_S):
            while len(entities) < len(plan["unique_ids"]):
                for platform, unique_id, _ in plan["unique_ids"]:
                    if entity_id := registry.async_get_entity_id(platform, "mqtt", unique_id):
                        entities[unique_id] = entity_id
                await asyncio.sleep(0.05)
            # Subscribed once the retained `online` made them available (those that depend only on it).
            plain = [entities[unique_id] for _, unique_id, plain in plan["unique_ids"] if plain]
            while any(  # noqa: ASYNC110 (polling Home Assistant's state machine, bounded by the timeout)
                hass.states.get(e) is None or hass.states.get(e).state == "unavailable" for e in plain
            ):
                await asyncio.sleep(0.05)
        await hass.async_block_till_done()  # every entity has asked for its topics
        await subscribed(f"{SYNC_TOPIC}/ready")
        result: dict[str, Any] = {"version": ha_version, "entities": entities, "scenarios": {}}
        for scenario in plan["scenarios"]:
            await publish_all(scenario["messages"], scenario["name"])
            states = {}
            for unique_id, entity_id in entities.items():
                state = hass.states.get(entity_id)
                states[unique_id] = None if state is None else {"state": state.state, **state.attributes}
            result["scenarios"][scenario["name"]] = states
        result["log"] = collect.lines
        with contextlib.suppress(Exception):
            await hass.async_stop()
        return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # for a failing run
    plan = json.loads(Path(sys.argv[1]).read_text())
    outcome = asyncio.run(main(plan))
    print(json.dumps(outcome, default=str))
