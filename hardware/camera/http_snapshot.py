"""A camera already served over HTTP: the snapshot URL of ustreamer, camera-streamer or mjpg-streamer."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from hardware.camera.base import CameraError
from hardware.camera.jpeg import JPEG_MAGIC


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
            response = self._client.get(self.url)
        except httpx.TimeoutException as exc:
            raise CameraError(f"camera snapshot {self.url} timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise CameraError(
                f"cannot fetch camera snapshot {self.url}: {str(exc) or type(exc).__name__}; "
                "is the streamer running and the address right?"
            ) from exc
        if response.status_code != 200:
            raise CameraError(
                f"camera snapshot {self.url} answered HTTP {response.status_code} "
                f"{response.reason_phrase}{_status_hint(response.status_code)}"
            )
        if not response.content.startswith(JPEG_MAGIC):
            kind = response.headers.get("content-type", "unknown type")
            raise CameraError(
                f"camera snapshot {self.url} is not a JPEG ({kind}, {len(response.content)} bytes); "
                "use the streamer's snapshot URL, not its stream or web page "
                "(ustreamer and camera-streamer: /snapshot, mjpg-streamer: /?action=snapshot)"
            )
        return response.content

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return "; check the user name and password in camera.source (http://user:password@host/...)"
    if status == 404:
        return "; check the path (ustreamer and camera-streamer: /snapshot, mjpg-streamer: /?action=snapshot)"
    if status >= 500:
        return "; the streamer has a problem, often no camera attached to it"
    return ""
