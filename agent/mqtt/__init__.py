"""MQTT: the agent's state, events and snapshots out, commands in, Home Assistant discovery."""

from agent.mqtt.bridge import MqttBridge
from agent.mqtt.topics import COMMANDS, Topics

__all__ = ["COMMANDS", "MqttBridge", "Topics"]
