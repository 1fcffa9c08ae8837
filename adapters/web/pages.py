"""What every dashboard page shares: the app's keys, the session of a request, and pages
rendered from templates (a friendly problem page for every refusal, never a traceback).

Page modules (overview, images, ledger, gallery...) build on this module; adapters.web.app
registers their routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web

from bot.access import Caller
from bot.service import ImagineService
from bot.sign_in import Session, SignIn
from bot.types import Job, Refused, StoredImage

HERE = Path(__file__).parent
PREFIX = "/dashboard"
COOKIE = "imagine_session"
PLATFORM = "web"
SIGN_IN: web.AppKey[SignIn] = web.AppKey("sign_in", SignIn)
SERVICE: web.AppKey[ImagineService] = web.AppKey("service", ImagineService)
T = TypeVar("T")
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock", Callable[[], float])  # type: ignore[arg-type]


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, {"prefix": PREFIX, "page": "", **context}, status=status)


def problem(request: web.Request, status: int, title: str, detail: str, session: Session | None = None) -> web.Response:
    """The page saying what went wrong, or for a script asking for JSON (the job page's status
    poll) the same in JSON."""
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"error": title, "detail": detail}, status=status)
    return page(request, "problem.html", status, title=title, detail=detail, session=session)


def caller_of(session: Session) -> Caller:
    """The core's Caller for a dashboard session: its role is what the chat adapter decided
    when it made the link (the core checks it again)."""
    return Caller(session.team, session.user, platform_admin=session.moderator, platform=PLATFORM)


def session_of(request: web.Request) -> Session | None:
    """The session the request's cookie holds, whether or not its team may still use the bot."""
    return request.app[SIGN_IN].session(request.cookies.get(COOKIE))


def off_allow_list(request: web.Request, session: Session) -> Refused | None:
    """Why a session may no longer be used: its team was taken off the `[access] teams`
    allow-list after it signed in (its cookie stays genuine until it expires)."""
    return request.app[SERVICE].off_allow_list(session.team, PLATFORM)


def signed_in(request: web.Request) -> Session | None:
    """The request's session, while its team may use the bot. The dashboard's middleware has
    answered a request of a team off the allow-list already; this check is for what runs on
    after that answer (a live stream ends when the team is taken off)."""
    session = session_of(request)
    return session if session is not None and off_allow_list(request, session) is None else None


def signed_out(request: web.Request) -> web.Response:
    return problem(
        request,
        401,
        "You are not signed in",
        "Ask the bot for a dashboard link (or an operator: python -m bot dashboard-link), then open it.",
    )


def protect(response: web.StreamResponse) -> None:
    """Headers that keep a response out of caches, frames and other sites' Referer."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


def path_id(request: web.Request, name: str) -> int:
    """The path's id called `name`, or 0 for one that is not a positive number (no such thing)."""
    try:
        number = int(request.match_info[name])
    except ValueError:
        return 0
    return number if number > 0 else 0


async def owned(
    request: web.Request,
    name: str,
    find: Callable[[Session, int], Awaitable[T | None]],
    missing: tuple[str, str],
) -> tuple[Session, T] | web.Response:
    """The session and what `find` gives for the path's id `name` within the session's team;
    otherwise the page to answer with: signed out, or the `missing` 404 (title, detail), alike
    for an unknown id and another team's (so ids of other teams' things cannot be probed)."""
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    number = path_id(request, name)
    found = await find(session, number) if number else None
    if found is None:
        return problem(request, 404, *missing, session)
    return session, found


async def own_image(request: web.Request) -> tuple[Session, StoredImage] | web.Response:
    """The image (a job's input or result) named by the path's {image_id}, of the session's team."""
    service = request.app[SERVICE]
    return await owned(
        request,
        "image_id",
        lambda session, image_id: service.team_image(session.team, image_id),
        ("No such image", "It was deleted, or it is not one of your team's."),
    )


async def own_job(request: web.Request) -> tuple[Session, tuple[Job, int | None]] | web.Response:
    """The job named by the path's {job_id}, of the session's team, with its queue position."""
    service = request.app[SERVICE]

    return await owned(
        request,
        "job_id",
        lambda session, job_id: service.team_status(session.team, job_id),
        ("No such job", "It is not one of your team's."),
    )
