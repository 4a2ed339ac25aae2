"""An SMTP server on loopback (aiosmtpd, a dev dependency) that keeps the mails Apprise sends.

Plain SMTP without TLS or login: Apprise reaches it with
`mailto://127.0.0.1:PORT?from=...&to=...&mode=insecure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from sim.loopback import Inbox, free_port

HOST = "127.0.0.1"


@dataclass
class Mail:
    to: list[str]
    subject: str
    text: str
    attachments: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes


class MailServer:
    def __init__(self) -> None:
        self.inbox: Inbox[Mail] = Inbox()
        self.mails = self.inbox.items
        self.wait_for = self.inbox.wait_for
        self.port = free_port(HOST)
        self._controller = Controller(self, hostname=HOST, port=self.port)

    def url(self, to: str = "maker@example.com", sender: str = "layerguard@example.com") -> str:
        return f"mailto://{HOST}:{self.port}?from={sender}&to={to}&mode=insecure"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook for a received message."""
        message = message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        text_part = message.get_body(("plain", "html"))
        files = {
            part.get_filename() or "": part.get_payload(decode=True) for part in message.iter_attachments()
        }
        text = text_part.get_content() if text_part else ""
        mail = Mail(list(envelope.rcpt_tos), str(message["Subject"]), text, files)
        self.inbox.add(mail)
        return "250 Message accepted for delivery"

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._controller.stop()
