"""A stand-in of the Gadget service over real HTTP on loopback, for the tests and the demo.

It follows the documented contract (Create Context, Process, the error body, two "regions" behind
ProcessRequestUrl and FallbackProcessRequestUrl), scores each JPEG from its pixels
(`sim.frame_scoring`), keeps a temporal model per context (`sim.gadget_model`), records every
request for assertions, and injects faults on demand. Tests wait on `wait_for_calls`, never sleep.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from hardware.camera.framing import MASK_FILL
from sim.frame_scoring import score_image
from sim.gadget_model import ContextModel
from sim.loopback import LoopbackHTTPServer, write_padding
from sim.multipart import parse_form_data

log = logging.getLogger(__name__)

CREATE_CONTEXT_PATH = "/api/gadget/v1/createcontext"
PROCESS_PATH = "/api/gadget/v1/process"
REGIONS = ("primary", "fallback")
MAX_IMAGE_BYTES = 6 * 1024 * 1024
MAX_BODY_BYTES = MAX_IMAGE_BYTES + 64 * 1024  # room for the multipart framing
MASK_TOLERANCE = 6  # grey levels JPEG may move a flat mask's pixels by
SHUTDOWN_POLL_S = 0.02  # how often serve_forever checks for stop(): tests start and stop many servers
# The HTTP status each documented ErrorType comes with.
ERROR_STATUS = {
    "OE_BAD_ARGS": 400,
    "OE_ARGS_PARSE_FAILED": 400,
    "OE_IMAGE_DECODE_FAILED": 400,
    "OE_INVALID_API_KEY": 401,
    "OE_API_KEY_DISABLED": 401,
    "OE_API_KEY_BLOCKED_PAYMENT_FAILED": 402,
    "OE_API_KEY_IP_RESTRICTED": 403,
    "OE_CONTEXT_RATE_LIMITED": 429,
    "OE_FREE_USAGE_LIMIT_REACHED": 429,
    "OE_INTERNAL_ERROR": 500,
    "OE_BACKEND_THROTTLED": 503,
}

Endpoint = Literal["createcontext", "process"]
Interval = float | dict[str, float]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the stand-in does with one request: an HTTP answer, a stall, or a dropped connection.

    Normal answers and injected faults are both Replies, so any fault is just another Reply.
    """

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    error_type: str | None = None  # for the call record
    disconnect: bool = False  # close the connection without answering
    stall_s: float = 0.0  # wait this long (or until stop()) before answering or dropping
    serve: bool = False  # answer the request as usual (after stall_s): a slow, not a failed, reply
    drip_s: float = 0.0  # send the whole answer (status line, headers, body) one byte per drip_s
    filler: int = 0  # instead of `body`, a JSON object of this many bytes, streamed as it is sent
    declare_length: bool = True  # send Content-Length; without it the body ends when the connection closes

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
        return cls(status, json.dumps(payload).encode(), (("Content-Type", "application/json"), *headers))

    @classmethod
    def api_error(
        cls,
        error_type: str,
        details: str = "injected",
        status: int | None = None,
        retry_after: str | None = None,
    ) -> Reply:
        """A documented error body; the status follows the error type unless given."""
        headers = (("Retry-After", retry_after),) if retry_after is not None else ()
        body = {"ErrorType": error_type, "ErrorDetails": details}
        return replace(
            cls.json(body, status or ERROR_STATUS.get(error_type, 400), headers), error_type=error_type
        )

    @classmethod
    def raw(
        cls, status: int, body: bytes = b"<html>upstream unavailable</html>", content_type: str = "text/html"
    ) -> Reply:
        """A body that is not the documented JSON, like a load balancer's error page."""
        return cls(status, body, (("Content-Type", content_type),))

    @classmethod
    def malformed_json(cls) -> Reply:
        """A 200 whose JSON is cut off mid-object."""
        return cls.raw(200, b'{"Score": 3, "PrintQual', "application/json")

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        """The usual answer, `seconds` late."""
        return cls(stall_s=seconds, serve=True)

    @classmethod
    def drip(cls, seconds_per_byte: float) -> Reply:
        """The usual answer, one byte every `seconds_per_byte`: each read is quick, the call is not."""
        return cls(drip_s=seconds_per_byte, serve=True)

    @classmethod
    def huge(cls, size: int, declare_length: bool = True) -> Reply:
        """A 200 whose JSON body is `size` bytes of padding, with or without its Content-Length."""
        json_type = (("Content-Type", "application/json"),)
        return cls(headers=json_type, filler=size, declare_length=declare_length)

    @classmethod
    def drop(cls) -> Reply:
        return cls(status=0, disconnect=True)

    @classmethod
    def stall(cls, seconds: float) -> Reply:
        """No answer for `seconds`, then a dropped connection: a client timeout in the making."""
        return cls(status=0, disconnect=True, stall_s=seconds)

    @classmethod
    def of(cls, fault: Reply | str | int) -> Reply:
        """`inject` shorthand: an ErrorType string, a bare HTTP status, or a Reply."""
        if isinstance(fault, str):
            return cls.api_error(fault)
        if isinstance(fault, int):
            return cls.raw(fault)
        return fault


