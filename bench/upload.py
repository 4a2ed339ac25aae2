"""Figure 5, upload size: what one inspection sends at the default camera settings (1280x720,
JPEG quality 85), through the real Gadget client, as the stand-in received it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from agent.detection.client import GadgetClient
from bench.launch import API_KEY, CAMERA_SIZE
from bench.report import Row
from sim.frames import render_frame
from sim.gadget_service import GadgetStandIn

PROGRESS = (0.1, 0.3, 0.5, 0.7, 0.9)  # clean frames, then spaghetti from half way
FAILURE_AT = 0.5
INSPECTIONS_PER_HOUR = 3600 / 20


def measure() -> list[Row]:
    frames = [render_frame(p, FAILURE_AT, *CAMERA_SIZE, seed=i) for i, p in enumerate(PROGRESS)]
    with GadgetStandIn(api_key=API_KEY) as service:
        asyncio.run(_inspect(service.base_url, frames))
        calls = [call for call in service.calls if call.endpoint == "process"]
    request_kib = [_request_bytes(call.path, call.headers) / 1024 for call in calls]
    jpeg_kib = [call.files[0].size / 1024 for call in calls]
    per_hour_mib = sorted(request_kib)[len(request_kib) // 2] * INSPECTIONS_PER_HOUR / 1024
    return [
        Row(
            "upload per inspection (HTTP request)",
            "KiB",
            request_kib,
            note=f"JPEG {min(jpeg_kib):.0f} to {max(jpeg_kib):.0f} KiB, synthetic frames clean and failed; "
            f"≈ {per_hour_mib:.0f} MiB per hour at a 20 s interval",
        )
    ]


async def _inspect(api_url: str, frames: list[bytes]) -> None:
    client = GadgetClient(api_url, API_KEY)
    try:
        await client.start_context()
        for frame in frames:
            await client.process(frame)
    finally:
        await client.aclose()


def _request_bytes(path: str, headers: Mapping[str, str]) -> int:
    """Request line, headers and body, as they went over the wire (HTTP/1.1)."""
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return len(head.encode()) + int(headers["content-length"])
