"""The Server-Sent Events stream of a job or a search, polling the database (the source of truth).

Status events are written in the same transaction as the status itself, so once it reads
as finished, one more read is guaranteed to return every event up to and including the last one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from app.domain import JobEvent
from app.errors import InvalidRequestError
from app.services.container import Services

POLL_S = 0.25
KEEPALIVE_S = 15.0
# Event ids are database integers; larger values overflow SQLite's 64-bit integers mid-stream.
MAX_EVENT_ID = 2**63 - 1
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_last_event_id(value: str | None) -> int | None:
    """The ``Last-Event-ID`` header as an event id (None when absent or empty).

    Checked before the stream starts: ASCII digits only (``str.isdigit`` accepts '²', which
    ``int`` refuses) and at most :data:`MAX_EVENT_ID`.

    Raises:
        InvalidRequestError: Anything else (422).
    """
    if value is None or not value.strip():
        return None  # an empty Last-Event-ID means "from the start" (the SSE spec's reset)
    text = value.strip()
    if not _ASCII_DIGITS.fullmatch(text) or int(text) > MAX_EVENT_ID:
        raise InvalidRequestError(
            f"Last-Event-ID must be an event id: decimal digits, at most {MAX_EVENT_ID}"
        )
    return int(text)


def format_event(event: JobEvent) -> str:
    data = json.dumps({**event.data, "created_at": event.created_at.isoformat()})
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


async def poll_events(
    read_events: Callable[[int], Sequence[Any]],
    read_status: Callable[[], tuple[bool, str]],
    after: int,
    timeout_s: float,
) -> AsyncIterator[str]:
    """Server-Sent Events of one resource (a job or a search) by polling the database.

    Args:
        read_events: Events with an id above the argument, oldest first (blocking; run in a thread).
        read_status: ``(finished, status)`` of the resource (blocking). A status event is written
            with the status, so once it reads as finished one more read has every event.
        after: Send events with a larger id.
        timeout_s: Close the stream (``event: timeout``) after this long.
    """
    deadline = time.monotonic() + timeout_s
    last_sent = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        events = await run_in_threadpool(read_events, after)
        for event in events:
            after = event.id
            yield format_event(event)
        if events:
            last_sent = time.monotonic()
            continue
        finished, status = await run_in_threadpool(read_status)
        if finished:
            for event in await run_in_threadpool(read_events, after):
                after = event.id
                yield format_event(event)
            yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
            return
        now = time.monotonic()
        if now > deadline:
            yield f"event: timeout\ndata: {json.dumps({'status': status, 'after': after})}\n\n"
            return
        if now - last_sent > KEEPALIVE_S:
            last_sent = now
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


def event_stream(services: Services, job_id: str, after: int, timeout_s: float) -> AsyncIterator[str]:
    """The events of job ``job_id`` (see :func:`poll_events`)."""

    def status() -> tuple[bool, str]:
        job = services.jobs.get(job_id)
        return job.status.terminal, job.status.value

    return poll_events(lambda since: services.jobs.events(job_id, since), status, after, timeout_s)
