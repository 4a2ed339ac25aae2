"""One delivery attempt in a process of its own: `python -m agent.notify.send`.

Why a process: Apprise loads all of its ~190 service modules on first use, about 15 MB that the
agent would otherwise keep for good (its goal is under 60 MB on a Pi); and a process can be killed
at its deadline, where a thread stuck in a service's socket cannot. Notifications are rare, so a
second of start-up each time is cheap.

Protocol: stdin holds one JSON line (`urls`, and for a send `title`, `body`, `alert`, `timeout_s`,
`files`: name and size of each attachment) followed by the attachments' bytes; stdout gets one
JSON line back: `{"delivered": bool, "peak_rss_mb": float}` for a send (one URL),
`{"invalid": [index, ...]}` for a check (no title).
Apprise's own warnings (privacy-masked URLs) go to stderr: the parent takes the last as the reason.
URLs travel on stdin, never on the command line, where `ps` would show them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

from agent.notify.message import Message
from agent.notify.services import InvalidUrl, open_service


def send_request(url: str, message: Message, files: Mapping[str, bytes], timeout_s: float) -> bytes:
    head = {"urls": [url], "title": message.title, "body": message.body, "alert": message.alert}
    sizes = [[name, len(data)] for name, data in files.items()]
    return (
        json.dumps({**head, "timeout_s": timeout_s, "files": sizes}).encode()
        + b"\n"
        + b"".join(files.values())
    )


def check_request(urls: list[str]) -> bytes:
    return json.dumps({"urls": urls}).encode() + b"\n"


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    head, _, data = sys.stdin.buffer.read().partition(b"\n")
    request: dict[str, Any] = json.loads(head)
    urls: list[str] = request["urls"]
    if "title" not in request:
        print(json.dumps({"invalid": _invalid(urls)}), flush=True)
        return 0
    try:
        service = open_service(urls[0], float(request["timeout_s"]))
    except InvalidUrl as exc:
        print(exc, file=sys.stderr)
        delivered = False
    else:
        files, offset = {}, 0
        for name, size in request["files"]:
            files[name], offset = data[offset : offset + size], offset + size
        delivered = service.send(request["title"], request["body"], files, bool(request["alert"]))
    print(json.dumps({"delivered": delivered, "peak_rss_mb": _peak_rss_mb()}), flush=True)
    return 0


def _invalid(urls: list[str]) -> list[int]:
    invalid = []
    for index, url in enumerate(urls):
        try:
            open_service(url, 1.0)
        except InvalidUrl:
            invalid.append(index)
    return invalid


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
