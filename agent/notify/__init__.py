"""Notifications to a person's phone or inbox through Apprise: once per thing that needs them.

Importing this package does not import Apprise; only opening a service does (agent.notify.services).
"""
