"""What every dashboard page shares: the app's keys, the session of a request, and pages
rendered from templates (a friendly problem page for every refusal, never a traceback).

Page modules (overview, images, ledger, gallery...) build on this module; adapters.web.app
registers their routes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.access import Caller
from bot.service import ImagineService
from bot.sign_in import Session, SignIn
from bot.types import Refused, StoredImage

HERE = Path(__file__).parent
PREFIX = "/dashboard"
COOKIE = "imagine_session"
PLATFORM = "web"
SIGN_IN: web.AppKey[SignIn] = web.AppKey("sign_in", SignIn)
SERVICE: web.AppKey[ImagineService] = web.AppKey("service", ImagineService)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock", Callable[[], float])  # type: ignore[arg-type]


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, {"prefix": PREFIX, "page": "", **context}, status=status)


def problem(request: web.Request, status: int, title: str, detail: str, session: Session | None = None) -> web.Response:
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


async def own_image(request: web.Request) -> tuple[Session, StoredImage] | web.Response:
    """The session and the image named by the path's {image_id}, when it is one of the session's
    team's; otherwise the page to answer with: signed out, or a 404 alike for an unknown id and
    another team's (so ids of other teams' images cannot be probed)."""
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    try:
        image_id = int(request.match_info["image_id"])
    except ValueError:
        image_id = 0
    found = await request.app[SERVICE].team_image(session.team, image_id) if image_id > 0 else None
    if found is None:
        return problem(request, 404, "No such image", "It was deleted, or it is not one of your team's.", session)
    return session, found
