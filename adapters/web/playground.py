"""The playground: /imagine from the browser, its cost question, the job's live status, and
"edit this" on a finished image.

A request from here is a job of platform `web` in the channel "web", asked by the session's
user for the session's team, through the same core calls the chat adapters make (submit, edit,
hold_confirmation, confirm, status): the same budgets, quotas, questions and refusals. Nothing
is posted to a chat: the job page polls the job's status (adapters/web/delivery.py takes its
outbox rows).

Double submits: each form carries a nonce, the request's idempotency key, so a second send of
the same form gets the first one's job; the answers to its cost question are keyed by it too.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from adapters import status
from adapters.presses import OneAtATime, press_key
from adapters.web.pages import (
    PLATFORM,
    PREFIX,
    SERVICE,
    caller_of,
    own_image,
    own_job,
    page,
    problem,
    signed_in,
    signed_out,
)
from bot.images import MAX_INPUT_BYTES
from bot.providers.errors import user_message_for
from bot.sign_in import Session
from bot.types import (
    Accepted,
    EditRequest,
    ImagineRequest,
    InputImage,
    Job,
    JobState,
    NeedsConfirmation,
    Outcome,
    Refused,
)

HOME = PREFIX + "/playground"
CHANNEL = "web"  # the channel web requests count against (channel budgets and rules)
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
OPTIONS = ("model", "size", "aspect_ratio", "lane")
# The lanes by what they promise, as /imagine's lane choices in Discord say it.
LANE_LABELS = {
    "standard": "Standard",
    "flex": "Relax (Flex): half price, within 15 minutes",
    "batch": "Batch: half price, within hours",
    "priority": "Priority: dearer, never shed",
}
# How long an answered question gives its job back (as long as a question is held): a press
# on it, a double click or one after going back, finds the job instead of "expired".
QUESTION_WINDOW = 3600.0
# Presses on one question run one after another, so a double click finds the first answer.
ONE_AT_A_TIME = OneAtATime()
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


# -- the prompt form --------------------------------------------------------


async def playground(request: web.Request) -> web.Response:
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    return _form_page(request, session, {})


async def submit(request: web.Request) -> web.Response:
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    form = await request.post()
    prompt = _text(form, "prompt")
    refused, images = _uploads(form)
    if refused is not None:
        return _form_page(request, session, form, refused, status=400)
    outcome = await request.app[SERVICE].submit(
        ImagineRequest(prompt=prompt, images=images, **_options(form), **_asked(session, form, "form"))
    )
    if isinstance(outcome, Refused):
        return _form_page(request, session, form, outcome.detail, status=400)
    return await _present(request, session, outcome, _text(form, "nonce"))


def _form_page(
    request: web.Request, session: Session, form: Any, refusal: str | None = None, *, status: int = 200
) -> web.Response:
    choices = request.app[SERVICE].request_choices(session.team)
    return page(
        request,
        "playground.html",
        status,
        session=session,
        choices=choices,
        values={name: _text(form, name) for name in ("prompt", *OPTIONS)},
        nonce=secrets.token_urlsafe(18),
        refusal=refusal,
        lane_names=LANE_LABELS,
    )


# -- the cost question ------------------------------------------------------


async def confirm(request: web.Request) -> web.Response:
    """[Run] / [Use Flash] on a held question: the core's outcome, as a chat button gets it."""
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    form = await request.post()
    token, choice = _text(form, "token"), _text(form, "choice")
    if not token or choice not in ("run", "flash"):
        return problem(request, 400, "This form is incomplete", "Go back to the playground and ask again.", session)
    # Keyed by the form that asked, so that its questions (one per send of it) make one job
    # between them, however often and on whichever question [Run] or [Use Flash] is pressed.
    nonce = _text(form, "nonce")
    key = (
        f"{PLATFORM}:confirm:{session.team}:{session.user}:{nonce}"
        if NONCE.fullmatch(nonce)
        else press_key(PLATFORM, token, choice, session.user)
    )
    async with ONE_AT_A_TIME(token):
        outcome, _ = await request.app[SERVICE].confirm(
            token,
            caller_of(session),
            use_flash=choice == "flash",
            idempotency_key=key,
            idempotency_window=QUESTION_WINDOW,
        )
    if isinstance(outcome, Refused):
        return problem(request, 409, "This request did not run", outcome.detail, session)
    return await _present(request, session, outcome)


async def _present(request: web.Request, session: Session, outcome: Outcome, nonce: str = "") -> web.Response:
    """A queued job (or a repeat of one) goes to its page; a question is asked on a page of its own."""
    if isinstance(outcome, NeedsConfirmation):
        token = await request.app[SERVICE].hold_confirmation(outcome)
        return page(
            request,
            "playground_confirm.html",
            session=session,
            question=outcome,
            token=token,
            nonce=nonce,
            estimate=status.money(outcome.estimate_usd),
            flash_estimate=status.money(outcome.flash_estimate_usd) if outcome.flash_estimate_usd else None,
            remaining=status.money(outcome.remaining_usd) if outcome.remaining_usd is not None else None,
        )
    assert isinstance(outcome, Accepted), outcome  # refusals are shown where they were asked
    return web.Response(status=303, headers={"Location": f"{HOME}/jobs/{outcome.job_id}"})


# -- a job's page and its live status ---------------------------------------


async def job_page(request: web.Request) -> web.Response:
    found = await own_job(request)
    if isinstance(found, web.Response):
        return found
    session, (job, position) = found
    view = await with_lineage(request, job, job_view(job, position))
    return page(request, "playground_job.html", session=session, job=job, view=view, nonce=secrets.token_urlsafe(18))


