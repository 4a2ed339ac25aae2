"""LayerGuard: the agent that watches a 3D print and pauses it when it fails."""

__version__ = "0.1.0"
