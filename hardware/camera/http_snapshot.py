"""A camera already served over HTTP: the snapshot URL of ustreamer, camera-streamer or mjpg-streamer."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from hardware.camera.base import CameraError
from hardware.camera.jpeg import JPEG_MAGIC

# Far above any still a Pi camera makes; a bound in case the URL serves something endless.
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
_SNAPSHOT_PATHS = (
    "use the streamer's snapshot URL, not its stream or web page "
    "(ustreamer and camera-streamer: /snapshot, mjpg-streamer: /?action=snapshot)"
)


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without `user:password@`, and those credentials for basic auth.

    httpx would log the full request URL; sending credentials as a header keeps them out of logs.
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    bare = urlunsplit(parts._replace(netloc=netloc))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


class HttpSnapshotCamera:
    """Fetches one JPEG per capture() over a kept-open connection, so the streamer's camera stays
    shared with whatever else (a web UI, a timelapse) watches it."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url, self._auth = split_credentials(url)
        self.timeout_s = timeout_s
        self._client: httpx.Client | None = None

    def capture(self) -> bytes:
        """The body of one GET of the snapshot URL, if it is a JPEG. Raises CameraError."""
        if self._client is None:
            self._client = httpx.Client(auth=self._auth, timeout=self.timeout_s, follow_redirects=True)
        try:
            with self._client.stream("GET", self.url) as response:
                self._check_head(response)
                body = self._read_body(response)
        except httpx.TimeoutException as exc:
            raise CameraError(f"camera snapshot {self.url} timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise CameraError(
                f"cannot fetch camera snapshot {self.url}: {str(exc) or type(exc).__name__}; "
                "is the streamer running and the address right?"
            ) from exc
        if not body.startswith(JPEG_MAGIC):
            kind = response.headers.get("content-type", "unknown type")
            raise CameraError(
                f"camera snapshot {self.url} is not a JPEG ({kind}, {len(body)} bytes); {_SNAPSHOT_PATHS}"
            )
        return body

    def _check_head(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise CameraError(
                f"camera snapshot {self.url} answered HTTP {response.status_code} "
                f"{response.reason_phrase}{_status_hint(response.status_code)}"
            )
        # A video stream never ends: reading it whole would hang and fill the memory.
        if response.headers.get("content-type", "").startswith("multipart/"):
            raise CameraError(f"camera snapshot {self.url} is a video stream; {_SNAPSHOT_PATHS}")

    def _read_body(self, response: httpx.Response) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_SNAPSHOT_BYTES:
                raise CameraError(f"camera snapshot {self.url} is over {MAX_SNAPSHOT_BYTES} bytes")
        return bytes(body)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return "; check the user name and password in camera.source (http://user:password@host/...)"
    if status == 404:
        return f"; check the path: {_SNAPSHOT_PATHS}"
    if status >= 500:
        return "; the streamer has a problem, often no camera attached to it"
    return ""
