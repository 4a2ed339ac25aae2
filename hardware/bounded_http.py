"""One HTTP call under a whole-call deadline and a size cap: the rule every outside call follows.

httpx's timeouts count per network operation, so a server that drips a byte every few seconds keeps
a call open for as long as it likes, and a body read whole takes as much memory as the server
sends. Here the deadline covers connect, send and the whole answer, and the answer is streamed
and dropped at the cap (refused unread when its Content-Length already says it is too large).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

# Compressed answers could unpack to any size; ask for the bytes as they are (and count those).
IDENTITY = {"Accept-Encoding": "identity"}


class AnswerTooLarge(Exception):
    """The answer was (or declared it would be) larger than the caller's cap; the rest was not read."""

    def __init__(self, limit: int, declared: int | None) -> None:
        if declared is not None and declared > limit:
            super().__init__(f"the answer declares {declared} bytes, over the {limit}-byte cap")
        else:
            super().__init__(f"the answer runs past the {limit}-byte cap")
        self.limit = limit
        self.declared = declared


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes


async def bounded_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    deadline_s: float,
    max_bytes: int,
    check_head: Callable[[httpx.Response], None] | None = None,
    **request: Any,
) -> Answer:
    """The whole answer, or TimeoutError once `deadline_s` has passed since the call began.

    Raises AnswerTooLarge past `max_bytes` (counted on the wire, never decompressed), httpx's
    errors for network failures, and whatever `check_head` raises to refuse an answer by its
    status and headers before its body is read (a video stream never ends).
    """
    async with asyncio.timeout(deadline_s), client.stream(method, url, **request) as response:
        if check_head is not None:
            check_head(response)
        declared = _content_length(response)
        if declared is not None and declared > max_bytes:
            raise AnswerTooLarge(max_bytes, declared)
        body = io.BytesIO()  # getvalue() hands over its buffer without a copy
        async for chunk in response.aiter_raw():
            if body.tell() + len(chunk) > max_bytes:
                raise AnswerTooLarge(max_bytes, declared)
            body.write(chunk)
    return Answer(response.status_code, response.headers, body.getvalue())


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None
