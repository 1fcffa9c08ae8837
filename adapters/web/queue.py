"""The queue page: the team's jobs waiting and running, kept live over server-sent events.

Everyone in a team sees the team's queue; the core (bot.queue_board) says who may cancel
what, and cancelling goes through it, so the hold is released at once.

Live updates: /dashboard/queue/events is a text/event-stream. Each open stream reads the
queue once per POLL_SECONDS while its client is connected, sends the table (the same HTML
fragment the page renders) only when it changed, and a comment as a heartbeat otherwise.
A stream ends when its client leaves, when its session ends, after STREAM_SECONDS (the
browser's EventSource reconnects by itself) and at once when the server shuts down; at
most MAX_STREAMS are open in a process. Without JavaScript the page reloads itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from adapters.web.pages import (
    CLOCK,
    PREFIX,
    SERVICE,
    caller_of,
    page,
    problem,
    protect,
    signed_in,
    signed_out,
)
from bot.money import usd
from bot.queue_board import QueueEntry
from bot.sign_in import Session
from bot.types import RefusalReason, Refused

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
STREAM_SECONDS = 600.0
MAX_STREAMS = 200
PROMPT_CHARS = 80
# How long the browser waits before reconnecting a dropped stream (the SSE `retry` field).
RECONNECT_MS = 2000

# A refused cancel's HTTP status, by the core's reason.
REFUSAL_STATUS = {
    RefusalReason.NOT_FOUND: 404,
    RefusalReason.NOT_MODERATOR: 403,
    RefusalReason.TEAM_NOT_ALLOWED: 403,
    RefusalReason.UNAVAILABLE: 503,
}


class QueueStreams:
    """The process's open event streams: counted, and all told to end at shutdown."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()
        self.open = 0

    async def close_all(self, _: web.Application) -> None:
        self.closing.set()


STREAMS: web.AppKey[QueueStreams] = web.AppKey("queue_streams", QueueStreams)


def add_queue(dashboard: web.Application) -> None:
    """The queue page's routes, and the shutdown hook that ends its open streams."""
    dashboard[STREAMS] = streams = QueueStreams()
    dashboard.on_shutdown.append(streams.close_all)
    dashboard.add_routes(
        [
            web.get("/queue", queue_page, name="queue"),
            web.get("/queue/events", queue_events),
            # At most 18 digits: any job id fits a BIGINT, and a longer one is a 404, not a 500.
            web.post(r"/queue/{job_id:\d{1,18}}/cancel", cancel_job),
        ]
    )


async def queue_page(request: web.Request) -> web.Response:
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    entries = await request.app[SERVICE].team_queue(caller_of(session))
    if isinstance(entries, Refused):
        return problem(
            request, REFUSAL_STATUS.get(entries.reason, 403), "The queue is not available", entries.detail, session
        )
    cancelled = request.query.get("cancelled", "")
    return page(
        request,
        "queue.html",
        session=session,
        cancelled=int(cancelled) if cancelled.isdigit() and len(cancelled) <= 18 else None,
        **_table(request, entries),
    )


async def cancel_job(request: web.Request) -> web.Response:
    session = signed_in(request)  # the middleware refused a POST without one
    if session is None:
        return signed_out(request)
    job_id = int(request.match_info["job_id"])
    outcome = await request.app[SERVICE].cancel_for(job_id, caller_of(session))
    if isinstance(outcome, Refused):
        log.info("queue: cancel of job %d refused for %s/%s: %s", job_id, session.team, session.user, outcome.reason)
        return page(
            request,
            "queue_refused.html",
            REFUSAL_STATUS.get(outcome.reason, 409),
            session=session,
            title="This job was not cancelled",
            detail=outcome.detail,
        )
    log.info(
        "queue: job %d cancelled by %s/%s, %s released", job_id, session.team, session.user, usd(outcome.held_micros)
    )
    raise web.HTTPSeeOther(f"{PREFIX}/queue?cancelled={job_id}")


async def queue_events(request: web.Request) -> web.StreamResponse:
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    streams = request.app[STREAMS]
    if streams.open >= MAX_STREAMS or streams.closing.is_set():
        busy = problem(request, 503, "Live updates are busy", "Reload the page to see the queue.", session)
        busy.headers["Retry-After"] = "30"
        return busy
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    protect(response)
    streams.open += 1
    try:
        await response.prepare(request)
        await _stream(request, response, streams)
    except ConnectionError:
        pass  # the client left between our check and the write
    except Exception:
        # Past prepare(), no error page can be sent: end the stream (the browser reconnects).
        log.exception("queue: event stream failed")
    finally:
        streams.open -= 1
    return response


async def _stream(request: web.Request, response: web.StreamResponse, streams: QueueStreams) -> None:
    loop = asyncio.get_running_loop()
    started = last_write = loop.time()
    shown: str | None = None
    await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
    while not streams.closing.is_set() and not _gone(request) and loop.time() - started < STREAM_SECONDS:
        session = signed_in(request)  # checked again each time: a stream ends with its session
        if session is None:
            await response.write(_event("signed-out", ""))
            return
        fragment = await _fragment(request, session)
        if fragment != shown:
            await response.write(_event("queue", fragment))
            shown, last_write = fragment, loop.time()
        elif loop.time() - last_write >= HEARTBEAT_SECONDS:
            await response.write(b": still here\n\n")
            last_write = loop.time()
        try:
            await asyncio.wait_for(streams.closing.wait(), POLL_SECONDS)
        except TimeoutError:
            pass


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def _event(name: str, data: str) -> bytes:
    """One SSE event; every line of `data` gets its own data: field (a bare CR would end one)."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return (f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


async def _fragment(request: web.Request, session: Session) -> str:
    entries = await request.app[SERVICE].team_queue(caller_of(session))
    context: dict[str, Any] = {"prefix": PREFIX, "session": session}
    if isinstance(entries, Refused):
        context |= {"rows": [], "summary": entries.detail, "unavailable": entries.detail}
    else:
        context |= _table(request, entries)
    return aiohttp_jinja2.render_string("queue_table.html", request, context)


def _table(request: web.Request, entries: list[QueueEntry]) -> dict[str, Any]:
    """What queue_table.html shows: a row per job, and a one-line summary for screen readers."""
    now = request.app[CLOCK]()
    rows = [_row(entry, now) for entry in entries]
    running = sum(1 for r in rows if r["state"] == "running")
    summary = f"{len(rows)} job{'s' if len(rows) != 1 else ''}: {running} running, {len(rows) - running} queued"
    return {"rows": rows, "summary": summary, "unavailable": None}


def _row(entry: QueueEntry, now: float) -> dict[str, Any]:
    job = entry.job
    prompt = " ".join(job.spec.prompt.split())
    return {
        "id": job.id,
        "position": entry.position,
        "prompt": prompt if len(prompt) <= PROMPT_CHARS else prompt[: PROMPT_CHARS - 1] + "…",
        "full_prompt": prompt,
        "model": job.spec.model_alias,
        "size": job.spec.size,
        "lane": job.spec.lane.value,
        "user": job.user,
        "estimate": usd(job.held_micros),
        "held_micros": job.held_micros,
        "state": job.state.value,
        "age": age(now - job.created_at),
        "may_cancel": entry.may_cancel,
    }


def age(seconds: float) -> str:
    """How long ago, to the minute: coarse on purpose, so a stream sends only real changes."""
    minutes = max(0, int(seconds // 60))
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"
