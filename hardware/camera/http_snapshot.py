"""A camera already served over HTTP: the snapshot URL of ustreamer, camera-streamer or mjpg-streamer."""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from hardware.bounded_http import IDENTITY, AnswerTooLarge, bounded_request
from hardware.camera.base import CameraError
from hardware.camera.jpeg import JPEG_MAGIC, MAX_CAMERA_FRAME_BYTES, frame_too_large

# Whole-call deadline of one snapshot (connect, request, the complete JPEG): a streamer on the
# same Pi or LAN answers in well under a second; a dripping or stuck one costs at most this.
SNAPSHOT_DEADLINE_S = 10.0
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
    shared with whatever else (a web UI, a timelapse) watches it.

    capture() is blocking, as the Camera interface asks, but the fetch runs on an event loop of
    the camera's own (kept between captures, with its connection): only asyncio can end a call at
    a whole-call deadline, where httpx's own timeouts count per read.
    """

    def __init__(self, url: str, timeout_s: float = SNAPSHOT_DEADLINE_S) -> None:
        self.url, self._auth = split_credentials(url)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # one capture at a time on the camera's loop
        self._runner: asyncio.Runner | None = None
        self._client: httpx.AsyncClient | None = None

    def capture(self) -> bytes:
        """The body of one GET of the snapshot URL, if it is a JPEG. Raises CameraError."""
        with self._lock:
            if self._runner is None:
                self._runner = asyncio.Runner()
            return self._runner.run(self._fetch())

    async def _fetch(self) -> bytes:
        if self._client is None:
            self._client = httpx.AsyncClient(
                auth=self._auth, timeout=self.timeout_s, follow_redirects=True, headers=IDENTITY
            )
        try:
            answer = await bounded_request(
                self._client,
                "GET",
                self.url,
                deadline_s=self.timeout_s,
                max_bytes=MAX_CAMERA_FRAME_BYTES,
                check_head=self._check_head,
            )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise CameraError(
                f"camera snapshot {self.url} did not arrive whole within {self.timeout_s:g} s"
            ) from exc
        except AnswerTooLarge as exc:
            raise CameraError(f"camera snapshot {self.url}: {frame_too_large(exc.declared)}") from None
        except httpx.HTTPError as exc:
            raise CameraError(
                f"cannot fetch camera snapshot {self.url}: {str(exc) or type(exc).__name__}; "
                "is the streamer running and the address right?"
            ) from exc
        if not answer.body.startswith(JPEG_MAGIC):
            what = f"{answer.headers.get('content-type', 'unknown type')}, {len(answer.body)} bytes"
            raise CameraError(f"camera snapshot {self.url} is not a JPEG ({what}); {_SNAPSHOT_PATHS}")
        return answer.body

    def _check_head(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise CameraError(
                f"camera snapshot {self.url} answered HTTP {response.status_code} "
                f"{response.reason_phrase}{_status_hint(response.status_code)}"
            )
        # A video stream never ends: reading it whole would hang and fill the memory.
        if response.headers.get("content-type", "").startswith("multipart/"):
            raise CameraError(f"camera snapshot {self.url} is a video stream; {_SNAPSHOT_PATHS}")

    def close(self) -> None:
        with self._lock:
            runner, client = self._runner, self._client
            self._runner = self._client = None
            if runner is None:
                return
            if client is not None:
                runner.run(client.aclose())
            runner.close()


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return "; check the user name and password in camera.source (http://user:password@host/...)"
    if status == 404:
        return f"; check the path: {_SNAPSHOT_PATHS}"
    if status >= 500:
        return "; the streamer has a problem, often no camera attached to it"
    return ""
