"""What went wrong when the broker could not be reached, in words that name the setting to fix.

Each diagnosis has a short `key`: the bridge logs a diagnosis only when the key changes, so a
broker that stays away costs one log line per outage, not one per retry.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Diagnosis:
    key: str
    message: str


def connect_failure(exc: BaseException | None, where: str, tls: bool) -> Diagnosis:
    """Why a connection attempt to `where` (host:port) failed before the broker answered."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Diagnosis(
            "tls-certificate",
            f"the broker's TLS certificate at {where} was not accepted ({exc.verify_message}); "
            "check mqtt.ca_file, and that mqtt.host is a name the certificate is for",
        )
    if isinstance(exc, ssl.SSLError):
        return Diagnosis(
            "tls-handshake",
            f"the TLS handshake with {where} failed ({exc.reason or exc}); "
            "is that port a TLS listener? check mqtt.port and mqtt.tls",
        )
    if isinstance(exc, ConnectionRefusedError):
        hint = "is the broker running? check mqtt.host and mqtt.port"
        return Diagnosis("refused-tcp", f"nothing accepts connections at {where}; {hint}")
    if isinstance(exc, socket.gaierror):
        return Diagnosis("unresolved", f"cannot resolve host {where} ({exc.strerror}); check mqtt.host")
    if isinstance(exc, TimeoutError):
        step = "the TCP connection or the TLS handshake" if tls else "the TCP connection"
        return Diagnosis("timeout", f"no answer from {where} to {step}; check mqtt.host and mqtt.port")
    detail = f" ({exc.strerror or exc})" if isinstance(exc, OSError) else ""
    return Diagnosis("unreachable", f"cannot connect to the broker at {where}{detail}")


def closed_before_connack(where: str, tls: bool) -> Diagnosis:
    """The TCP connection opened but the broker hung up before accepting the MQTT session."""
    hint = "; check mqtt.tls and mqtt.port" if tls else "; if that port expects TLS, set mqtt.tls = true"
    return Diagnosis("closed", f"the broker at {where} closed the connection before accepting it{hint}")
