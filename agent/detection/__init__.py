"""The detection client: OctoEverywhere's Gadget API, one context per print."""
