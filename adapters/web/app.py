"""The web dashboard: server-rendered pages on the bot's own aiohttp server, under /dashboard.

It speaks to the core only: bot.sign_in for links and sessions, the service for the
team's money. A session sees its own team and nothing else: every read takes the team
from the signed session, never from the request. Every POST must carry the session's
CSRF token (the middleware refuses it otherwise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from adapters.web import money, playground
from adapters.web.charts import budget_bar, daily_chart, ranking
from adapters.web.gallery import confirm_delete, delete, gallery, image_page
from adapters.web.images import image
from adapters.web.pages import (
    CLOCK,
    COOKIE,
    HERE,
    PLATFORM,
    PREFIX,
    SERVICE,
    SIGN_IN,
    off_allow_list,
    page,
    problem,
    protect,
    session_of,
    signed_in,
    signed_out,
)
from adapters.web.queue import add_queue
from bot.apology import STORE_DOWN_NOW, outage_behind
from bot.images import MAX_INPUT_BYTES
from bot.money import usd
from bot.money.budgets import Period, period_start
from bot.service import ImagineService
from bot.sign_in import LinkProblem, Refusal, SignIn
from bot.types import Refused

log = logging.getLogger(__name__)
# An upload (bot.images' limit) and the rest of a form.
MAX_BODY_BYTES = MAX_INPUT_BYTES + 256 * 1024

# What each refused link shows, and its status: 403 for a link not ours, 410 for one used up.
PROBLEMS: dict[LinkProblem, tuple[int, str, str]] = {
    LinkProblem.FORGED: (
        403,
        "This link is not valid",
        "It was not made by this bot, or part of it was lost when it was copied. Ask for a new link and open it whole.",
    ),
    LinkProblem.EXPIRED: (
        410,
        "This link has expired",
        "Sign-in links work for 10 minutes. Ask for a new one.",
    ),
    LinkProblem.USED: (
        410,
        "This link was already used",
        "A sign-in link works once. If that was not you, tell a moderator; either way, ask for a new link.",
    ),
    LinkProblem.RATE_LIMITED: (
        429,
        "Too many invalid links",
        "This device opened too many links that did not work. Wait a few minutes, then use a new link.",
    ),
    LinkProblem.UNAVAILABLE: (
        503,
        "The dashboard is unavailable",
        "Its database cannot be reached just now. Try the same link again in a minute.",
    ),
}

# What chat apps fetch a posted link with, to draw its preview: a one-time link opened by one of
# them would be used up before its person clicks it. Matched in the User-Agent, any case.
LINK_EXPANDERS = ("slackbot", "slack-imgproxy", "discordbot", "facebookexternalhit", "twitterbot")


def add_dashboard(
    app: web.Application,
    service: ImagineService,
    sign_in: SignIn,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Serve the dashboard under /dashboard of `app` (the bot's HTTP server)."""
    dashboard = web.Application(middlewares=[_guard])
    dashboard[SIGN_IN] = sign_in
    dashboard[SERVICE] = service
    dashboard[CLOCK] = clock
    aiohttp_jinja2.setup(
        dashboard,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    dashboard.add_routes(
        [
            web.get("/", overview, name="overview"),
            # GET only: a HEAD (a link checker, a preview) must not use the link up.
            web.get("/sign-in/{token}", open_link, allow_head=False),
            web.post("/sign-out", sign_out),
            web.get(r"/images/{image_id}", image, name="image"),
            web.get("/playground", playground.playground),
            web.post("/playground", playground.submit),
            web.post("/playground/confirm", playground.confirm),
            web.get(r"/playground/jobs/{job_id}", playground.job_page),
            web.get(r"/playground/jobs/{job_id}/status", playground.job_status),
            web.get(r"/playground/images/{image_id}/edit", playground.edit_form),
            web.post(r"/playground/images/{image_id}/edit", playground.edit),
            web.get("/gallery", gallery, name="gallery"),
            web.get("/gallery/{image_id}", image_page, name="gallery_image"),
            web.get("/gallery/{image_id}/delete", confirm_delete),
            web.post("/gallery/{image_id}/delete", delete),
            web.static("/static", HERE / "static"),
            *money.routes(),
        ]
    )
    add_queue(dashboard)
    app.add_subapp(PREFIX, dashboard)
    # The pages' short addresses (/, /gallery, /queue...) lead to them: the session cookie is
    # scoped to /dashboard, so the pages themselves live there.
    app.router.add_get("/", _to_dashboard)
    for short in SHORT_PATHS:
        app.router.add_get(f"/{short}", _to_dashboard)


SHORT_PATHS = ("gallery", "queue", "playground", "ledger", "budgets")


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    page_name = request.path.strip("/")
    target = f"{PREFIX}/{page_name}"
    if request.query_string:
        target += "?" + request.query_string
    raise web.HTTPFound(target)


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """CSRF on every POST, friendly pages for errors (never a traceback), and headers that keep
    pages out of caches, frames and other sites' Referer."""
    try:
        if (refused := _team_refused(request)) is not None:
            response: web.StreamResponse = _off_allow_list(request, refused)
        elif request.method == "POST":
            # The bot's server takes small bodies; the playground's forms carry an image upload.
            request = request.clone(client_max_size=MAX_BODY_BYTES)
            session = session_of(request)
            form = await request.post()
            sent = form.get("csrf")
            if session is None or not session.csrf_ok(sent if isinstance(sent, str) else None):
                log.warning(
                    "dashboard: POST %s refused: no valid CSRF token (from %s)", _route(request), request.remote
                )
                response = problem(
                    request,
                    403,
                    "This form has expired",
                    "It was not sent from a page of your current session. Go back to the dashboard, "
                    "reload the page and try again.",
                )
            else:
                response = await handler(request)
        else:
            response = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        response = problem(
            request,
            413,
            "That upload is too large",
            f"Images can be up to {MAX_INPUT_BYTES // (1024 * 1024)} MB. Nothing was sent or charged; "
            "go back and choose a smaller file.",
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(request, exc.status, exc.reason, "There is no such page here.")
    except Exception as exc:
        if (outage := outage_behind(exc)) is not None:  # expected: its own words, one log line
            log.warning("dashboard: %s %s: the database is unavailable (%s)", request.method, _route(request), outage)
            response = problem(request, 503, "The database is unavailable", STORE_DOWN_NOW)
        else:
            log.exception("dashboard: %s %s failed", request.method, _route(request))
            response = problem(request, 500, "Something went wrong", "The error was logged. Try again in a moment.")
    if not response.prepared:  # an event stream sent its headers already (protected first)
        protect(response)
    return response


def _team_refused(request: web.Request) -> Refused | None:
    """The one check of the allow-list for every signed-in page (images, streams and JSON
    included): a session whose team was taken off it since is refused, whatever it asks.
    Signing in and out and the stylesheets need no team on the list."""
    route = request.match_info.route
    if route.handler in (open_link, sign_out) or isinstance(route.resource, web.StaticResource):
        return None
    session = session_of(request)
    return off_allow_list(request, session) if session is not None else None


def _off_allow_list(request: web.Request, refused: Refused) -> web.Response:
    log.info("dashboard: %s %s refused: the session's team is off the allow-list", request.method, _route(request))
    return problem(request, 403, "Not available for this team", refused.detail)


def _route(request: web.Request) -> str:
    """The route, not the path, for logs: a sign-in path holds its token."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


async def open_link(request: web.Request) -> web.StreamResponse:
    agent = request.headers.get("User-Agent", "").lower()
    if any(expander in agent for expander in LINK_EXPANDERS):
        log.info("sign-in: a link preview fetched a sign-in link; it is left unused")
        return problem(
            request,
            200,
            "Open this link in your browser",
            "This is a one-time sign-in link to the imagine dashboard. A link preview does not use it up: "
            "open it in your browser to sign in.",
        )
    sign_in = request.app[SIGN_IN]
    opened = await sign_in.open_link(request.match_info["token"], request.remote or "unknown")
    if isinstance(opened, Refusal):
        status, title, detail = PROBLEMS[opened.problem]
        response = problem(request, status, title, detail)
        if opened.retry_after:
            response.headers["Retry-After"] = str(int(opened.retry_after) + 1)
        return response
    _, cookie = opened
    response = web.Response(status=303, headers={"Location": PREFIX + "/"})
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(sign_in.session_seconds),
        path=PREFIX,
        httponly=True,
        samesite="Lax",
        secure=sign_in.secure_cookies,
    )
    return response


async def overview(request: web.Request) -> web.Response:
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    service = request.app[SERVICE]
    usage = await service.usage(session.team, session.user, None, platform=PLATFORM)
    daily = await service.daily_spend(session.team, 30, platform=PLATFORM)
    top = await service.top_spenders(session.team, 5, platform=PLATFORM)
    saved = await service.savings(session.team, platform=PLATFORM)
    for answer in (usage, daily, top, saved):
        if isinstance(answer, Refused):
            return problem(request, 403, "Not available for this team", answer.detail, session)
    assert not isinstance(usage, Refused) and not isinstance(daily, Refused) and not isinstance(top, Refused)
    assert not isinstance(saved, Refused)
    today = period_start(Period.DAY, request.app[CLOCK]())
    return page(
        request,
        "overview.html",
        session=session,
        bars=[budget_bar(status) for status in usage.budgets],
        chart=daily_chart(daily, today, 30),
        top_users=ranking(top["user"]),
        top_channels=ranking(top["channel"]),
        savings=saved,
        overage_micros=usage.team_overage_month_micros,
        usd=usd,
    )


async def sign_out(request: web.Request) -> web.Response:
    session = signed_in(request)
    response = page(request, "signed_out.html", session=None)
    response.del_cookie(COOKIE, path=PREFIX)
    if session is not None:
        log.info("sign-out: team=%s user=%s", session.team, session.user)
    return response
