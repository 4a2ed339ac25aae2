"""A webhook receiver on loopback, for Apprise's `json://` and `form://` notifications.

It keeps what arrived decoded: title, body and attachments (base64 in the JSON body for
`json://`, multipart file parts for `form://`). `delay_s` makes it a slow service, `status` a
refusing one.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType

from sim.loopback import Inbox, LoopbackHTTPServer
from sim.multipart import parse_form_data


@dataclass
class Received:
    path: str
    title: str
    body: str
    kind: str  # Apprise's notification type (info, failure, ...)
    attachments: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes


class WebhookServer:
    def __init__(self, delay_s: float = 0.0, status: int = 200) -> None:
        self.delay_s, self.status = delay_s, status
        self.inbox: Inbox[Received] = Inbox()
        self.received = self.inbox.items
        self.wait_for = self.inbox.wait_for
        self.requests = 0  # including refused and abandoned ones
        self._counting = threading.Lock()
        self._server = LoopbackHTTPServer(self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-webhook", daemon=True)

    @property
    def port(self) -> int:
        return self._server.port

    def url(self, scheme: str = "json", path: str = "/hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner._counting:
                    owner.requests += 1
                time.sleep(owner.delay_s)  # a slow service: the client gives up first
                if owner.status != 200:
                    self.send_error(owner.status)
                    return
                owner.inbox.add(_decode(self.path, self.headers.get("Content-Type", ""), data))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read what arrived, not the access log."""

        return Handler


def _decode(path: str, content_type: str, data: bytes) -> Received:
    if content_type.startswith("application/json"):
        payload = json.loads(data)
        files = {a["filename"]: base64.b64decode(a["base64"]) for a in payload.get("attachments", [])}
        return Received(path, payload["title"], payload["message"], payload["type"], files)
    parts = parse_form_data(content_type, data)
    fields = {p.name: p.data.decode() for p in parts if p.filename is None}
    files = {p.filename: p.data for p in parts if p.filename is not None}
    return Received(path, fields["title"], fields["message"], fields["type"], files)