@dataclass(frozen=True, slots=True)
class UploadedFile:
    field: str | None
    filename: str | None
    content_type: str
    size: int
    sha256: str
    image_size: tuple[int, int] | None = None  # width, height of a decoded JPEG
    # Share of the pixels inside the stand-in's `probe` rectangle that are the mask's flat grey:
    # a test's proof that a mask reached the uploaded frame. None without a probe.
    probe_masked: float | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the stand-in saw it; `status` is None when the connection was dropped."""

    at: float  # time.monotonic() when the request arrived
    method: str
    path: str  # with the query string
    endpoint: Endpoint | None
    region: str | None  # "primary" or "fallback" for Process calls
    headers: Mapping[str, str]  # lower-case names
    status: int | None
    error_type: str | None = None
    context_id: str | None = None
    files: tuple[UploadedFile, ...] = ()  # the file parts of a served (not faulted) Process call
    answer: Mapping[str, Any] | None = None  # the JSON body of a 200 answer
    reply_headers: tuple[tuple[str, str], ...] = ()  # e.g. a 429's Retry-After


@dataclass(slots=True)
class _Fault:
    reply: Reply
    endpoint: Endpoint
    region: str | None


@dataclass(slots=True)
class _Request:
    received_at: float
    method: str
    path: str
    endpoint: Endpoint | None
    region: str | None
    headers: dict[str, str]
    content_type: str
    body: bytes
    context_id: str | None = None
    oversize: bool = False  # the body was too large to read
    files: tuple[UploadedFile, ...] = ()
    answer: dict[str, Any] | None = None


class GadgetStandIn:
    """The Gadget service on 127.0.0.1 and a free port; use as a context manager or start()/stop().

    `interval` is the NextProcessIntervalSec to return: seconds, {"Minimum", "Recommended"}, or
    None to leave it out. `fail_primary` / `fail_fallback` is the Reply every Process call to that
    region gets (e.g. `Reply.raw(503)` or `Reply.drop()`: a dead region); `inject` queues one-shot
    faults; `forget_contexts` makes every existing context unknown. `api_key`, `interval`,
    `fail_primary` and `fail_fallback` may be changed while running.
    """

    def __init__(
        self,
        api_key: str = "sim-key",
        interval: Interval | None = 2,
        fail_primary: Reply | None = None,
        fail_fallback: Reply | None = None,
    ) -> None:
        self.api_key = api_key
        self.interval = interval
        self.probe: tuple[float, float, float, float] | None = None  # see UploadedFile.probe_masked
        self.fail_primary = fail_primary
        self.fail_fallback = fail_fallback
        self._cond = threading.Condition()
        self._calls: list[Call] = []
        self._contexts: dict[str, ContextModel] = {}
        self._faults: list[_Fault] = []
        self._stopping = threading.Event()
        # Per dripped answer the client hung up on: seconds from its request to the hang-up.
        self.drips_cut_after_s: list[float] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("GadgetStandIn is not running")
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> GadgetStandIn:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(SHUTDOWN_POLL_S,), name="gadget-stand-in", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._stopping.set()  # release stalled requests
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> GadgetStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def inject(
        self,
        fault: Reply | str | int,
        *,
        endpoint: Endpoint = "process",
        region: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with `fault` instead of serving them.

        `region` limits a Process fault to "primary" or "fallback"; faults fire in the order queued.
        """
        with self._cond:
            self._faults.extend(_Fault(Reply.of(fault), endpoint, region) for _ in range(times))

    def forget_contexts(self) -> None:
        """Like a context past its 14 days: Process calls to any existing context fail."""
        with self._cond:
            self._contexts.clear()

    @property
    def calls(self) -> list[Call]:
        with self._cond:
            return list(self._calls)

    @property
    def contexts(self) -> dict[str, ContextModel]:
        with self._cond:
            return dict(self._contexts)

    @property
    def contexts_created(self) -> int:
        with self._cond:
            return len(self._contexts)

    def wait_for_calls(self, count: int, timeout: float = 30.0) -> list[Call]:
        """Block until at least `count` requests have been answered (or dropped); TimeoutError if not."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._calls) >= count, timeout):
                raise TimeoutError(f"{len(self._calls)} of {count} calls within {timeout} s")
            return list(self._calls)

    def wait_for_drips_cut(self, count: int, timeout: float) -> list[float]:
        """Block until the client has hung up on `count` dripped answers; TimeoutError if not."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.drips_cut_after_s) >= count, timeout):
                raise TimeoutError(f"{len(self.drips_cut_after_s)} of {count} drips cut within {timeout} s")
            return list(self.drips_cut_after_s)

    def _serve(self, request: _Request) -> Reply:
        """Decide the reply and record the call; runs on a handler thread."""
        reply = self._take_fault(request)
        if reply is None or reply.serve:
            answer = self._answer(request)
            reply = replace(answer, stall_s=reply.stall_s, drip_s=reply.drip_s) if reply else answer
        with self._cond:
            self._calls.append(
                Call(
                    at=request.received_at,
                    method=request.method,
                    path=request.path,
                    endpoint=request.endpoint,
                    region=request.region,
                    headers=request.headers,
                    status=None if reply.disconnect else reply.status,
                    error_type=reply.error_type,
                    context_id=request.context_id,
                    files=request.files,
                    answer=request.answer if reply.status == 200 else None,
                    reply_headers=reply.headers,
                )
            )
            self._cond.notify_all()
        return reply

    def _take_fault(self, request: _Request) -> Reply | None:
        with self._cond:
            for index, fault in enumerate(self._faults):
                if fault.endpoint == request.endpoint and fault.region in (None, request.region):
                    return self._faults.pop(index).reply
        return {"primary": self.fail_primary, "fallback": self.fail_fallback}.get(request.region or "")

    def _answer(self, request: _Request) -> Reply:
        if request.oversize:
            return Reply.api_error("OE_BAD_ARGS", "the request body is too large", status=413)
        if request.method != "POST" or request.endpoint is None:
            return Reply.raw(404 if request.endpoint is None else 405, b"not found", "text/plain")
        if request.headers.get("x-api-key") != self.api_key:
            return Reply.api_error("OE_INVALID_API_KEY", "the X-API-Key header is missing or wrong")
        if request.endpoint == "createcontext":
            return self._create_context(request)
        return self._process(request)

    def _create_context(self, request: _Request) -> Reply:
        try:
            args = json.loads(request.body or b"{}")
        except ValueError:
            return Reply.api_error("OE_ARGS_PARSE_FAILED", "the body is not JSON")
        if not isinstance(args, dict):
            return Reply.api_error("OE_ARGS_PARSE_FAILED", "the body is not a JSON object")
        levels = [args.get(key, 3) for key in ("WarningConfidenceLevel", "PauseConfidenceLevel")]
        if not all(
            isinstance(level, int) and not isinstance(level, bool) and 1 <= level <= 5 for level in levels
        ):
            return Reply.api_error("OE_BAD_ARGS", "confidence levels must be integers 1..5")
        context_id = uuid.uuid4().hex
        with self._cond:
            self._contexts[context_id] = ContextModel(context_id, *levels)
        request.context_id = context_id
        # The address the client used: behind a forward (the boot test's emulated Pi reaches this
        # server at another address) 127.0.0.1 would point the client at itself.
        host = request.headers.get("host")
        origin = f"http://{host}" if host else self.base_url
        request.answer = {
            "ContextId": context_id,
            "ProcessRequestUrl": f"{origin}/primary{PROCESS_PATH}?ctx={context_id}",
            "FallbackProcessRequestUrl": f"{origin}/fallback{PROCESS_PATH}?ctx={context_id}",
        }
        return Reply.json(request.answer)

    def _probe(self, image: Image.Image) -> float | None:
        if self.probe is None:
            return None
        x0, y0, x1, y1 = self.probe
        w, h = image.size
        region = image.convert("RGB").crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))
        data = region.tobytes()  # RGB, 3 bytes a pixel
        flat = sum(
            1
            for i in range(0, len(data), 3)
            if all(abs(data[i + k] - MASK_FILL[k]) <= MASK_TOLERANCE for k in range(3))
        )
        return flat / max(region.width * region.height, 1)

    def _process(self, request: _Request) -> Reply:
        with self._cond:
            model = self._contexts.get(request.context_id or "")
        if model is None:
            return Reply.api_error("OE_BAD_ARGS", "unknown context")
        try:
            parts = parse_form_data(request.content_type, request.body)
        except ValueError as exc:
            return Reply.api_error("OE_BAD_ARGS", str(exc))
        files = [part for part in parts if part.filename is not None]
        request.files = tuple(
            UploadedFile(f.name, f.filename, f.content_type, len(f.data), hashlib.sha256(f.data).hexdigest())
            for f in files
        )
        if len(files) != 1:
            return Reply.api_error("OE_BAD_ARGS", f"expected exactly one file part, got {len(files)}")
        if len(files[0].data) > MAX_IMAGE_BYTES:
            return Reply.api_error("OE_BAD_ARGS", "the image is larger than 6 MiB")
        try:
            with Image.open(io.BytesIO(files[0].data)) as image:
                if image.format != "JPEG":
                    raise ValueError(f"{image.format} is not JPEG")
                image.load()
                score = score_image(image)
                request.files = (
                    replace(request.files[0], image_size=image.size, probe_masked=self._probe(image)),
                )
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            return Reply.api_error("OE_IMAGE_DECODE_FAILED", str(exc))
        with self._cond:
            request.answer = model.observe(score, self.interval)
        return Reply.json(request.answer)


