"""A real Mosquitto broker on a free loopback port, for the test suite and `layerguard demo`.

A real broker rather than a fake one, because what matters (retained messages, last wills,
reconnects, refused credentials) is exactly what a fake would get subtly wrong.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from sim.loopback import free_port

HOST = "127.0.0.1"
# Debian installs the broker in /usr/sbin, which is not on an ordinary user's PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


class MosquittoNotFound(RuntimeError):
    """The `mosquitto` (or `mosquitto_passwd`) program is not installed."""


class MosquittoBroker:
    """One `mosquitto` process with its own config in a temporary directory.

    The port is chosen when the object is created, so a client can be pointed at a broker
    that is not running yet; `start()` launches it, `restart()` brings it back on the same
    port (retained messages are lost: persistence is off, like a freshly rebooted broker).

    `users` maps user names to passwords and turns on authentication; anonymous clients are
    then refused unless `allow_anonymous` says otherwise. `tls` makes the listener speak TLS
    with a certificate for 127.0.0.1 from a throw-away CA; clients trust `ca_file`.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        allow_anonymous: bool | None = None,
        tls: bool = False,
        start_timeout_s: float = 5.0,
    ) -> None:
        self.host = HOST
        self.port = free_port(HOST)
        self.users = dict(users or {})
        self.allow_anonymous = not self.users if allow_anonymous is None else allow_anonymous
        self.start_timeout_s = start_timeout_s
        self._binary = _find_program("mosquitto")
        self._tmp = tempfile.TemporaryDirectory(prefix="layerguard-mosquitto-")
        self.directory = Path(self._tmp.name)
        self.log_path = self.directory / "mosquitto.log"
        self.ca_file: Path | None = self._make_certificates() if tls else None
        self._process: subprocess.Popen[bytes] | None = None
        self._config_path = self._write_config()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Launch the broker and return once it accepts TCP connections."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self._binary, "-c", str(self._config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_listening()

    def stop(self) -> None:
        """Terminate the broker (clients see their connection drop) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and delete its temporary directory."""
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MosquittoBroker({self.host}:{self.port}, running={self.running})"

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto would switch to the `mosquitto` user, which cannot read our temp dir.
            lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        if self.users:
            lines.append(f"password_file {self._write_password_file()}")
        if self.ca_file is not None:
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {self.directory / 'server.crt'}",
                f"keyfile {self.directory / 'server.key'}",
            ]
        path = self.directory / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _write_password_file(self) -> Path:
        path = self.directory / "passwords"
        path.touch(mode=0o600)
        tool = _find_program("mosquitto_passwd")
        for user, password in self.users.items():
            # -b takes the password on the command line: acceptable for throw-away test users only.
            subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
        return path

    def _make_certificates(self) -> Path:
        """A CA and a server certificate for 127.0.0.1 signed by it; returns the CA file."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("openssl not found: a TLS test broker needs it (apt install openssl)")
        d = self.directory
        (d / "san.ext").write_text(f"subjectAltName=IP:{self.host}\n")
        key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        for command in (
            f"req -x509 {key} -keyout ca.key -out ca.crt -days 2 -subj /CN=LayerGuard-test-CA",
            f"req {key} -keyout server.key -out server.csr -subj /CN={self.host}",
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 "
            "-extfile san.ext",
        ):
            subprocess.run([openssl, *command.split()], cwd=d, check=True, capture_output=True)
        return d / "ca.crt"

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with status {self._process.returncode} on start:\n{self._log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"mosquitto did not listen on {self.host}:{self.port} within "
                        f"{self.start_timeout_s:g}s:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.005)  # poll interval, not a wait for readiness: the deadline bounds it

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"


def _find_program(name: str) -> str:
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    found = shutil.which(name, path=search_path)
    if found is None:
        raise MosquittoNotFound(
            f"{name} not found: install the Debian package mosquitto (sudo apt install mosquitto)"
        )
    return found
