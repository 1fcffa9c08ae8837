"""The team gallery: /dashboard/gallery (the team's result images, newest first), an image's
page with its lineage and the money of its thread, and deleting an image after a
confirmation page (no script needed).

The core decides everything: which images the session's team has (service.gallery), an
image's thread and its costs (service.lineage), who may delete (service.may_delete_image)
and the delete itself (service.delete_image). This module only formats for the page.
"""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web

from adapters.web.pages import (
    PLATFORM,
    PREFIX,
    SERVICE,
    caller_of,
    owned,
    page,
    path_id,
    problem,
    signed_in,
    signed_out,
)
from bot.gallery import Lineage, LineageStep
from bot.money import usd
from bot.sign_in import Session
from bot.types import GalleryImage, RefusalReason, Refused

THUMB = 240  # px: a gallery tile's longest side
LARGE = 720  # px: the image page's
STEP_THUMB = 96  # px: an image in the lineage
NO_SUCH_IMAGE = ("No such image", "It was deleted, or it is not one of your team's. Nothing was changed.")


async def gallery(request: web.Request) -> web.Response:
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    try:
        number = int(request.query.get("page", "1"))
    except ValueError:
        number = 1
    found = await request.app[SERVICE].gallery(session.team, number, platform=PLATFORM)
    if isinstance(found, Refused):
        return problem(request, 403, "Not available for this team", found.detail, session)
    return page(
        request,
        "gallery.html",
        session=session,
        tiles=[tile(image, THUMB) for image in found.images],
        number=found.number,
        pages=found.pages,
        total=found.total,
        deleted=request.query.get("deleted") == "1",
    )


async def image_page(request: web.Request) -> web.Response:
    found = await _own_lineage(request)
    if isinstance(found, web.Response):
        return found
    session, lineage = found
    return page(
        request,
        "gallery_image.html",
        session=session,
        image=tile(lineage.image, LARGE),
        lineage=_tree(lineage),
        edit_number=lineage.edit_number,
        running=usd(lineage.running_micros),
        running_micros=lineage.running_micros,
        thread_total=usd(lineage.thread_micros),
        thread_micros=lineage.thread_micros,
        may_delete=await request.app[SERVICE].may_delete_image(lineage.image.id, caller_of(session)),
    )


async def confirm_delete(request: web.Request) -> web.Response:
    """The confirmation step: a form that POSTs the delete, or why it may not."""
    found = await _own_lineage(request)
    if isinstance(found, web.Response):
        return found
    session, lineage = found
    if not await request.app[SERVICE].may_delete_image(lineage.image.id, caller_of(session)):
        return _not_yours(request, session)
    return page(request, "gallery_delete.html", session=session, image=tile(lineage.image, THUMB))


async def delete(request: web.Request) -> web.Response:
    """POST (the middleware checked its CSRF token): delete, then back to the gallery."""
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    image_id = path_id(request, "image_id")
    outcome = await request.app[SERVICE].delete_image(image_id, caller_of(session)) if image_id else None
    if outcome is None or (isinstance(outcome, Refused) and outcome.reason is RefusalReason.NOT_FOUND):
        return _no_such_image(request, session)
    if isinstance(outcome, Refused):
        if outcome.reason is RefusalReason.NOT_MODERATOR:
            return _not_yours(request, session)
        status = 503 if outcome.reason is RefusalReason.UNAVAILABLE else 403
        return problem(request, status, "The image was not deleted", outcome.detail, session)
    raise web.HTTPSeeOther(f"{PREFIX}/gallery?deleted=1")


def tile(image: GalleryImage, box: int) -> dict[str, Any]:
    """What a page shows of an image: its facts formatted, its size scaled to fit a `box` square."""
    scale = box / max(image.width, image.height, 1)
    return {
        "id": image.id,
        "src": f"{PREFIX}/images/{image.id}",
        "href": f"{PREFIX}/gallery/{image.id}",
        "width": max(1, round(image.width * scale)),
        "height": max(1, round(image.height * scale)),
        "prompt": image.prompt,
        "model": image.model,
        "size": image.size,
        "aspect_ratio": image.aspect_ratio,
        "lane": image.lane.value,
        "cost": usd(image.cost_micros),
        "cost_micros": image.cost_micros,
        "user": image.user,
        "when": datetime.datetime.fromtimestamp(image.created_at, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "deleted": image.deleted,
        "kind": image.kind,
        "blend": image.blend_note,
    }


def _tree(lineage: Lineage) -> list[dict[str, Any]]:
    """The thread's steps (each image, then its edits) as nested nodes for the template."""
    roots: list[dict[str, Any]] = []
    stack: list[dict[str, Any]] = []
    for step in lineage.steps:
        node = _node(step)
        del stack[step.depth :]
        (stack[-1]["children"] if stack else roots).append(node)
        stack.append(node)
    return roots


def _node(step: LineageStep) -> dict[str, Any]:
    return {
        **tile(step.image, STEP_THUMB),
        "depth": step.depth,
        "label": "Original" if step.depth == 0 else f"Edit {step.depth}",
        "on_path": step.on_path,
        "current": step.current,
        "running": usd(step.running_micros),
        "running_micros": step.running_micros,
        "children": [],
    }


async def _own_lineage(request: web.Request) -> tuple[Session, Lineage] | web.Response:
    """The image in the path with its thread, of the session's team."""
    lineage = request.app[SERVICE].lineage
    return await owned(request, "image_id", lambda session, image_id: lineage(session.team, image_id), NO_SUCH_IMAGE)


def _no_such_image(request: web.Request, session: Session) -> web.Response:
    return problem(request, 404, *NO_SUCH_IMAGE, session)


def _not_yours(request: web.Request, session: Session) -> web.Response:
    return problem(
        request,
        403,
        "You can't delete this image",
        "Only the person who asked for it, or a moderator, can delete it. Nothing was changed.",
        session,
    )