def _write_filler(out: Any, size: int) -> None:
    """`{"Padding": "xxx…"}` of exactly `size` bytes (at least 15), written without holding it."""
    head, tail = b'{"Padding": "', b'"}'
    out.write(head)
    write_padding(out, size - len(head) - len(tail))
    out.write(tail)


class _Server(LoopbackHTTPServer):
    def __init__(self, stand_in: GadgetStandIn) -> None:
        super().__init__(_Handler)
        self.stand_in = stand_in


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real service and httpx's pool expect
    timeout = 30  # drop idle keep-alive connections eventually
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms ACK stalls
    server: _Server

    def do_POST(self) -> None:
        stand_in = self.server.stand_in
        request = self._request()
        reply = stand_in._serve(request)
        if reply.stall_s:
            stand_in._stopping.wait(reply.stall_s)
        if reply.disconnect:
            self.close_connection = True
            return
        length = reply.filler or len(reply.body)
        headers = [*reply.headers, ("Content-Length", str(length))] if reply.declare_length else reply.headers
        self.close_connection = self.close_connection or not reply.declare_length
        phrase = self.responses.get(reply.status, ("",))[0]
        head = f"HTTP/1.1 {reply.status} {phrase}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        if reply.drip_s:
            self._drip(head.encode() + reply.body, reply.drip_s, request.received_at)
        elif reply.filler:
            self.wfile.write(head.encode())
            _write_filler(self.wfile, reply.filler)
        else:
            self.wfile.write(head.encode() + reply.body)

    def _drip(self, data: bytes, seconds_per_byte: float, received_at: float) -> None:
        stand_in = self.server.stand_in
        for index in range(len(data)):
            try:
                self.wfile.write(data[index : index + 1])
            except ConnectionError:
                self.close_connection = True
                with stand_in._cond:
                    stand_in.drips_cut_after_s.append(time.monotonic() - received_at)
                    stand_in._cond.notify_all()
                return
            if stand_in._stopping.wait(seconds_per_byte):
                self.close_connection = True
                return

    do_GET = do_PUT = do_DELETE = do_POST

    def _request(self) -> _Request:
        """Read the request; a body too large to accept is left unread and the connection closed."""
        received_at = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        oversize = length > MAX_BODY_BYTES
        if oversize:
            self.close_connection = True
        body = b"" if oversize else self.rfile.read(length)
        url = urlsplit(self.path)
        endpoint: Endpoint | None = None
        region = None
        if url.path == CREATE_CONTEXT_PATH:
            endpoint = "createcontext"
        else:
            head, _, rest = url.path.lstrip("/").partition("/")
            if head in REGIONS and "/" + rest == PROCESS_PATH:
                endpoint, region = "process", head
        return _Request(
            received_at=received_at,
            method=self.command,
            path=self.path,
            endpoint=endpoint,
            region=region,
            headers={name.lower(): value for name, value in self.headers.items()},
            content_type=self.headers.get("Content-Type", ""),
            body=body,
            oversize=oversize,
            context_id=(parse_qs(url.query).get("ctx") or [None])[0],
        )

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
