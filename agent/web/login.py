"""The page's login: the password (set by the user or generated), its slow salted hash, signed
session cookies, CSRF tokens and the per-client limit on failed logins.

The password is the secret file `web__password`, or `web.password_hash` in the config; with
neither, one is generated at first start and kept in `<state_dir>/web-password` (0600), so that
`layerguard doctor` can show it. The agent keeps only its scrypt hash in memory. Sessions are
signed with a key kept in `<state_dir>/web-session-key`, mixed with the password's hash: a
new password logs every browser out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from agent.settings import WebSection
from agent.store import replace_file

PASSWORD_FILE = "web-password"
SESSION_KEY_FILE = "web-session-key"
# scrypt: 16 MiB and ~0.1 s on a Pi Zero 2 per hash; done off the loop, and logins are rate-limited.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
FAILURES_ALLOWED = 5  # failed logins per client ...
FAILURE_WINDOW_S = 300.0  # ... within this; then refused until the window has passed
TRACKED_CLIENTS = 256  # memory bound of the failure record


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def return_hashing_memory() -> None:
    """Make a hash's 16 MiB go back to the system when it is done.

    glibc keeps a freed block of that size in the worker thread's arena (it raises its mmap
    threshold after the first one): each login thread would keep 16 MiB for good. A fixed
    threshold of 1 MiB makes every block that large an mmap of its own, unmapped when freed; it
    applies to the whole process, where blocks of 1 MiB or more are rare (a large camera frame)
    and returning them at once is what a bounded agent wants anyway. Not glibc: nothing to do.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 2**20
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` line (slow: call it off the event loop)."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        found = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), maxmem=64 * 2**20
        )
    except ValueError:
        return False
    return hmac.compare_digest(found.hex(), digest)


def new_password() -> str:
    """Five groups of four letters and digits (~100 bits), easy to type on a phone."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(5))


def _write_private(path: Path, text: str) -> None:
    """Atomically and durably (a power cut never leaves an empty password), readable by its owner
    only (mkstemp makes it 0600)."""
    replace_file(path, text.encode())
    if os.geteuid() == 0:  # `sudo layerguard password --reset`: the agent's user must read it
        owner = path.parent.stat()
        os.chown(path, owner.st_uid, owner.st_gid)


def generated_password(state_dir: Path, *, reset: bool = False) -> tuple[str, bool]:
    """The generated password and whether it was made just now (first start, or `reset`)."""
    path = state_dir / PASSWORD_FILE
    if not reset and path.is_file():
        return path.read_text().strip(), False
    password = new_password()
    _write_private(path, password + "\n")
    return password, True


@dataclass(frozen=True, slots=True)
class Credential:
    """Where the password comes from, and its hash."""

    source: str  # "secret file web__password", "web.password_hash", or the generated file's path
    hash: str
    generated: str | None = None  # the generated password, to be shown once when just made
    fresh: bool = False


def credential(settings: WebSection, state_dir: Path) -> Credential:
    """The login's credential for these settings (hashes: call it off the event loop)."""
    if secret := settings.password.get_secret_value():
        return Credential("secret file web__password", hash_password(secret))
    if settings.password_hash:
        return Credential("web.password_hash", settings.password_hash)
    password, fresh = generated_password(state_dir)
    return Credential(str(state_dir / PASSWORD_FILE), hash_password(password), password, fresh)


def refreshed(current: Credential, state_dir: Path) -> Credential:
    """A generated password changed by `layerguard password --reset` counts at once, without a
    restart (read at each login; hashes only when it changed)."""
    if current.generated is None:
        return current
    try:
        text = (state_dir / PASSWORD_FILE).read_text().strip()
    except OSError:
        return current
    if not text or text == current.generated:
        return current
    return Credential(current.source, hash_password(text), text)


def session_key(state_dir: Path) -> bytes:
    path = state_dir / SESSION_KEY_FILE
    if path.is_file() and len(key := bytes.fromhex(path.read_text().strip() or "00")) >= 32:
        return key
    key = os.urandom(32)
    _write_private(path, key.hex() + "\n")
    return key


class Sessions:
    """Signed, expiring session tokens (`<expiry>.<nonce>.<mac>`) and their CSRF tokens."""

    def __init__(self, key: bytes, password_hash: str, lifetime_s: float) -> None:
        self._base = key
        self.lifetime_s = lifetime_s
        self.rekey(password_hash)

    def rekey(self, password_hash: str) -> None:
        """The password's hash is part of the key: a new password ends every session."""
        self._key = hmac.new(self._base, password_hash.encode(), hashlib.sha256).digest()

    def issue(self, now: float | None = None) -> str:
        body = f"{int((now or time.time()) + self.lifetime_s)}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._mac(body)}"

    def valid(self, token: str | None, now: float | None = None) -> bool:
        if not token or token.count(".") != 2:
            return False
        body, _, mac = token.rpartition(".")
        expiry = body.split(".", 1)[0]
        return (
            hmac.compare_digest(mac, self._mac(body))
            and expiry.isdigit()
            and int(expiry) > (now or time.time())
        )

    def csrf(self, token: str) -> str:
        return self._mac("csrf:" + token)

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


class LoginLimiter:
    """Failed logins per client address: `FAILURES_ALLOWED` per `FAILURE_WINDOW_S`, bounded memory."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window_s: float = FAILURE_WINDOW_S) -> None:
        self.allowed = allowed
        self.window_s = window_s
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds until this client may try again; 0 when it may now."""
        now = now or time.monotonic()
        recent = [t for t in self._failures.get(client, ()) if t > now - self.window_s]
        if len(recent) < self.allowed:
            return 0.0
        return recent[-self.allowed] + self.window_s - now

    def failed(self, client: str, now: float | None = None) -> None:
        now = now or time.monotonic()
        times = [t for t in self._failures.pop(client, []) if t > now - self.window_s][-self.allowed :]
        self._failures[client] = [*times, now]
        while len(self._failures) > TRACKED_CLIENTS:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