async def job_status(request: web.Request) -> web.Response:
    """The job page's poll: the job's view in JSON (a refusal too: its script sends Accept JSON)."""
    found = await own_job(request)
    if isinstance(found, web.Response):
        return found
    _, (job, position) = found
    return web.json_response(await with_lineage(request, job, job_view(job, position)))


def job_view(job: Job, position: int | None) -> dict[str, Any]:
    """What the job page shows, and what its script polls for: the status line, then the image
    (or why there is none) and, once settled, the cost."""
    image_id = job.result_image_id if job.state is JobState.SUCCEEDED else None
    result = job.result or {}
    settled = job.state.terminal and job.held_micros == 0 and result.get("cost_usd") is not None
    return {
        "state": job.state.value,
        "done": job.state.terminal,
        "line": _line(job, position),
        "cost": status.money(result["cost_usd"]) if settled else None,
        "image_id": image_id,
        "image_url": f"{PREFIX}/images/{image_id}" if image_id else None,
        "gallery_url": f"{PREFIX}/gallery/{image_id}" if image_id else None,
        "edit_url": f"{HOME}/images/{image_id}/edit" if image_id else None,
    }


async def with_lineage(request: web.Request, job: Job, view: dict[str, Any]) -> dict[str, Any]:
    """The view with its result's place in its thread once settled ("edit 2 of this thread ·
    this image $0.04 · thread total $0.17"), as chat shows it under an image."""
    line = None
    if view["cost"] and view["image_id"]:
        cached = bool((job.result or {}).get("cached"))
        line = await request.app[SERVICE].posted_line(job.team, view["image_id"], cached=cached)
    return {**view, "lineage": line}


def _line(job: Job, position: int | None) -> str:
    spec = job.spec
    if job.state is JobState.QUEUED:
        where = "next up" if (position or 0) <= 1 else f"position {position} in the queue"
        return f"Queued, {where} · {spec.model_alias} {spec.size} {spec.aspect_ratio}"
    if job.state is JobState.RUNNING:
        return status.generating(spec.model_alias, spec.size, job.attempt, lane=spec.lane.value)
    if job.state is JobState.SUCCEEDED and job.result:
        return status.done(job.result)
    if job.state is JobState.CANCELLED:
        return status.NOT_STARTED if job.error_detail is None else f"Cancelled: {job.error_detail}"
    return user_message_for(job.error_class)


# -- edit this --------------------------------------------------------------


async def edit_form(request: web.Request) -> web.Response:
    found = await own_image(request)
    if isinstance(found, web.Response):
        return found
    session, image = found
    return _edit_page(request, session, image.id, {})


async def edit(request: web.Request) -> web.Response:
    """An edit of a finished image, with an optional reference upload: its parent is that image."""
    found = await own_image(request)
    if isinstance(found, web.Response):
        return found
    session, image = found
    image_id = image.id
    form = await request.post()
    refused, images = _uploads(form)
    if refused is not None:
        return _edit_page(request, session, image_id, form, refused, status=400)
    outcome = await request.app[SERVICE].edit(
        EditRequest(
            parent_image_id=image_id,
            instruction=_text(form, "instruction"),
            images=images,
            **_asked(session, form, f"edit:{image_id}"),
        )
    )
    if isinstance(outcome, Refused):
        return _edit_page(request, session, image_id, form, outcome.detail, status=400)
    return await _present(request, session, outcome, _text(form, "nonce"))


def _edit_page(
    request: web.Request, session: Session, image_id: int, form: Any, refusal: str | None = None, *, status: int = 200
) -> web.Response:
    return page(
        request,
        "playground_edit.html",
        status,
        session=session,
        image_id=image_id,
        instruction=_text(form, "instruction"),
        nonce=secrets.token_urlsafe(18),
        refusal=refusal,
    )


# -- reading forms ----------------------------------------------------------


def _text(form: Any, name: str) -> str:
    value = form.get(name) if form else None
    return value.strip() if isinstance(value, str) else ""


def _options(form: Form) -> dict[str, Any]:
    """The /imagine options; an empty choice is the default, as an option left out in chat."""
    return {name: _text(form, name) or None for name in OPTIONS}


def _asked(session: Session, form: Form, what: str) -> dict[str, Any]:
    """Who asked (the session's team and user, never the form's), and the form's nonce as the
    idempotency key: the same form sent twice is one job."""
    nonce = _text(form, "nonce")
    key = f"{PLATFORM}:{what}:{session.team}:{session.user}:{nonce}" if NONCE.fullmatch(nonce) else None
    return {
        "team": session.team,
        "channel": CHANNEL,
        "user": session.user,
        "platform": PLATFORM,
        "idempotency_key": key,
        # A moderator's session (chat said so when it made the link) is not limited by roles;
        # a member's roles can't be read here, so the core applies the strictest role limits.
        "platform_admin": session.moderator,
    }


def _uploads(form: Form) -> tuple[str | None, tuple[InputImage, ...]]:
    """(None, the optional reference image), after the checks chat attachments get (an image
    type, at most 14 MB; the core then checks its bytes); (why not, ()) for anything else."""
    field = form.get("reference")
    if not isinstance(field, web.FileField):
        return None, ()
    data = field.file.read(MAX_INPUT_BYTES + 1)
    name = (field.filename or "The file")[:120]
    if not data and not field.filename:
        return None, ()  # the box left empty
    if len(data) > MAX_INPUT_BYTES:
        return f"{name} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MB.", ()
    if not field.content_type.startswith("image/"):
        return f"{name} is not an image (PNG, JPEG or WebP).", ()
    return None, (InputImage(data=data, mime=field.content_type),)
