"""Every print's record: SQLite history, evidence frames, and the timeline picture drawn from them.

Nothing here imports matplotlib except `render`, which runs in a short-lived worker process, so
the agent's own memory stays small.
"""
