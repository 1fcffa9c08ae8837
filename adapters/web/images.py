"""Image bytes for the dashboard's pages (gallery, playground, queue): /dashboard/images/{id}.

Only an image of the session's own team is served; any other id, like an unknown one, is a
404 (so ids of other teams' images cannot be probed). The browser revalidates each time
(no-cache with the image's hash as its ETag): a deleted image stops showing at once, and an
unchanged one costs a 304, not its bytes.
"""

from __future__ import annotations

from aiohttp import web

from adapters.web.pages import SERVICE, problem, signed_in, signed_out


async def image(request: web.Request) -> web.StreamResponse:
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
    etag = f'"{found.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.data, content_type=found.mime, headers=headers)
